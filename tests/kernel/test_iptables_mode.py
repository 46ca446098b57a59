"""kube-proxy's iptables layout, restored by iptables-restore in a namespace with
either backend (nft, legacy): a connection to the ClusterIP reaches the endpoint
through the KUBE chains, and `iptables -t nat -L` shows the Service's rules by
name, as in the seed."""

from __future__ import annotations

import socket
import subprocess

import pytest

from podnet.kernel import iptables, netns
from podnet.proxy.iptables import JUMPS, build_iptables
from tests.helpers import in_netns
from tests.unit.test_proxy_ruleset import service, views, pod


@pytest.mark.parametrize("backend", list(iptables.BACKENDS))
def test_a_cluster_ip_reaches_its_endpoint_through_the_kube_chains(make_veth_pair, backend: str) -> None:  # type: ignore[no-untyped-def]
    client, server = make_veth_pair("ipt0", "10.244.0.1/16", "10.244.1.2/16")
    in_netns(client, "ip", "route", "add", "10.96.0.0/12", "dev", "ipt0")  # service addresses route somewhere
    listener = subprocess.Popen(netns.exec_argv(server, ["nc", "-l", "-k", "-p", "8080"]), stdout=subprocess.DEVNULL)
    try:
        view = views([service(name="db-service", ports=[{"port": 80, "targetPort": 8080}])],
                     [pod("db-0", "10.244.1.2", "n2")], "n1")
        writer = iptables.IptablesWriter(client, backend)
        writer.restore(build_iptables(view, "10.244.0.0/16").restore_text())
        writer.ensure_jumps(JUMPS)
        writer.ensure_jumps(JUMPS)  # twice: each jump once
        command = iptables.BACKENDS[backend][1]
        listed = in_netns(client, command, "-t", "nat", "-L", "-n").stdout
        assert sum("db-service" in line for line in listed.splitlines()) >= 3  # the seed's grep finds them
        assert in_netns(client, command, "-t", "nat", "-S", "OUTPUT").stdout.count("KUBE-SERVICES") == 1

        def connect() -> str:
            with socket.create_connection(("10.96.0.2", 80), timeout=3) as sock:
                return str(sock.getpeername()[0])

        assert netns.run_in(client, connect) == "10.96.0.2"  # answered through the DNAT
    finally:
        listener.kill()
        listener.wait()


@pytest.mark.parametrize("family", ["IPv4", "IPv6"])
@pytest.mark.parametrize("backend", list(iptables.BACKENDS))
def test_both_families_reach_the_pod_through_the_cluster_ip_and_the_node_port(make_netns, backend: str,
                                                                              family: str) -> None:  # type: ignore[no-untyped-def]
    """The iptables-mode proxier restores iptables' and ip6tables' chains from one
    snapshot: a connection of either family to the ClusterIP (from the node) and to
    the node port (from outside, masqueraded) reaches the pod; an empty Service is
    refused."""
    from podnet.kernel.node import NamespaceKernel
    from podnet.proxy.iptables import IptablesProxier
    from tests.kernel.test_nftables import CLUSTER_IP, EMPTY_IP, NODE_SIDE, POD, ask, service_node
    from tests.unit.test_proxy_ruleset import POD_NETWORKS, dual_pod, dual_service, family_slices

    node, _, outside = service_node(make_netns)
    services = [dual_service(type="NodePort", ports=[{"port": 80, "targetPort": 8080, "nodePort": 30080}]),
                dual_service("empty", (EMPTY_IP["IPv4"], EMPTY_IP["IPv6"]), selector={"app": "none"})]
    pods = [dual_pod("web-0", POD["IPv4"], POD["IPv6"], "n2")]
    proxier = IptablesProxier(NamespaceKernel(node), iptables.IptablesWriter(node, backend), "n1", POD_NETWORKS)
    assert proxier.sync_services(services, family_slices(services, pods)) == "table"
    listed = in_netns(node, iptables.commands(backend, family)[1], "-t", "nat", "-S", "KUBE-SERVICES").stdout
    assert f"-d {CLUSTER_IP[family]}/{32 if family == 'IPv4' else 128}" in listed
    node_side = NODE_SIDE[family][0].split("/")[0]
    assert ask(node, CLUSTER_IP[family], 80) == node_side
    assert ask(outside, NODE_SIDE[family][1].split("/")[0], 30080) == node_side  # Cluster policy: masqueraded
    assert ask(outside, EMPTY_IP[family], 80) == "ConnectionRefusedError"
