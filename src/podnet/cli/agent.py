"""The long-running processes a lab starts: the node agent, the echo server and the DNS server."""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
from pathlib import Path

import click

from podnet.cli.etcdflags import etcd_tls_options, tls_files
from podnet.kernel import iptables
from podnet.network import backends
from podnet.proxy import modes as proxy_modes


def run_as_daemon() -> threading.Event:
    """Log to stderr and turn SIGTERM and SIGINT into a stop request, as every
    long-running podnet process does."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: every thread's stack, into the log
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: threading.Thread(target=stop.set).start())  # not set() here: the
        # handler may run while this thread holds stop's lock, inside stop.wait, and would wait for itself
    return stop


@click.command()
@click.option("--node", "node_name", required=True, help="The node this agent reconciles.")
@click.option("--netns", "namespace", default=None,
              help="The node's network namespace (pn-...) [the agent's own: a real machine's, which needs "
                   "PODNET_ALLOW_ROOT_NETNS=1 as `podnet node join`'s unit sets]")
@click.option("--store", "store_path", required=True,
              help="The cluster's store: a SQLite file, or etcd://IP:PORT[,IP:PORT...].")
@etcd_tls_options
@click.option("--resync", default=1.0, show_default=True, help="Seconds between drift checks.")
@click.option("--cluster-cidr", help="The pod network, a CIDR per family comma-separated for dual-stack (as "
                                     "kube-proxy's --cluster-cidr); with it the agent also runs the service proxy.")
@click.option("--backend", type=click.Choice(list(backends.BACKENDS)), default=backends.DEFAULT, show_default=True,
              help=f"How pod traffic reaches other nodes: {backends.help_text()}.")
@click.option("--cni-conf", type=click.Path(exists=True, dir_okay=False),
              help="The node's CNI conflist; with it the agent also runs the pods bound to the node (as kubelet).")
@click.option("--cni-bin", type=click.Path(file_okay=False), help="Where the CNI plugins are (with --cni-conf).")
@click.option("--pods-prefix", help="Pod sandboxes are namespaces named PREFIX<namespace>.<pod> (with --cni-conf).")
@click.option("--state-dir", type=click.Path(file_okay=False), help="Where the agent records its pods (with --cni-conf).")
@click.option("--logs", "log_dir", type=click.Path(file_okay=False), help="Where pods' output goes (with --cni-conf).")
@click.option("--pods-store", help="The store as pods reach it, if not as the agent does.")
@click.option("--address", help="Where the kubelet's endpoint (exec, attach, port-forward, logs) listens, port 10250 "
                                 "(with --cni-conf and the three TLS files).")
@click.option("--tls-cert-file", type=click.Path(exists=True, dir_okay=False),
              help="The kubelet endpoint's serving certificate.")
@click.option("--tls-private-key-file", type=click.Path(exists=True, dir_okay=False), help="Its key.")
@click.option("--client-ca-file", type=click.Path(exists=True, dir_okay=False),
              help="The CA the API server's client certificate is checked against.")
@click.option("--proxy-mode", type=click.Choice(list(proxy_modes.MODES)), default=proxy_modes.DEFAULT,
              show_default=True, help=f"How Services are programmed: {proxy_modes.help_text()}.")
@click.option("--iptables-backend", type=click.Choice(list(iptables.BACKENDS)), default=iptables.DEFAULT_BACKEND,
              show_default=True, help="With the iptables proxy mode: the iptables-nft or iptables-legacy binaries.")
def agent(node_name: str, namespace: str | None, store_path: str, etcd_cafile: str | None, etcd_certfile: str | None,
          etcd_keyfile: str | None, resync: float, cluster_cidr: str | None, backend: str, cni_conf: str | None,
          cni_bin: str | None, pods_prefix: str | None, state_dir: str | None, log_dir: str | None,
          pods_store: str | None, address: str | None, tls_cert_file: str | None, tls_private_key_file: str | None,
          client_ca_file: str | None, proxy_mode: str, iptables_backend: str) -> None:
    """Run the node agent: keep the node's bridge, routes and forwarding right,
    serve this node's CNI plugin invocations, and run the pods bound to it."""
    from podnet.agent.pods import KubeletConfig
    from podnet.agent.wiring import AgentOptions, KubeletServing, run_agent
    from podnet.cni.runtime import NetworkConfigList
    from podnet.kernel import netns
    from podnet.store.location import open_store, with_tls

    if cluster_cidr:
        _check_cluster_cidr(cluster_cidr)
    namespace = namespace or netns.OWN
    netns.path(namespace)  # the root namespace is refused here, once, unless allowed
    store_path = with_tls(store_path, tls_files(etcd_cafile, etcd_certfile, etcd_keyfile))
    kubelet = None
    if cni_conf:
        missing = [flag for flag, value in (("--cni-bin", cni_bin), ("--pods-prefix", pods_prefix),
                                            ("--state-dir", state_dir), ("--logs", log_dir)) if not value]
        if missing:
            raise click.UsageError(f"--cni-conf needs {', '.join(missing)} too")
        kubelet = KubeletConfig(node_name, pods_prefix or "", Path(state_dir or ""), Path(log_dir or ""),
                                NetworkConfigList.load(cni_conf), cni_bin or "", str(netns.path(namespace)),
                                pods_store or store_path)
    serving = None
    served = (address, tls_cert_file, tls_private_key_file, client_ca_file)
    if any(served):
        if not all(served):
            raise click.UsageError("--address, --tls-cert-file, --tls-private-key-file and --client-ca-file go "
                                   "together")
        if kubelet is None:
            raise click.UsageError("--address needs --cni-conf: the kubelet's endpoint serves its pods")
        serving = KubeletServing(address or "", tls_cert_file or "", tls_private_key_file or "", client_ca_file or "")
    options = AgentOptions(node_name, namespace, store_path, resync, cluster_cidr, backend, proxy_mode,
                           iptables_backend, kubelet, serving)
    stop = run_as_daemon()
    store = open_store(store_path)
    try:
        run_agent(options, store, stop)
    finally:
        store.close()


@click.command("controller")
@click.option("--store", "store_path", required=True,
              help="The cluster's store: a SQLite file, or etcd://IP:PORT[,IP:PORT...].")
@etcd_tls_options
@click.option("--resync", default=1.0, show_default=True, help="Seconds between full passes.")
@click.option("--node-monitor-grace-period", "grace", default=5.0, show_default=True,
              help="Seconds without a heartbeat before a node is NotReady (Kubernetes' default is 40).")
def controller(store_path: str, etcd_cafile: str | None, etcd_certfile: str | None, etcd_keyfile: str | None,
               resync: float, grace: float) -> None:
    """Run the control plane: the scheduler, the Deployment, EndpointSlice and
    node lifecycle controllers, and the namespace and garbage collectors."""
    from podnet.api import cluster
    from podnet.controller.manager import ControlPlane
    from podnet.store.location import open_store, with_tls

    stop = run_as_daemon()
    store = open_store(with_tls(store_path, tls_files(etcd_cafile, etcd_certfile, etcd_keyfile)))
    try:
        cluster.bootstrap(store)
        ControlPlane(store, resync, grace).run(stop)
    finally:
        store.close()


@click.command()
@click.option("--port", "ports", multiple=True, type=int, default=(80,), show_default=True,
              help="Repeat for several; each serves HTTP and answers UDP.")
def echo(ports: tuple[int, ...]) -> None:
    """Run the HTTP echo server that lab pods run by default."""
    from podnet.echo import serve

    serve(ports)


@click.command("dns")
@click.option("--store", "store_path", envvar="PODNET_STORE",
              help="The cluster's store, a SQLite file or etcd://IP:PORT,... (in a lab pod: $PODNET_STORE); "
                   "needed for the cluster zone.")
@click.option("--conf", "corefile", type=click.Path(exists=True, dir_okay=False),
              help="A Corefile (CoreDNS's config); its plugins replace the options below.")
@click.option("--listen", default="0.0.0.0", show_default=True)
@click.option("--port", default=53, show_default=True)
@click.option("--zone", "domain", default="cluster.local", envvar="PODNET_DNS_DOMAIN", show_default=True)
@click.option("--ttl", default=5, show_default=True)
@click.option("--pods", type=click.Choice(["disabled", "insecure", "verified"]), default="insecure", show_default=True,
              help="Records for a-b-c-d.<ns>.pod names: none, any such name, or only existing pods.")
@click.option("--forward", "upstreams", multiple=True, metavar="IP[:PORT]", envvar="PODNET_DNS_UPSTREAMS",
              help="Upstream servers for names outside the zone (repeatable).")
@click.option("--policy", type=click.Choice(["random", "round_robin", "sequential"]), default="random", show_default=True)
@click.option("--hosts", "hosts_file", type=click.Path(exists=True, dir_okay=False),
              help="Also answer from an /etc/hosts-format file (CoreDNS's `hosts`).")
@click.option("--health", metavar="[IP]:PORT", help="Serve GET /health here.")
@click.option("--ready", metavar="[IP]:PORT", help="Serve GET /ready here.")
@click.option("--metrics", metavar="[IP]:PORT", help="Serve Prometheus metrics (GET /metrics) here.")
@click.option("--loop-check/--no-loop-check", default=True, show_default=True,
              help="Detect upstreams that forward our queries back to us.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Processes answering on the port (SO_REUSEPORT), to use more than one core.")
def dns_server(store_path: str | None, corefile: str | None, listen: str, port: int, domain: str, ttl: int, pods: str,
               upstreams: tuple[str, ...], policy: str, hosts_file: str | None, health: str | None,
               ready: str | None, metrics: str | None, loop_check: bool, workers: int) -> None:
    """Serve the cluster's DNS (the Kubernetes DNS specification) from the store,
    and forward other names (with a cache) to upstream servers."""
    import asyncio
    from dataclasses import replace

    from podnet.dns.config import DnsConfig, parse_address, parse_corefile
    from podnet.dns.serve import serve
    from podnet.dns.workers import SharedTallies, fork_workers, stop_workers
    from podnet.store.location import open_store

    if corefile:
        config = parse_corefile(Path(corefile).read_text())
    else:
        pages = {name: parse_address(value, 0) for name, value in
                 (("health", health), ("ready", ready), ("prometheus", metrics)) if value}
        config = DnsConfig((listen, port), domain.strip(".") or None, ttl, pods, hosts_file,
                           tuple(parse_address(u, 53) for u in upstreams), policy, loop_check=loop_check, http=pages)
    if config.domain and not store_path:
        raise click.UsageError(f"the cluster zone {config.domain} is answered from the store: give --store "
                               "(or $PODNET_STORE)")
    config = replace(config, workers=workers)
    tallies = SharedTallies(workers) if workers > 1 else None
    worker, children = fork_workers(workers - 1)
    if worker > 0:
        config = replace(config, http={}, loop_check=False)  # a copy: the first process does these
    stop = run_as_daemon()
    store = open_store(store_path) if config.domain and store_path else None
    try:
        asyncio.run(serve(config, store, stop, worker, tallies))
    finally:
        if store is not None:
            store.close()
        stop_workers(children)


def _check_cluster_cidr(text: str) -> None:
    """A CIDR per family, as kube-proxy's --cluster-cidr takes them."""
    import ipaddress

    versions = []
    for part in text.split(","):
        try:
            versions.append(ipaddress.ip_network(part.strip()).version)
        except ValueError as err:
            raise click.BadParameter(f"{part.strip()!r} is not a network in CIDR form ({err})",
                                     param_hint="--cluster-cidr") from None
    if len(set(versions)) != len(versions):
        raise click.BadParameter(f"{text!r}: give one CIDR per family", param_hint="--cluster-cidr")
