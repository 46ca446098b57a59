"""Both kernel backends (nft scripts and netlink batches) in real namespaces, and
the Fake held to them: the same transactions give the same state, and what the
Fake refuses the kernel refuses, through either backend."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from podnet.cni.hostns import host_nft
from podnet.errors import KernelError
from podnet.kernel import netns
from podnet.kernel.nftables import Chain, Element, Set, Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.fake import Fake
from podnet.kernel.nftables.nfnl import NetlinkNft
from podnet.kernel.nftables.nft import Nft
from podnet.kernel.nftables.rules import IP_SADDR, Masquerade, jump, match, rule
from podnet.model.manifest import parse_resource
from podnet.controller.endpointslices import desired
from podnet.proxy.endpoints import service_ports
from podnet.kernel.node import NamespaceKernel
from podnet.model.families import IPV4, IPV6
from podnet.proxy.proxier import Proxier
from podnet.proxy.ruleset import COLLECTIONS, TABLES, TABLE as PROXY, build
from tests.helpers import in_netns, within

NAT = Table("inet", hooks.TOPOLOGY_NAT)
BACKENDS = pytest.mark.parametrize("backend", [Nft, NetlinkNft], ids=["nft", "netlink"])


def masquerading(source: str) -> Transaction:
    return Transaction(NAT).replace().add(base_chain(NAT, "postrouting")).add(
        rule("postrouting", match(IP_SADDR, source), Masquerade()))


@BACKENDS
def test_a_table_is_replaced_whole_and_a_failed_transaction_changes_nothing(make_netns, backend) -> None:  # type: ignore[no-untyped-def]
    nft = backend.in_namespace(make_netns())
    nft.run(masquerading("10.1.0.0/24"))
    nft.run(masquerading("10.2.0.0/24"))
    ruleset = nft.list_ruleset()
    assert "10.2.0.0/24" in ruleset and "10.1.0.0/24" not in ruleset
    with pytest.raises(KernelError, match="nft: "):
        nft.run(masquerading("10.3.0.0/24").add(rule("postrouting", jump("nowhere"))))
    assert "10.2.0.0/24" in nft.list_ruleset()
    nft.run(Transaction(NAT).delete(NAT))
    assert "podnet" not in nft.list_ruleset()


def proxy_table() -> Transaction:
    pods = [parse_resource({"kind": "Pod", "metadata": {"name": f"p{i}", "labels": {"app": "web"}},
                            "spec": {"nodeName": "n1"}, "status": {"podIP": f"10.244.0.{i + 2}", "conditions": [
                                {"type": "Ready", "status": "True"}]}}) for i in range(3)]
    services = [
        parse_resource({"kind": "Service", "metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "clusterIP": "10.96.0.2", "type": "NodePort",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
        parse_resource({"kind": "Service", "metadata": {"name": "sticky"}, "spec": {
            "selector": {"app": "web"}, "clusterIP": "10.96.0.3", "sessionAffinity": "ClientIP",
            "externalIPs": ["203.0.113.50"], "ports": [{"port": 80}]}}),
        parse_resource({"kind": "Service", "metadata": {"name": "empty"}, "spec": {
            "selector": {"app": "none"}, "clusterIP": "10.96.0.4", "ports": [{"port": 80}]}}),
    ]
    return build(service_ports(services, desired(services, pods), "n1"), "10.244.0.0/16").transaction()  # type: ignore[arg-type]


@BACKENDS
def test_the_kernel_and_the_fake_hold_the_same_proxy_table(make_netns, backend) -> None:  # type: ignore[no-untyped-def]
    name = make_netns()
    nft, fake = backend.in_namespace(name), Fake()
    for backend in (nft, fake):
        backend.run(proxy_table())
    for collection in COLLECTIONS:
        kernel = sorted(nft.list_elements(PROXY, collection.name, collection.kind), key=Element.text)
        assert kernel == sorted(fake.list_elements(PROXY, collection.name), key=Element.text), collection.name
    listed = in_netns(name, "nft", "list", "table", "ip", PROXY.name).stdout
    for chain in fake.tables[PROXY].chains:
        assert f"chain {chain} {{" in listed


@pytest.mark.parametrize("change", [
    Transaction(PROXY).create(Element("cluster_ips", ("10.96.0.2",))),
    Transaction(PROXY).delete(Element("cluster_ips", ("10.96.9.9",))),
    Transaction(PROXY).delete(Element("cluster_ips", ("10.96.0.2",)), Element("cluster_ips", ("10.96.0.2",))),
    Transaction(PROXY).delete(Chain("reject_service")),
    Transaction(PROXY).add(Element("hairpin", ("10.244.0.2",))),
    Transaction(Table("ip", "absent")).add(Chain("x")),
    Transaction(PROXY).add(Set("cluster_ips", "ipv6_addr")),
], ids=["create-existing-element", "delete-missing-element", "delete-element-twice", "delete-used-chain", "short-key", "missing-table",
        "redeclared-set"])
@BACKENDS
def test_what_the_fake_refuses_the_kernel_refuses(make_netns, backend, change: Transaction) -> None:  # type: ignore[no-untyped-def]
    nft, fake = backend.in_namespace(make_netns()), Fake()
    for backend in (nft, fake):
        backend.run(proxy_table())
    before = nft.list_ruleset()
    with pytest.raises(KernelError):
        fake.run(change)
    with pytest.raises(KernelError):
        nft.run(change)
    assert nft.list_ruleset() == before


@BACKENDS
def test_destroy_removes_whether_or_not_there_even_when_named_twice(make_netns, backend) -> None:  # type: ignore[no-untyped-def]
    """A CNI DEL names an address from its lease and again from the container's
    link: the kernel refused the second delete and the element stayed."""
    nft, fake = backend.in_namespace(make_netns()), Fake()
    twice = [Element("cluster_ips", ("10.96.0.2",))] * 2 + [Element("cluster_ips", ("10.96.9.9",))]
    for backend in (nft, fake):
        backend.run(proxy_table())
        backend.run(Transaction(PROXY).destroy(*twice))
        assert ("10.96.0.2",) not in {e.key for e in backend.list_elements(PROXY, "cluster_ips")}


@BACKENDS
def test_listing_a_missing_set_is_empty_and_other_failures_are_raised(make_netns, backend) -> None:  # type: ignore[no-untyped-def]
    nft = backend.in_namespace(make_netns())
    assert nft.list_elements(PROXY, "cluster_ips") == []
    with pytest.raises(KernelError):
        nft.list_elements(Table("ip", "bad name!"), "x")


def test_netlink_batches_build_what_nft_scripts_build(make_netns) -> None:  # type: ignore[no-untyped-def]
    """The proxy's table (affinity, node ports, external IPs, an empty service) sent
    as a netlink batch lists exactly as the same table loaded as an nft script."""
    by_script, by_netlink = make_netns(), make_netns()
    Nft.in_namespace(by_script).run(proxy_table())
    NetlinkNft.in_namespace(by_netlink).run(proxy_table())
    listed = [in_netns(name, "nft", "list", "ruleset").stdout for name in (by_script, by_netlink)]
    assert "typeof ip daddr . meta l4proto . th dport . numgen random mod 1" in listed[1]
    assert listed[0] == listed[1]


def test_a_netlink_refusal_names_what_it_concerns(make_netns) -> None:  # type: ignore[no-untyped-def]
    nft = NetlinkNft.in_namespace(make_netns())
    nft.run(proxy_table())
    with pytest.raises(KernelError, match=r"nft: add rule ip podnet-proxy reject_service: .*No such file"):
        nft.run(Transaction(PROXY).add(rule("reject_service", jump("nowhere"))))
    with pytest.raises(KernelError, match=r"nft: create element ip podnet-proxy cluster_ips: .*File exists"):
        nft.run(Transaction(PROXY).create(Element("cluster_ips", ("10.96.0.2",))))


def test_the_plugins_host_nftables_are_one_handle_per_namespace(make_netns) -> None:  # type: ignore[no-untyped-def]
    """Every call the agent serves, each on a thread of its own, shares the agent
    namespace's one NetlinkNft (and socket); another namespace has its own."""
    first, second = make_netns(), make_netns()
    handle = netns.run_in(first, host_nft)
    assert netns.run_in(first, host_nft) is handle  # run_in calls from a new thread each time
    assert netns.run_in(second, host_nft) is not handle


def dual_stack_table() -> Transaction:
    """The IPv6 table of the same kinds of Services, dual-stack."""
    from tests.unit.test_proxy_ruleset import DUAL_PODS, POD_NETWORKS, dual_service, family_slices

    services = [dual_service(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080},
                                                     {"name": "dns", "port": 53, "protocol": "UDP"}]),
                dual_service("sticky", ("10.96.0.3", "fd00:10:96::3"), sessionAffinity="ClientIP",
                             externalIPs=["2001:db8::50"]),
                dual_service("empty", ("fd00:10:96::4",), selector={"app": "none"})]
    return build(service_ports(services, family_slices(services, DUAL_PODS), "n1"), POD_NETWORKS, IPV6).transaction()


def test_the_ipv6_table_by_netlink_lists_as_by_nft_and_holds_what_the_fake_holds(make_netns) -> None:  # type: ignore[no-untyped-def]
    by_script, by_netlink = make_netns(), make_netns()
    Nft.in_namespace(by_script).run(dual_stack_table())
    netlink, fake = NetlinkNft.in_namespace(by_netlink), Fake()
    for backend in (netlink, fake):
        backend.run(dual_stack_table())
    listed = [in_netns(name, "nft", "list", "ruleset").stdout for name in (by_script, by_netlink)]
    assert "typeof ip6 daddr . meta l4proto . th dport . numgen random mod 1" in listed[1]
    assert listed[0] == listed[1]
    table = TABLES[IPV6]
    for collection in COLLECTIONS:
        kernel = sorted(netlink.list_elements(table, collection.name, collection.kind), key=Element.text)
        assert kernel == sorted(fake.list_elements(table, collection.name), key=Element.text), collection.name
    assert any(e.key[0] == "fd00:10:96::2" for e in fake.list_elements(table, "services"))


# A node between a client outside and a pod, as a lab wires them, over both families.
NODE_SIDE = {IPV4: ("10.244.1.1/24", "172.18.0.2/24"), IPV6: ("fd00:10:244:1::1/64", "fd00:172:18::2/64")}
POD = {IPV4: "10.244.1.2", IPV6: "fd00:10:244:1::2"}
OUTSIDE = {IPV4: "172.18.0.100", IPV6: "fd00:172:18::100"}
CLUSTER_IP = {IPV4: "10.96.0.2", IPV6: "fd00:10:96::2"}
EMPTY_IP = {IPV4: "10.96.0.4", IPV6: "fd00:10:96::4"}
SERVICE_RANGE = {IPV4: "10.96.0.0/12", IPV6: "fd00:10:96::/112"}
_ECHO_PEER = ("import socket\ns = socket.socket(socket.AF_INET6)\n"
              "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\ns.bind(('::', 8080))\ns.listen(64)\n"
              "while True:\n    c, peer = s.accept()\n    c.sendall(peer[0].removeprefix('::ffff:').encode())\n"
              "    c.close()\n")


def service_node(make_netns) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """(node, pod, outside): the node routes between the two on both families, and
    the pod answers on port 8080 with the address it sees its client as."""
    node, pod, outside = make_netns(), make_netns(), make_netns()
    for peer, ifname in ((pod, "to-pod"), (outside, "to-out")):
        in_netns(node, "ip", "link", "add", ifname, "type", "veth", "peer", "name", "eth0", "netns", peer)
        in_netns(node, "ip", "link", "set", ifname, "up")
        in_netns(peer, "ip", "link", "set", "eth0", "up")
        in_netns(peer, "ip", "link", "set", "lo", "up")
    in_netns(node, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
    for family in (IPV4, IPV6):
        to_pod, to_outside = NODE_SIDE[family]
        in_netns(node, "ip", "addr", "add", to_pod, "dev", "to-pod", *(["nodad"] if family == IPV6 else []))
        in_netns(node, "ip", "addr", "add", to_outside, "dev", "to-out", *(["nodad"] if family == IPV6 else []))
        in_netns(node, "ip", "route", "add", SERVICE_RANGE[family], "dev", "to-pod")  # VIPs route somewhere
        for peer, address, gateway in ((pod, POD[family], to_pod), (outside, OUTSIDE[family], to_outside)):
            prefix = "64" if family == IPV6 else "24"
            in_netns(peer, "ip", "addr", "add", f"{address}/{prefix}", "dev", "eth0",
                     *(["nodad"] if family == IPV6 else []))
            in_netns(peer, "ip", "route", "add", "default", "via", gateway.split("/")[0])
    subprocess.Popen(netns.exec_argv(pod, [sys.executable, "-c", _ECHO_PEER]))
    assert within(5, lambda: netns.run_in(pod, _listening))
    return node, pod, outside


def _listening() -> bool:
    with socket.socket(socket.AF_INET6) as probe:
        return probe.connect_ex(("::1", 8080)) == 0


def ask(namespace: str, address: str, port: int) -> str:
    """Connects from the namespace; what the pod saw the client as, or the error."""
    def connect() -> str:
        try:
            with socket.create_connection((address, port), timeout=3) as sock:
                return sock.recv(100).decode()
        except OSError as err:
            return type(err).__name__
    return str(netns.run_in(namespace, connect))


@pytest.mark.parametrize("family", [IPV4, IPV6])
def test_real_packets_reach_the_pod_through_the_cluster_ip_and_the_node_port(make_netns, family: str) -> None:  # type: ignore[no-untyped-def]
    """The proxier writes both families' tables from one snapshot; a connection of
    either family to the ClusterIP (from the node) and to the node port (from
    outside, masqueraded) reaches the pod, and an empty Service refuses at once."""
    from tests.unit.test_proxy_ruleset import POD_NETWORKS, dual_pod, dual_service, family_slices

    node, _, outside = service_node(make_netns)
    services = [dual_service(type="NodePort", ports=[{"port": 80, "targetPort": 8080, "nodePort": 30080}]),
                dual_service("empty", (EMPTY_IP[IPV4], EMPTY_IP[IPV6]), selector={"app": "none"})]
    pods = [dual_pod("web-0", POD[IPV4], POD[IPV6], "n2")]
    Proxier(NamespaceKernel(node), "n1", POD_NETWORKS).sync_services(services, family_slices(services, pods))
    node_side = NODE_SIDE[family][0].split("/")[0]
    assert ask(node, CLUSTER_IP[family], 80) == node_side  # the node's own connection, from its address on the way
    assert ask(outside, NODE_SIDE[family][1].split("/")[0], 30080) == node_side  # Cluster policy: masqueraded
    assert ask(outside, EMPTY_IP[family], 80) == "ConnectionRefusedError"  # a TCP reset, at once
