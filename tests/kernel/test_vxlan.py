"""VXLAN as flannel programs it, between two namespaces on one underlay link: a
device per side, and for the peer an onlink route, a permanent neighbour and an
FDB entry; pings then cross encapsulated, and sync removes what is no longer wanted."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from podnet.kernel import netns
from podnet.kernel.netlink import open_namespace
from podnet.kernel.route import ForwardingEntry, Neighbour, Route

SIDES = {  # underlay IP, VTEP MAC, pod subnet
    "a": ("192.0.2.1", "02:aa:00:00:00:01", "10.250.1.0/24"),
    "b": ("192.0.2.2", "02:bb:00:00:00:02", "10.250.2.0/24"),
}


def test_vxlan_peers_reach_each_others_subnets(make_veth_pair: Callable[[str, str, str], tuple[str, str]]) -> None:
    names = dict(zip(("a", "b"), make_veth_pair("eth0", f"{SIDES['a'][0]}/24", f"{SIDES['b'][0]}/24")))
    for side, other in (("a", "b"), ("b", "a")):
        ip, mac, subnet = SIDES[side]
        peer_ip, peer_mac, peer_subnet = SIDES[other]
        peer_vtep = peer_subnet.replace(".0/24", ".0")
        with open_namespace(names[side]) as ns:
            ns.ensure_vxlan("vx0", 1, ip, 8472, mac, 1450, "eth0")
            ns.ensure_address("vx0", subnet.replace(".0/24", ".0/32"))
            ns.ensure_address("vx0", subnet.replace(".0/24", ".1/32"))  # a pod-side address to ping
            ns.add_route(Route(peer_subnet, peer_vtep, "vx0", onlink=True))
            assert ns.sync_neighbours("vx0", [Neighbour(peer_vtep, peer_mac, "vx0")])[0]
            assert ns.sync_forwarding("vx0", [ForwardingEntry(peer_mac, peer_ip, "vx0")])[0]
            assert ns.sync_neighbours("vx0", [Neighbour(peer_vtep, peer_mac, "vx0")]) == (set(), set())
            assert Route(peer_subnet, peer_vtep, "vx0", onlink=True) in ns.routes()
            assert ns.link_info("vx0")["mtu"] == 1450  # type: ignore[index]
    ping = subprocess.run(netns.exec_argv(names["a"], ["ping", "-c", "2", "-W", "2", "-I", "10.250.1.1", "10.250.2.1"]),
                          capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    with open_namespace(names["a"]) as a:
        added, removed = a.sync_forwarding("vx0", [])
        assert not added and removed == {ForwardingEntry(SIDES["b"][1], SIDES["b"][0], "vx0")}
        a.sync_neighbours("vx0", [])
        assert not a.neighbours("vx0") and not a.forwarding_entries("vx0")
    ping = subprocess.run(netns.exec_argv(names["a"], ["ping", "-c", "1", "-W", "1", "-I", "10.250.1.1", "10.250.2.1"]),
                          capture_output=True, text=True)
    assert ping.returncode != 0  # without the peer's entries nothing crosses
