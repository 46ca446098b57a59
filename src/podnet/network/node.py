"""A node's pod network as a value: the pod bridge, its gateway, egress
masquerade, and what its backend (`network/backends.py`) adds to reach other
nodes' pods.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from podnet.kernel.nftables import Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.rules import IP_DADDR, IP_SADDR, Masquerade, Rule, differs, match, rule
from podnet.kernel.route import ForwardingEntry, Neighbour, Route
from podnet.network import backends
from podnet.network.backends import VxlanDevice
from podnet.model.node import Node

POD_BRIDGE = "cni0"
UNDERLAY_MTU = 1500


def pod_mtu(backend: str, underlay_mtu: int = UNDERLAY_MTU) -> int:
    return backends.named(backend).pod_mtu(underlay_mtu)


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


def render_node_network(node: Node, nodes: Iterable[Node], cluster_cidr: str | None = None,
                        backend: str = backends.DEFAULT, underlay_mtu: int = UNDERLAY_MTU) -> NodeNetwork:
    if not node.pod_cidr:
        raise ValueError(f"node {node.metadata.name} has no podCIDR yet")
    peers = [n for n in nodes if n.metadata.name != node.metadata.name and n.pod_cidr and n.internal_ip]
    peering = backends.named(backend).peering(node, peers, underlay_mtu)
    return NodeNetwork(POD_BRIDGE, str(gateway_for(node.pod_cidr)), peering.routes,
                       egress=render_egress(node.pod_cidr, cluster_cidr) if cluster_cidr else None,
                       vxlan=peering.vxlan, neighbours=peering.neighbours, fdb=peering.fdb)
