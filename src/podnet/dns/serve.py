"""The cluster DNS server: UDP and TCP on port 53, answering the cluster zone from
the store, and everything else from its cache or its upstreams (or REFUSED when
it has none); its health, readiness and metrics pages; and, with several
workers, its share of the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST

from podnet.dns.cache import Cache
from podnet.dns.config import DnsConfig
from podnet.dns.forward import Forwarder
from podnet.dns.http import Page, serve_pages
from podnet.dns.metrics import Server, combined, exposition, tally
from podnet.dns.resolver import Resolver
from podnet.dns.tcp import serve_connection
from podnet.dns.udp import UdpServer, bound_udp_socket
from podnet.dns.workers import PUBLISH_EVERY, SharedTallies
from podnet.dns.zone import hosts_records
from podnet.dns.zonesource import ZoneFromStore
from podnet.store.base import Store

log = logging.getLogger("podnet.dns")


async def serve(config: DnsConfig, store: Store | None, stop: threading.Event, worker: int = 0,
                tallies: SharedTallies | None = None) -> None:
    """Answers until `stop` is set. Worker 0 serves the HTTP pages; with `tallies`
    its metrics add up every worker's, and the others publish theirs there."""
    hosts = hosts_records(Path(config.hosts_file).read_text()) if config.hosts_file else []
    source = ZoneFromStore(store, config, hosts)
    threading.Thread(target=source.watch, args=(stop,), daemon=True).start()
    forwarder = Forwarder(list(config.upstreams), config.policy, health_check=config.health_check,
                          max_fails=config.max_fails, expire=config.expire) if config.upstreams else None
    resolver = Resolver(source, forwarder, Cache(config.cache_capacity, config.cache_max_ttl, prefetch=config.prefetch))
    loop = asyncio.get_running_loop()
    host, port = config.listen
    labels = Server.listening_on(host, port)  # the metrics' server and family
    shared = config.workers > 1
    udp = UdpServer(resolver, bound_udp_socket(host, port, shared), loop)
    udp.start()
    servers = [await asyncio.start_server(lambda r, w: serve_connection(resolver, r, w), host, port, reuse_port=shared)]
    for name, (page_host, page_port) in config.http.items():
        servers.append(await serve_pages(page_host, page_port, _pages(name, resolver, labels, tallies)))
    if tallies is not None and worker > 0:
        resolver.in_background(_publish(resolver, labels, tallies, worker, stop))
    log.info("serving %s on %s:%d (udp and tcp)", config.domain or "hosts entries", host, port)
    if config.loop_check:
        resolver.check_for_loop()
    await loop.run_in_executor(None, stop.wait)
    udp.stop()
    for server in servers:
        server.close()


async def _publish(resolver: Resolver, server: Server, tallies: SharedTallies, worker: int,
                   stop: threading.Event) -> None:
    while not stop.is_set():
        tallies.publish(worker, tally(resolver, server))
        await asyncio.sleep(PUBLISH_EVERY)


def _pages(name: str, resolver: Resolver, server: Server, tallies: SharedTallies | None) -> dict[str, Page]:
    if name == "health":
        return {"/health": lambda: (200, "text/plain", b"OK")}
    if name == "ready":
        return {"/ready": lambda: (200, "text/plain", b"OK") if resolver.ready() else (503, "text/plain", b"not ready\n")}

    def metrics() -> bytes:
        return exposition(combined([tally(resolver, server), *(tallies.others(0) if tallies is not None else [])]))

    return {"/metrics": lambda: (200, CONTENT_TYPE_LATEST, metrics())}
