"""A node's pod network as a value: the pod bridge, its gateway in each family,
egress masquerade per family, and what its backend (`network/backends.py`) adds
to reach other nodes' pods.

Egress is a table per family (`ip podnet-egress`, `ip6 podnet-egress`), each
rendered by the same function, as kube-proxy keeps a table per family: the IPv4
table stays exactly what an IPv4-only node has, and a family's table exists
only where the node has that family.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from podnet.kernel.nftables import Table, Transaction, base_chain, hooks
from podnet.kernel.nftables.rules import IP6_DADDR, IP6_SADDR, IP_DADDR, IP_SADDR, Masquerade, Rule, differs, match, rule
from podnet.kernel.route import ForwardingEntry, Neighbour, Route
from podnet.network import backends
from podnet.network.backends import VxlanDevice
from podnet.model.families import IPV4, IPV6, family_of, first_of, split_cidrs
from podnet.model.node import Node

POD_BRIDGE = "cni0"
UNDERLAY_MTU = 1500


def pod_mtu(backend: str, underlay_mtu: int = UNDERLAY_MTU, underlay_family: str = IPV4) -> int:
    return backends.named(backend).pod_mtu(underlay_mtu, underlay_family)


@dataclass(frozen=True)
class NodeNetwork:
    bridge: str
    gateways: tuple[str, ...]  # "10.244.1.1/24", "fd00:10:244:1::1/64": the bridge's addresses, pods' gateways
    routes: frozenset[Route]
    forwarding: bool = True
    egress: tuple[tuple[str, Rule], ...] = ()  # (family, rule): masquerading pod traffic that leaves the cluster
    vxlan: VxlanDevice | None = None
    neighbours: frozenset[Neighbour] = frozenset()
    fdb: frozenset[ForwardingEntry] = frozenset()

    @property
    def gateway(self) -> str:
        return self.gateways[0]

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(family_of(gateway) for gateway in self.gateways)


EGRESS_TABLES = {IPV4: Table("ip", hooks.NODE_EGRESS), IPV6: Table("ip6", hooks.NODE_EGRESS)}
EGRESS_TABLE = EGRESS_TABLES[IPV4]
_ADDRESS_FIELDS = {IPV4: (IP_SADDR, IP_DADDR), IPV6: (IP6_SADDR, IP6_DADDR)}


def render_egress(pod_cidr: str, cluster_cidr: str) -> Rule:
    """The seeds' `iptables -t nat -A POSTROUTING -s <pods> -j MASQUERADE`, but only
    for traffic leaving the pod network: pods talk to pods without NAT. Either
    family: the CIDRs say which."""
    source, destination = _ADDRESS_FIELDS[family_of(pod_cidr)]
    return rule("postrouting", match(source, pod_cidr), differs(destination, cluster_cidr), Masquerade())


def egress_transaction(egress: Rule, family: str = IPV4) -> Transaction:
    """The family's whole table, rewritten every pass: one small transaction that repairs any drift."""
    table = EGRESS_TABLES[family]
    return Transaction(table).replace().add(base_chain(table, "postrouting"), egress)


def gateway_for(pod_cidr: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """First address of the node's pod subnet, as the reference bridge plugin picks."""
    network = ipaddress.ip_network(pod_cidr)
    return ipaddress.ip_interface(f"{network.network_address + 1}/{network.prefixlen}")


def render_node_network(node: Node, nodes: Iterable[Node], cluster_cidr: str | None = None,
                        backend: str = backends.DEFAULT, underlay_mtu: int = UNDERLAY_MTU) -> NodeNetwork:
    """cluster_cidr: the pod network, a CIDR per family separated by commas (as
    the agent's --cluster-cidr); egress from a family it lacks is not masqueraded."""
    if not node.pod_cidrs:
        raise ValueError(f"node {node.metadata.name} has no podCIDR yet")
    peers = [n for n in nodes if n.metadata.name != node.metadata.name and n.pod_cidr and n.internal_ip]
    peering = backends.named(backend).peering(node, peers, underlay_mtu)
    cluster_cidrs = split_cidrs(cluster_cidr or "")
    egress = tuple((family_of(cidr), render_egress(cidr, cluster))
                   for cidr in node.pod_cidrs if (cluster := first_of(cluster_cidrs, family_of(cidr))))
    return NodeNetwork(POD_BRIDGE, tuple(str(gateway_for(cidr)) for cidr in node.pod_cidrs), peering.routes,
                       egress=egress, vxlan=peering.vxlan, neighbours=peering.neighbours, fdb=peering.fdb)
