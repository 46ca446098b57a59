"""A node's pod network as a value: the pod bridge, its gateway, routes to other nodes.

host-gw: every other node's pod subnet is routed via that node's IP, which works
when nodes share an L2 segment (as the lab's fabric bridge gives them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from podnet.kernel.route import Route
from podnet.model.node import Node

POD_BRIDGE = "cni0"


@dataclass(frozen=True)
class NodeNetwork:
    bridge: str
    gateway: str  # "10.244.1.1/24": the bridge's address, pods' default gateway
    routes: frozenset[Route]
    forwarding: bool = True
    egress: str | None = None  # nft body masquerading pod traffic that leaves the cluster


EGRESS_TABLE = "podnet-egress"


def render_egress(pod_cidr: str, cluster_cidr: str) -> str:
    """The seeds' `iptables -t nat -A POSTROUTING -s <pods> -j MASQUERADE`, but only
    for traffic leaving the pod network: pods talk to pods without NAT."""
    return ("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
            f"\t\tip saddr {pod_cidr} ip daddr != {cluster_cidr} masquerade\n\t}}")


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


def render_node_network(node: Node, nodes: Iterable[Node], cluster_cidr: str | None = None) -> NodeNetwork:
    if not node.pod_cidr:
        raise ValueError(f"node {node.metadata.name} has no podCIDR yet")
    egress = render_egress(node.pod_cidr, cluster_cidr) if cluster_cidr else None
    return NodeNetwork(POD_BRIDGE, str(gateway_for(node.pod_cidr)), host_gw_routes(node.metadata.name, nodes),
                       egress=egress)
