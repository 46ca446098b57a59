"""The long-running processes a lab starts: the node agent and the echo server."""

from __future__ import annotations

import logging
import signal
import threading

import click


def run_as_daemon() -> threading.Event:
    """Log to stderr and turn SIGTERM and SIGINT into a stop request, as every
    long-running podnet process does."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@click.command()
@click.option("--node", "node_name", required=True, help="The node this agent reconciles.")
@click.option("--netns", "namespace", required=True, help="The node's network namespace (pn-...).")
@click.option("--store", "store_path", required=True, type=click.Path(dir_okay=False), help="The lab's SQLite store.")
@click.option("--resync", default=1.0, show_default=True, help="Seconds between drift checks.")
@click.option("--cluster-cidr", help="The pod network; with it the agent also runs the service proxy.")
def agent(node_name: str, namespace: str, store_path: str, resync: float, cluster_cidr: str | None) -> None:
    """Run the node agent: keep the node's bridge, routes and forwarding right,
    and serve this node's CNI plugin invocations."""
    from podnet.agent.node_agent import NodeAgent
    from podnet.cni.server import CniServer
    from podnet.store.sqlite import SqliteStore

    stop = run_as_daemon()
    store = SqliteStore(store_path)
    server = CniServer().start()
    try:
        NodeAgent(store, node_name, namespace, resync, cluster_cidr).run(stop)
    finally:
        server.stop()
        store.close()


@click.command()
@click.option("--port", default=80, show_default=True)
def echo(port: int) -> None:
    """Run the HTTP echo server that lab pods run by default."""
    from podnet.echo import serve

    serve(port)


@click.command("dns")
@click.option("--store", "store_path", required=True, envvar="PODNET_STORE", type=click.Path(dir_okay=False),
              help="The cluster's store (in a lab pod: $PODNET_STORE).")
@click.option("--listen", default="0.0.0.0", show_default=True)
@click.option("--port", default=53, show_default=True)
@click.option("--zone", "domain", default="cluster.local", envvar="PODNET_DNS_DOMAIN", show_default=True)
@click.option("--ttl", default=5, show_default=True)
@click.option("--forward", "upstreams", multiple=True, metavar="IP[:PORT]", envvar="PODNET_DNS_UPSTREAMS",
              help="Upstream servers for names outside the zone (repeatable).")
@click.option("--policy", type=click.Choice(["random", "round_robin", "sequential"]), default="random", show_default=True)
@click.option("--hosts", "hosts_file", type=click.Path(exists=True, dir_okay=False),
              help="Also answer from an /etc/hosts-format file (CoreDNS's `hosts`).")
def dns_server(store_path: str, listen: str, port: int, domain: str, ttl: int, upstreams: tuple[str, ...],
               policy: str, hosts_file: str | None) -> None:
    """Serve the cluster's DNS (the Kubernetes DNS specification) from the store,
    and forward other names (with a cache) to upstream servers."""
    import asyncio

    from podnet.dns.forward import Forwarder
    from podnet.dns.server import serve
    from podnet.dns.zone import hosts_records
    from podnet.store.sqlite import SqliteStore

    stop = run_as_daemon()
    addresses = [(u.rsplit(":", 1)[0], int(u.rsplit(":", 1)[1])) if u.count(":") == 1 else (u, 53) for u in upstreams]
    forwarder = Forwarder(addresses, policy) if addresses else None
    store = SqliteStore(store_path)
    try:
        hosts = hosts_records(open(hosts_file).read()) if hosts_file else []
        asyncio.run(serve(store, listen, port, domain, ttl, stop, forwarder, hosts))
    finally:
        store.close()
