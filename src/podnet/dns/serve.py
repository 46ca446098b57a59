"""The cluster DNS server: UDP and TCP on port 53, over IPv4 and IPv6 (a socket
of each family when it listens on every address), answering the cluster zone from
the store, and everything else from its cache or its upstreams (or REFUSED when
it has none); its health, readiness and metrics pages; and, with several
workers, its share of the metrics.
"""

from __future__ import annotations

import asyncio
import errno
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
    labels = Server.listening_on(host, port)  # the metrics' server label
    udps, servers = await _listen(resolver, config, loop)
    for name, (page_host, page_port) in config.http.items():
        servers.append(await serve_pages(page_host, page_port, _pages(name, resolver, labels, tallies)))
    if tallies is not None and worker > 0:
        resolver.in_background(_publish(resolver, labels, tallies, worker, stop))
    log.info("serving %s on %s port %d (udp and tcp)", config.domain or "hosts entries",
             " and ".join(udp.sock.getsockname()[0] for udp in udps), port)
    if config.loop_check:
        resolver.check_for_loop()
    await loop.run_in_executor(None, stop.wait)
    for udp in udps:
        udp.stop()
    for server in servers:
        server.close()


async def _listen(resolver: Resolver, config: DnsConfig,
                  loop: asyncio.AbstractEventLoop) -> tuple[list[UdpServer], list[asyncio.Server]]:
    """A UDP server (a receiving thread of its own) and a TCP server per address
    listened on. On every address, IPv6's are left out where the namespace has no
    IPv6 at all; the IPv4 ones are served anyway."""
    udps: list[UdpServer] = []
    servers: list[asyncio.Server] = []
    hosts, port, shared = config.listen_hosts, config.listen[1], config.workers > 1
    for host in hosts:
        try:
            sock = bound_udp_socket(host, port, shared)
        except OSError as err:
            if host != "::" or len(hosts) == 1 or err.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                raise
            log.info("no IPv6 here (%s): answering over IPv4 only", err.strerror)
            continue
        udp = UdpServer(resolver, sock, loop)
        udp.start()
        udps.append(udp)
        servers.append(await asyncio.start_server(lambda r, w: serve_connection(resolver, r, w), host, port,
                                                  reuse_port=shared))
    return udps, servers


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
