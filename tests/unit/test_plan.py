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
