"""Both kernel backends (nft scripts and netlink batches) in real namespaces, and
the Fake held to them: the same transactions give the same state, and what the
Fake refuses the kernel refuses, through either backend."""

from __future__ import annotations

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
from podnet.proxy.ruleset import COLLECTIONS, TABLE as PROXY, build
from tests.helpers import in_netns

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
