"""Service proxy at scale: podnet's nftables maps against the same services
rendered kube-proxy style (iptables mode's structure: a dispatch chain with a rule
per service port, a chain per service and per endpoint), on the same kernel.

It prints, for both: a full sync of S services x E endpoints (podnet's: what its
agent does, from Services and slices to the table in the kernel, sent as netlink
batches), one endpoint change at that size (p50 and p99 over 100 changes), and
first-packet (TCP connect) latency at S services against 100 services, from a
client inside the pod network (as a pod calls a service). A third column loads
podnet's own table with `nft -f` as text: what the netlink backend replaced.
Then podnet's iptables mode: kube-proxy's own layout by iptables-restore, on
each of iptables' backends, nft and legacy (full sync, an endpoint change
restoring only the chains it touched as kube-proxy's minimal sync does, first
packet), with the nftables table gone.
With --dual-stack, instead: podnet's own IPv4-only table against dual-stack
(every Service with an IPv6 ClusterIP too, each endpoint pod an IPv6 address too,
so twice the elements, in a table per family): full sync, one IPv6 endpoint's
change, and first packet of each family.
Run as root: .venv/bin/python bench/proxy_sync.py [--services 10000] [--endpoints 10] [--dual-stack]
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import replace

from podnet.errors import KernelError
from podnet.kernel import netns
from podnet.kernel.nftables import Chain, Transaction, hooks, rules
from podnet.kernel.nftables.nfnl import NetlinkNft
from podnet.kernel.nftables.nft import Nft
from podnet.kernel.nftables.script import script
from podnet.kernel.node import NamespaceKernel
from podnet.kernel.netlink import open_namespace
from podnet.kernel.route import Route
from podnet.controller.endpointslices import desired
from podnet.model.endpointslice import EndpointSlice
from podnet.model.families import FAMILIES, IPV4, IPV6, of_family
from podnet.model.meta import ObjectMeta
from podnet.model.pod import Container, Pod
from podnet.model.service import Service, ServicePort
from podnet.kernel.iptables import BACKENDS, IptablesWriter
from podnet.proxy.endpoints import service_ports
from podnet.proxy.iptables import JUMPS, IptablesProxier, build_iptables
from podnet.proxy.proxier import Proxier
from podnet.proxy.ruleset import TABLE, TABLES, build

CLIENT, SERVER = "pn-bench.proxy-client", "pn-bench.proxy-server"
CLIENT_IP, SERVER_IP = "10.250.0.1", "10.250.0.2"  # both in the pod network, 10.240.0.0/12
SERVICE_BASE = ipaddress.ip_address("10.96.0.2")
POD_BASE = ipaddress.ip_address("10.240.0.2")
FULL_SYNCS = 3  # one full sync is noisy: nft's parse alone varies by a tenth
CLIENT_IP6, SERVER_IP6 = "fd00:10:24a::1", "fd00:10:24a::2"  # in the IPv6 pod network, fd00:10:240::/44
SERVICE_BASE6 = ipaddress.ip_address("fd00:10:96::2")
POD_BASE6 = ipaddress.ip_address("fd00:10:240::2")
POD_NETWORK, POD_NETWORK6 = "10.240.0.0/12", "fd00:10:240::/44"


PODS_PER_NODE = 100  # kubelet's default limit is 110: a node has a hundred or so local endpoints, not all of them


def cluster(services: int, endpoints: int, moved: int | None = None) -> tuple[list[Service], list[EndpointSlice]]:
    """services x endpoints, as the control plane's slices, the pods spread over
    nodes a hundred to a node (n1 is the measured one); the last service's
    endpoints are the one real server."""
    svcs, pods = [], []
    for i in range(services):
        svcs.append(Service(ObjectMeta(f"s{i}", "default"), "ClusterIP", {"app": f"a{i}"}, (ServicePort(80, 8080),),
                            (str(SERVICE_BASE + i),)))
        for j in range(endpoints):
            ip = SERVER_IP if i == services - 1 else str(POD_BASE + i * endpoints + j)
            if moved is not None and i == moved and j == 0:
                ip = str(POD_BASE + services * endpoints + 7)
            node = f"n{(i * endpoints + j) // PODS_PER_NODE + 1}"
            pods.append(Pod(ObjectMeta(f"p{i}-{j}", "default", {"app": f"a{i}"}), (Container("c"),), node,
                            pod_ips=(ip,), ready=True))
    return svcs, desired(svcs, pods)


def dual_stack_cluster(services: int, endpoints: int,
                       moved: int | None = None) -> tuple[list[Service], list[EndpointSlice]]:
    """The same cluster with a ClusterIP and pod IPs of both families, the slices a
    set per family (as the EndpointSlice controller writes them); `moved` moves an
    IPv6 endpoint only."""
    svcs, pods = [], []
    for i in range(services):
        svcs.append(Service(ObjectMeta(f"s{i}", "default"), "ClusterIP", {"app": f"a{i}"}, (ServicePort(80, 8080),),
                            (str(SERVICE_BASE + i), str(SERVICE_BASE6 + i))))
        for j in range(endpoints):
            ip = SERVER_IP if i == services - 1 else str(POD_BASE + i * endpoints + j)
            ip6 = SERVER_IP6 if i == services - 1 else str(POD_BASE6 + i * endpoints + j)
            if moved is not None and i == moved and j == 0:
                ip6 = str(POD_BASE6 + services * endpoints + 7)
            node = f"n{(i * endpoints + j) // PODS_PER_NODE + 1}"
            pods.append(Pod(ObjectMeta(f"p{i}-{j}", "default", {"app": f"a{i}"}), (Container("c"),), node,
                            pod_ips=(ip, ip6), ready=True))
    slices = []
    for family in FAMILIES:
        alone = [replace(p, pod_ips=tuple(of_family(p.pod_ips, family))) for p in pods]
        slices += [s for s in desired(svcs, alone) if s.address_type == family]
    return svcs, slices


def _endpoint_ip(services: int, endpoints: int, i: int, j: int, moved: int | None) -> str:
    if moved is not None and i == moved and j == 0:
        return str(POD_BASE + services * endpoints + 7)
    return SERVER_IP if i == services - 1 else str(POD_BASE + i * endpoints + j)


def _endpoint_rule(chain: str, ip: str) -> rules.Rule:
    return rules.rule(chain, rules.match(rules.L4PROTO, "tcp"), rules.Dnat("ip", f"{ip}:8080"))


def kube_proxy_style(services: int, endpoints: int, moved: int | None = None) -> Transaction:
    """The iptables-mode structure in nft: linear dispatch, probability chains.
    Its base chain is hooked where podnet's proxy output chain is."""
    tx = Transaction(TABLE).replace()
    tx.add(Chain("nat_output", hooks.HOOKS[hooks.PROXY]["nat_output"]), Chain("kube_services"))
    tx.add(rules.rule("nat_output", rules.jump("kube_services")))
    for i in range(services):
        tx.add(Chain(f"svc_{i}"), *(Chain(f"sep_{i}_{j}") for j in range(endpoints)))
        tx.add(rules.rule("kube_services", rules.match(rules.IP_DADDR, str(SERVICE_BASE + i)),
                          rules.match(rules.TH_DPORT, "80"), rules.jump(f"svc_{i}")))
        for j in range(endpoints):
            remaining = endpoints - j
            pick = (rules.match(rules.Numgen(remaining), "0"),) if remaining > 1 else ()
            tx.add(rules.rule(f"svc_{i}", *pick, rules.jump(f"sep_{i}_{j}")))
            tx.add(_endpoint_rule(f"sep_{i}_{j}", _endpoint_ip(services, endpoints, i, j, moved)))
    return tx


def kube_proxy_change(services: int, endpoints: int, moved: int, back: bool = False) -> Transaction:
    """What kube-proxy rewrites for one changed endpoint: that endpoint's chain."""
    ip = _endpoint_ip(services, endpoints, moved, 0, None if back else moved)
    return Transaction(TABLE).flush(Chain(f"sep_{moved}_0")).add(_endpoint_rule(f"sep_{moved}_0", ip))


def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000


def changes(forth: Transaction, back: Transaction, nft: Nft | NetlinkNft, rounds: int = 50) -> tuple[float, float]:
    """p50 and p99 of one endpoint's change, made and undone `rounds` times."""
    samples = []
    for _ in range(rounds):
        samples.append(timed(nft.run, forth))
        samples.append(timed(nft.run, back))
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def nft_text(tx: Transaction) -> float:
    """`nft -f` loading the transaction as an nft script, rendering not counted."""
    text = script(tx)
    started = time.perf_counter()
    netns.run(CLIENT, ["nft", "-f", "-"], input=text)
    return (time.perf_counter() - started) * 1000


def first_packet(services: int, family: str = IPV4, direct: bool = False) -> float:
    """Median TCP connect time to the last service, which the server behind it
    answers (or, direct, to the server itself: no service, no NAT)."""
    base, af = (SERVICE_BASE, socket.AF_INET) if family == IPV4 else (SERVICE_BASE6, socket.AF_INET6)
    target = (str(base + services - 1), 80)
    if direct:
        target = (SERVER_IP if family == IPV4 else SERVER_IP6, 8080)

    def connects() -> list[float]:
        samples = []
        for _ in range(300):
            with socket.socket(af) as sock:
                started = time.perf_counter()
                sock.connect(target)
                samples.append((time.perf_counter() - started) * 1e6)
        return samples

    return statistics.median(netns.run_in(CLIENT, connects))


def first_packets_at_100(nft: NetlinkNft, script_nft: Nft, endpoints: int, rounds: int = 9) -> tuple[float, float]:
    """Medians over interleaved rounds, kube-proxy style then podnet: one round's
    median moves by 10 us from one run to the next, more than the difference."""
    ours = build(service_ports(*cluster(100, endpoints), "n1"), "10.240.0.0/12").transaction()
    theirs, mine = [], []
    for _ in range(rounds):
        script_nft.run(kube_proxy_style(100, endpoints))
        theirs.append(first_packet(100))
        nft.run(ours)
        mine.append(first_packet(100))
    return statistics.median(theirs), statistics.median(mine)


def setup() -> subprocess.Popen:  # type: ignore[type-arg]
    for name in (CLIENT, SERVER):
        netns.create(name)
    for name in (CLIENT, SERVER):  # IPv6 addresses usable at once (no duplicate address detection on a veth of ours)
        netns.run(name, ["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"])
    with open_namespace(CLIENT) as client:
        client.ensure_veth("eth0", "eth0", SERVER)
        client.ensure_address("eth0", f"{CLIENT_IP}/16")
        client.ensure_address("eth0", f"{CLIENT_IP6}/64")
        client.set_up("eth0")
        client.add_route(Route("10.96.0.0/12", dev="eth0"))  # as a node routes its service range
        client.add_route(Route("fd00:10:96::/108", dev="eth0"))
    with open_namespace(SERVER) as server:
        server.ensure_address("eth0", f"{SERVER_IP}/16")
        server.ensure_address("eth0", f"{SERVER_IP6}/64")
        server.set_up("eth0")
    listener = subprocess.Popen(netns.exec_argv(SERVER, [sys.executable, "-c", (
        "import socket\ns=socket.socket(socket.AF_INET6)\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
        "s.bind(('::', 8080))\ns.listen(4096)\nwhile True:\n    s.accept()[0].close()")]))
    time.sleep(0.5)
    return listener


def _clear_iptables(writer: IptablesWriter) -> None:
    """The iptables mode's chains emptied and gone, before the next layout is loaded."""
    command = BACKENDS[writer.backend][1]
    writer.restore(build_iptables([], "10.240.0.0/12").restore_text())
    for table, chain, target, comment in JUMPS:
        netns.run(CLIENT, [command, "-t", table, "-D", chain, "-m", "comment", "--comment", comment, "-j", target],
                  check=False)
    for table in ("nat", "filter"):
        netns.run(CLIENT, [command, "-t", table, "-F"], check=False)
        netns.run(CLIENT, [command, "-t", table, "-X"], check=False)


def iptables_mode(kernel: NamespaceKernel, backend: str, svcs: list[Service], slices: list[EndpointSlice], S: int,
                  E: int, changes: int, ours_full: float, ours_latency: float) -> str:
    """Full sync, endpoint changes and first packet in podnet's iptables mode on one backend."""
    writer = IptablesWriter(CLIENT, backend)
    ipt = IptablesProxier(kernel, writer, "n1", "10.240.0.0/12")
    try:
        full = statistics.median(timed(IptablesProxier(kernel, writer, "n1", "10.240.0.0/12").sync_services,
                                       svcs, slices) for _ in range(FULL_SYNCS))
        ipt.sync_services(svcs, slices)
        moved_cluster = cluster(S, E, moved=S // 2)
        taken = sorted(timed(ipt.sync_services, *(moved_cluster if i % 2 == 0 else (svcs, slices)))
                       for i in range(changes))
        latency = first_packet(S)
        return (f"full sync {full:.1f} ms ({full / ours_full:.1f}x the nftables mode); one endpoint change, p50 of "
                f"{changes} {statistics.median(taken):.1f} ms, worst {taken[-1]:.1f} ms (only the chains it "
                f"touched, kube-proxy's minimal sync); first packet at {S} services {latency:.1f} us "
                f"({latency / ours_latency:.2f}x the nftables mode's)")
    except KernelError as err:  # on iptables-nft at 10 000 services one restore outlasts the writer's patience
        return f"did not sync: {err}"
    finally:
        _clear_iptables(writer)


def dual_stack(S: int, E: int) -> None:
    """IPv4-only against dual-stack, podnet's nftables mode both sides."""
    kernel = NamespaceKernel(CLIENT)
    both = f"{POD_NETWORK},{POD_NETWORK6}"
    v4_services, v4_slices = cluster(S, E)
    Proxier(kernel, "n1", POD_NETWORK).sync_services(v4_services, v4_slices)
    v4_latency = first_packet(S)
    services, slices = dual_stack_cluster(S, E)
    alone, dual = [], []
    for _ in range(FULL_SYNCS + 2):  # interleaved: the machine's noise is shared
        alone.append(timed(Proxier(kernel, "n1", POD_NETWORK).sync_services, v4_services, v4_slices))
        dual.append(timed(Proxier(kernel, "n1", both).sync_services, services, slices))
    v4_full, dual_full = statistics.median(alone), statistics.median(dual)
    proxier = Proxier(kernel, "n1", both)
    proxier.sync_services(services, slices)
    renewed = {s.metadata.key: s for s in dual_stack_cluster(S, E, moved=S // 2)[1]
               if s.address_type == IPV6 and s.service == f"s{S // 2}"}
    # as the store hands them out: the unchanged slices are the same objects, the changed one is new
    moved = (services, [renewed.get(s.metadata.key, s) for s in slices])
    taken = sorted(timed(proxier.sync_services, *(moved if i % 2 == 0 else (services, slices))) for i in range(100))
    table6, moved6 = (build(service_ports(*state, "n1"), both, IPV6) for state in ((services, slices), moved))
    forth, back = moved6.changes_from(table6), table6.changes_from(moved6)
    assert forth is not None and back is not None
    kernel.nft.run(table6.transaction())
    transaction_p50, transaction_p99 = changes(forth, back, kernel.nft)
    rounds = [(first_packet(S), first_packet(S, IPV6), first_packet(S, IPV4, direct=True),
               first_packet(S, IPV6, direct=True)) for _ in range(9)]  # interleaved: the machine's noise is shared
    dual_v4_latency, dual_v6_latency, direct_v4, direct_v6 = (statistics.median(r[i] for r in rounds)
                                                              for i in range(4))
    for family in FAMILIES:
        kernel.nft.run(Transaction(TABLES[family]).destroy(TABLES[family]))
    print(f"{'':<58}{'IPv4 only':>10}{'dual-stack':>12}{'ratio':>8}")
    for label, alone, dual in (
            (f"full sync, {S} x {E} (per family), median of {FULL_SYNCS + 2} (ms)", v4_full, dual_full),
            (f"first packet at {S} services, IPv4 (us)", v4_latency, dual_v4_latency),
            (f"first packet at {S} services, IPv6 against IPv4 (us)", v4_latency, dual_v6_latency)):
        print(f"{label:<58}{alone:>10.1f}{dual:>12.1f}{dual / alone:>8.2f}")
    print(f"dual-stack, 9 interleaved rounds: first packet IPv6 {dual_v6_latency:.1f} us against IPv4 "
          f"{dual_v4_latency:.1f} us: {dual_v6_latency / dual_v4_latency:.2f}x; the kernel's own, straight to the "
          f"server with no Service: IPv6 {direct_v6:.1f} us against IPv4 {direct_v4:.1f} us, "
          f"{direct_v6 / direct_v4:.2f}x")
    print(f"dual-stack: one IPv6 endpoint's change, the element transaction alone p50 {transaction_p50:.2f} ms, "
          f"p99 {transaction_p99:.2f} ms; the proxier's whole sync (views, change tracker, transaction; every "
          f"{proxier.resync_seconds:.0f} s a whole rewrite) p50 of 100 {statistics.median(taken):.2f} ms, "
          f"p99 {taken[98]:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--skip-kube-proxy-full", action="store_true", help="its full sync can take minutes")
    parser.add_argument("--iptables-changes", type=int, default=20, help="endpoint changes timed in the iptables mode")
    parser.add_argument("--dual-stack", action="store_true",
                        help="IPv4-only against dual-stack (a ClusterIP and endpoints of each family), podnet's tables")
    options = parser.parse_args()
    S, E = options.services, options.endpoints
    listener = setup()
    try:
        if options.dual_stack:
            dual_stack(S, E)
            return
        rows = []
        # podnet
        kernel = NamespaceKernel(CLIENT)
        nft = kernel.nft
        script_nft = Nft.in_namespace(CLIENT)  # kube-proxy (nftables mode) writes its rules as nft text
        # first, while the kernel has no large table to free in the background
        theirs_latency_100, ours_latency_100 = first_packets_at_100(nft, script_nft, E)
        svcs, slices = cluster(S, E)
        ours_full = statistics.median(timed(Proxier(kernel, "n1", "10.240.0.0/12").sync_services,
                                            svcs, slices) for _ in range(FULL_SYNCS))
        ruleset = build(service_ports(svcs, slices, "n1"), "10.240.0.0/12")
        text_full = statistics.median(nft_text(ruleset.transaction()) for _ in range(FULL_SYNCS))
        netlink_full = statistics.median(timed(nft.run, ruleset.transaction()) for _ in range(FULL_SYNCS))
        moved = build(service_ports(*cluster(S, E, moved=S // 2), "n1"), "10.240.0.0/12")
        forth, back = moved.changes_from(ruleset), ruleset.changes_from(moved)
        assert forth is not None and back is not None
        ours_change, ours_change_99 = changes(forth, back, nft)
        ours_latency = first_packet(S)
        # podnet's iptables mode: kube-proxy's own layout by iptables-restore, each backend, changes by minimal sync
        nft.run(Transaction(TABLE).destroy(TABLE))
        ipt_summaries = {backend: iptables_mode(kernel, backend, svcs, slices, S, E, options.iptables_changes,
                                                ours_full, ours_latency) for backend in BACKENDS}
        # kube-proxy style
        if options.skip_kube_proxy_full:
            theirs_full = float("nan")
            script_nft.run(kube_proxy_style(S, E))
        else:
            whole = kube_proxy_style(S, E)
            theirs_full = statistics.median(timed(script_nft.run, whole) for _ in range(FULL_SYNCS))
        theirs_change, theirs_change_99 = changes(kube_proxy_change(S, E, S // 2),  # seconds each at 10k: 20 of them
                                                  kube_proxy_change(S, E, S // 2, back=True), script_nft, rounds=10)
        theirs_latency = first_packet(S)
        print(f"podnet's table, the same transaction loaded: by `nft -f` as text {text_full:.1f} ms, "
              f"as netlink batches {netlink_full:.1f} ms: {netlink_full / text_full:.2f}x "
              f"(the full sync below also builds the table from the services)")
        rows = [
            (f"full sync, {S} x {E}, median of {FULL_SYNCS} (ms)", theirs_full, ours_full),
            ("one endpoint change, p50 (ms; podnet 100, kube-proxy 20)", theirs_change, ours_change),
            ("one endpoint change, p99 (ms)", theirs_change_99, ours_change_99),
            (f"first packet (TCP connect) at {S} services (us)", theirs_latency, ours_latency),
            ("first packet at 100 services, 9 interleaved rounds (us)", theirs_latency_100, ours_latency_100),
        ]
        print(f"{'':<52}{'kube-proxy style':>17}{'podnet':>10}{'ratio':>8}")
        for label, theirs, ours in rows:
            print(f"{label:<52}{theirs:>17.1f}{ours:>10.1f}{ours / theirs:>8.2f}")
        for backend, summary in ipt_summaries.items():
            print(f"podnet's iptables mode (kube-proxy's layout, {BACKENDS[backend][0]}): {summary}")
        print(f"first packet, {S} vs 100 services: podnet {ours_latency / ours_latency_100:.2f}x, "
              f"kube-proxy style {theirs_latency / theirs_latency_100:.2f}x")
    finally:
        listener.kill()
        listener.wait()
        netns.kill_processes_in([CLIENT, SERVER])
        for name in (CLIENT, SERVER):
            netns.delete(name)


if __name__ == "__main__":
    main()
