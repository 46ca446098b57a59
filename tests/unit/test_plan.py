"""Planning a cluster lab: addresses, subnets, scheduling and names, without root."""

from __future__ import annotations

import ipaddress

import pytest

from podnet.errors import ManifestError
from podnet.lab import names
from podnet.lab.plan import plan_cluster
from podnet.lab.spec import parse_lab
from podnet.network.node import render_node_network
from podnet.kernel.route import Route


def spec(pods: int = 4, nodes: int = 2, services: list | None = None, **networking: object):  # type: ignore[no-untyped-def, type-arg]
    workloads = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"}, "spec": {}} for i in range(pods)]
    return parse_lab([{"kind": "Cluster", "metadata": {"name": "t"}, "networking": networking,
                       "nodes": [{"name": f"n{i}"} for i in range(nodes)], "workloads": workloads + (services or [])}])


def test_nodes_get_consecutive_addresses_and_subnets() -> None:
    plan = plan_cluster(spec())
    assert plan.fabric_address == "172.18.0.1/16"
    assert [(n.name, n.address, n.pod_cidr) for n in plan.nodes] == [
        ("n0", "172.18.0.2/16", "10.244.0.0/24"), ("n1", "172.18.0.3/16", "10.244.1.0/24")]
    assert [n.namespace for n in plan.nodes] == ["pn-t.n0", "pn-t.n1"]


def test_the_workloads_are_applied_with_namespaces_for_those_they_use() -> None:
    from podnet.lab.cluster import lab_workloads

    plan = plan_cluster(spec())
    applied = lab_workloads(spec(), plan)
    assert [w.kind for w in applied].count("Pod") == 5  # four pods and the cluster DNS
    assert not any(w.kind == "Namespace" for w in applied)  # default and kube-system exist from the start


def test_a_full_node_is_an_error() -> None:
    with pytest.raises(ManifestError, match=r"7 pods \(with the cluster DNS\) do not fit in the nodes. subnets, which hold 5"):
        plan_cluster(spec(pods=6, nodes=1, podSubnet="10.244.0.0/16", nodeCIDRMaskSize=29))


def test_planning_is_pure() -> None:
    assert plan_cluster(spec()) == plan_cluster(spec())


def test_host_gw_routes_point_at_every_other_node() -> None:
    nodes = [n.node() for n in plan_cluster(spec(nodes=3)).nodes]
    assert render_node_network(nodes[0], nodes).routes == {
        Route("10.244.1.0/24", via="172.18.0.3"), Route("10.244.2.0/24", via="172.18.0.4")}
    network = render_node_network(nodes[1], nodes)
    assert (network.bridge, network.gateway, network.forwarding) == ("cni0", "10.244.1.1/24", True)
    assert Route("10.244.1.0/24", via="172.18.0.3") not in network.routes


def test_vxlan_peers_get_a_route_a_neighbour_and_an_fdb_entry() -> None:
    from podnet.kernel.route import ForwardingEntry, Neighbour
    from podnet.network.backends import vtep_mac

    nodes = [n.node() for n in plan_cluster(spec(nodes=3, backend="vxlan")).nodes]
    network = render_node_network(nodes[0], nodes, backend="vxlan")
    assert network.vxlan is not None
    assert (network.vxlan.local, network.vxlan.mtu, network.vxlan.address, network.vxlan.port) == (
        "172.18.0.2", 1450, "10.244.0.0/32", 8472)
    assert network.routes == {Route("10.244.1.0/24", "10.244.1.0", "podnet.1", onlink=True),
                              Route("10.244.2.0/24", "10.244.2.0", "podnet.1", onlink=True)}
    assert network.neighbours == {Neighbour("10.244.1.0", vtep_mac("n1"), "podnet.1"),
                                  Neighbour("10.244.2.0", vtep_mac("n2"), "podnet.1")}
    assert network.fdb == {ForwardingEntry(vtep_mac("n1"), "172.18.0.3", "podnet.1"),
                           ForwardingEntry(vtep_mac("n2"), "172.18.0.4", "podnet.1")}
    assert len({vtep_mac(n.metadata.name) for n in nodes}) == 3 and network.vxlan.mac == vtep_mac("n0")


def test_a_routed_underlay_puts_each_node_behind_the_fabric_on_a_subnet_of_its_own() -> None:
    plan = plan_cluster(spec(nodes=2, backend="vxlan", underlay="routed"))
    assert [(n.address, n.gateway, n.router_port) for n in plan.nodes] == [
        ("172.18.1.2/24", "172.18.1.1", "172.18.1.1/24"), ("172.18.2.2/24", "172.18.2.1", "172.18.2.1/24")]


def test_link_names_fit_the_kernel() -> None:
    assert names.short_ifname("worker") == "worker"
    assert names.short_ifname("default") != "default"  # the kernel refuses that name for a link
    long = names.short_ifname("a-node-with-a-long-name")
    assert len(long) <= 15 and long != names.short_ifname("a-node-with-a-long-nam")


def test_lab_names_are_not_prefixes_of_each_other() -> None:
    assert not names.member_namespace("demo2", "x").startswith(names.lab_prefix("demo"))
    assert ipaddress.ip_network("10.244.0.0/16")  # the defaults parse


def test_every_cluster_gets_dns_as_kubeadm_gives_it() -> None:
    from podnet.lab.cluster import cluster_config

    plan = plan_cluster(spec())
    (dns,) = plan.extra_services
    assert dns.cluster_ip == "10.96.0.10" and [p.protocol for p in dns.ports] == ["UDP", "TCP"]
    (coredns,) = plan.extra_pods
    assert coredns.command[:2] == ("podnet", "dns") and "--ready" in coredns.command and coredns.metadata.labels == {"k8s-app": "kube-dns"}
    assert cluster_config(spec()).resolv_conf("default") == (
        "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n")


DUAL = {"ipFamilies": ["IPv4", "IPv6"]}


def test_a_dual_stack_lab_gives_each_node_an_address_and_a_pod_subnet_per_family() -> None:
    plan = plan_cluster(spec(nodes=2, **DUAL))
    assert plan.fabric_addresses == ("172.18.0.1/16", "fd00:172:18::1/64")
    assert [(n.ips, n.pod_cidrs) for n in plan.nodes] == [
        (("172.18.0.2", "fd00:172:18::2"), ("10.244.0.0/24", "fd00:10:244::/64")),
        (("172.18.0.3", "fd00:172:18::3"), ("10.244.1.0/24", "fd00:10:244:1::/64"))]
    (dns,) = plan.extra_services
    assert (dns.cluster_ips, dns.ip_family_policy) == (("10.96.0.10", "fd00:10:96::a"), "RequireDualStack")


def test_ipv6_first_and_ipv6_only_labs() -> None:
    first = plan_cluster(spec(nodes=1, ipFamilies=["IPv6", "IPv4"])).nodes[0]
    assert (first.ip, first.pod_cidrs) == ("fd00:172:18::2", ("fd00:10:244::/64", "10.244.0.0/24"))
    only = plan_cluster(spec(nodes=1, ipFamilies=["IPv6"], podSubnet="fd00:99::/48", nodeCIDRMaskSizeIPv6=56))
    assert (only.nodes[0].ips, only.nodes[0].pod_cidrs, only.fabric_addresses) == (
        ("fd00:172:18::2",), ("fd00:99::/56",), ("fd00:172:18::1/64",))


@pytest.mark.parametrize("networking, message", [
    ({"ipFamilies": ["IPv4", "IPv6"], "podSubnet": "10.244.0.0/16"},
     "networking.podSubnet: gives no IPv6 subnet; ipFamilies [IPv4, IPv6] needs one per family"),
    ({"ipFamilies": ["IPv4"], "serviceSubnet": "10.96.0.0/12,fd00:10:96::/112"},
     "networking.serviceSubnet: fd00:10:96::/112 is IPv6, which is not in ipFamilies [IPv4]"),
    ({"ipFamilies": ["IPv4", "IPv4"]}, "networking.ipFamilies[1]: Duplicate value: 'IPv4'"),
    ({"ipFamilies": ["IPv5"]}, "networking.ipFamilies[0]: Unsupported value: 'IPv5': supported values"),
    ({"ipFamilies": ["IPv4", "IPv6"], "ipam": "dhcp"}, "networking.ipam: dhcp leases IPv4 addresses only"),
])
def test_dual_stack_lab_files_are_checked(networking: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ManifestError) as caught:
        spec(**networking)
    assert message in str(caught.value)


def test_the_pod_subnets_may_be_written_as_kubeadm_writes_them() -> None:
    written = spec(podSubnet="10.244.0.0/16,fd00:10:244::/56")
    assert written.ip_families == ("IPv4", "IPv6")
    assert written.pod_subnets == spec(podSubnet=["10.244.0.0/16", "fd00:10:244::/56"]).pod_subnets


def test_host_gw_routes_each_family_via_the_peers_address_of_that_family() -> None:
    nodes = [n.node() for n in plan_cluster(spec(nodes=2, **DUAL)).nodes]
    network = render_node_network(nodes[0], nodes, "10.244.0.0/16,fd00:10:244::/56")
    assert network.routes == {Route("10.244.1.0/24", via="172.18.0.3"), Route("fd00:10:244:1::/64", via="fd00:172:18::3")}
    assert network.gateways == ("10.244.0.1/24", "fd00:10:244::1/64")
    assert [family for family, _ in network.egress] == ["IPv4", "IPv6"]


def test_vxlan_carries_both_families_in_one_device_over_the_primary_underlay() -> None:
    from podnet.kernel.route import ForwardingEntry, Neighbour
    from podnet.network.backends import vtep_mac

    nodes = [n.node() for n in plan_cluster(spec(nodes=2, backend="vxlan", **DUAL)).nodes]
    network = render_node_network(nodes[0], nodes, backend="vxlan")
    assert network.vxlan is not None
    assert (network.vxlan.local, network.vxlan.addresses, network.vxlan.mtu) == (
        "172.18.0.2", ("10.244.0.0/32", "fd00:10:244::/128"), 1450)
    assert network.routes == {Route("10.244.1.0/24", "10.244.1.0", "podnet.1", onlink=True),
                              Route("fd00:10:244:1::/64", "fd00:10:244:1::", "podnet.1", onlink=True)}
    assert network.neighbours == {Neighbour("10.244.1.0", vtep_mac("n1"), "podnet.1"),
                                  Neighbour("fd00:10:244:1::", vtep_mac("n1"), "podnet.1")}
    assert network.fdb == {ForwardingEntry(vtep_mac("n1"), "172.18.0.3", "podnet.1")}
    only6 = [n.node() for n in plan_cluster(spec(nodes=2, backend="vxlan", ipFamilies=["IPv6"])).nodes]
    v6 = render_node_network(only6[0], only6, backend="vxlan")
    assert v6.vxlan is not None and (v6.vxlan.local, v6.vxlan.mtu) == ("fd00:172:18::2", 1430)
    assert v6.fdb == {ForwardingEntry(vtep_mac("n1"), "fd00:172:18::3", "podnet.1")}


def test_node_leases_take_a_subnet_in_each_family_and_give_both_back() -> None:
    from podnet.network.leases import NodeLeases, SubnetLeases
    from podnet.store.sqlite import SqliteStore

    store = SqliteStore(":memory:")
    subnets = (ipaddress.ip_network("10.244.0.0/16"), ipaddress.ip_network("fd00:10:244::/56"))
    leases = NodeLeases(store, subnets, lambda family: 64 if family == "IPv6" else 24)
    assert leases.acquire("a", "172.18.0.2") == ("10.244.0.0/24", "fd00:10:244::/64")
    assert leases.acquire("b", "172.18.0.3") == ("10.244.1.0/24", "fd00:10:244:1::/64")
    assert leases.acquire("a", "172.18.0.2") == ("10.244.0.0/24", "fd00:10:244::/64")  # its own, renewed
    leases.release("a", ("10.244.0.0/24", "fd00:10:244::/64"))
    assert SubnetLeases(store, subnets[1], 64).held() == {"fd00:10:244:1::/64": "b"}
