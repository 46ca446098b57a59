"""A node's pod network as a value: the pod bridge, its gateway, routes to other nodes.

Two backends, as flannel's:
  host-gw  every other node's pod subnet is routed via that node's IP, which works
           when nodes share an L2 segment (as the lab's fabric bridge gives them);
  vxlan    pod traffic to another node is encapsulated in UDP (port 8472) to that
           node's IP, so nodes need only reach each other by IP. Per remote node:
           a route to its pod subnet via its VTEP address (onlink), a permanent
           neighbour entry for that address, and an FDB entry sending the VTEP's
           MAC to the node's IP. Pod interfaces get the underlay MTU less 50.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from podnet.kernel.nftables import Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.rules import IP_DADDR, IP_SADDR, Masquerade, Rule, differs, match, rule
from podnet.kernel.route import ForwardingEntry, Neighbour, Route
from podnet.model.node import Node

POD_BRIDGE = "cni0"
BACKENDS = ("host-gw", "vxlan")
VXLAN_DEVICE = "podnet.1"
VXLAN_VNI = 1
VXLAN_PORT = 8472  # flannel's (the Linux default, before IANA's 4789)
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
UNDERLAY_MTU = 1500


@dataclass(frozen=True)
class VxlanDevice:
    name: str
    vni: int
    local: str  # the node's IP: tunnels start and end there
    port: int
    mac: str
    mtu: int
    address: str  # the node's VTEP address, its pod subnet's network address as a /32


def vtep_mac(node_name: str) -> str:
    """A node's VTEP MAC, derived from its name so every peer knows it without
    asking (flannel keeps a random one in the node's annotations instead)."""
    digest = hashlib.sha256(node_name.encode()).digest()
    return ":".join(f"{b:02x}" for b in bytes([0x02]) + digest[:5])


def pod_mtu(backend: str, underlay_mtu: int = UNDERLAY_MTU) -> int:
    return underlay_mtu - VXLAN_OVERHEAD if backend == "vxlan" else underlay_mtu


@dataclass(frozen=True)
class NodeNetwork:
    bridge: str
    gateway: str  # "10.244.1.1/24": the bridge's address, pods' default gateway
    routes: frozenset[Route]
    forwarding: bool = True
    egress: Rule | None = None  # masquerading pod traffic that leaves the cluster
    vxlan: VxlanDevice | None = None
    neighbours: frozenset[Neighbour] = frozenset()
    fdb: frozenset[ForwardingEntry] = frozenset()


EGRESS_TABLE = Table("ip", hooks.NODE_EGRESS)


def render_egress(pod_cidr: str, cluster_cidr: str) -> Rule:
    """The seeds' `iptables -t nat -A POSTROUTING -s <pods> -j MASQUERADE`, but only
    for traffic leaving the pod network: pods talk to pods without NAT."""
    return rule("postrouting", match(IP_SADDR, pod_cidr), differs(IP_DADDR, cluster_cidr), Masquerade())


def egress_transaction(egress: Rule) -> Transaction:
    """The whole table, rewritten every pass: one small transaction that repairs any drift."""
    return Transaction(EGRESS_TABLE).replace().add(base_chain(EGRESS_TABLE, "postrouting"), egress)


def gateway_for(pod_cidr: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """First address of the node's pod subnet, as the reference bridge plugin picks."""
    network = ipaddress.ip_network(pod_cidr)
    return ipaddress.ip_interface(f"{network.network_address + 1}/{network.prefixlen}")


def host_gw_routes(self_name: str, nodes: Iterable[Node]) -> frozenset[Route]:
    return frozenset(
        Route(dst=node.pod_cidr, via=node.internal_ip)
        for node in nodes
        if node.metadata.name != self_name and node.pod_cidr and node.internal_ip
    )


def vtep_address(pod_cidr: str) -> str:
    """A VXLAN node's address on its tunnel device (and what masquerade gives packets leaving by it)."""
    return str(ipaddress.ip_network(pod_cidr).network_address)


def render_node_network(node: Node, nodes: Iterable[Node], cluster_cidr: str | None = None,
                        backend: str = "host-gw", underlay_mtu: int = UNDERLAY_MTU) -> NodeNetwork:
    if not node.pod_cidr:
        raise ValueError(f"node {node.metadata.name} has no podCIDR yet")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    egress = render_egress(node.pod_cidr, cluster_cidr) if cluster_cidr else None
    gateway = str(gateway_for(node.pod_cidr))
    if backend == "host-gw":
        return NodeNetwork(POD_BRIDGE, gateway, host_gw_routes(node.metadata.name, nodes), egress=egress)
    if not node.internal_ip:
        raise ValueError(f"node {node.metadata.name} has no internal IP for its VXLAN tunnels")
    device = VxlanDevice(VXLAN_DEVICE, VXLAN_VNI, node.internal_ip, VXLAN_PORT, vtep_mac(node.metadata.name),
                         pod_mtu(backend, underlay_mtu), f"{vtep_address(node.pod_cidr)}/32")
    peers = [n for n in nodes if n.metadata.name != node.metadata.name and n.pod_cidr and n.internal_ip]
    return NodeNetwork(
        POD_BRIDGE, gateway,
        frozenset(Route(p.pod_cidr, vtep_address(p.pod_cidr), VXLAN_DEVICE, onlink=True) for p in peers),  # type: ignore[arg-type]
        egress=egress, vxlan=device,
        neighbours=frozenset(Neighbour(vtep_address(p.pod_cidr), vtep_mac(p.metadata.name), VXLAN_DEVICE)  # type: ignore[arg-type]
                             for p in peers),
        fdb=frozenset(ForwardingEntry(vtep_mac(p.metadata.name), p.internal_ip, VXLAN_DEVICE)  # type: ignore[arg-type]
                      for p in peers),
    )
