"""How pod traffic reaches other nodes: the backends, each registered once by
name, as flannel registers its own.

  host-gw  every other node's pod subnet is routed via that node's IP, which works
           when nodes share an L2 segment (as the lab's fabric bridge gives them);
  vxlan    pod traffic to another node is encapsulated in UDP (port 8472) to that
           node's IP, so nodes need only reach each other by IP. Per remote node:
           a route to its pod subnet via its VTEP address (onlink), a permanent
           neighbour entry for that address, and an FDB entry sending the VTEP's
           MAC to the node's IP. Pod interfaces get the underlay MTU less 50
           (70 over an IPv6 underlay).

Dual-stack, each backend works per family. host-gw routes a peer's IPv6 pod
subnet via the peer's IPv6 address, so it needs the underlay in both families.
VXLAN carries both families in one device: it is an Ethernet tunnel, so an
IPv6 pod packet is a frame like any other, sent to the peer's MAC, whose FDB
entry names the peer's underlay address (the primary family's). The device has
a VTEP address and a route and neighbour per peer in each pod family. flannel
makes a second device (flannel-v6.1) because it lets each family's underlay be
chosen apart; one device is enough when the nodes reach each other in the
primary family, and it halves the devices, neighbours and FDB entries. An
IPv6-only fabric gets an IPv6 underlay the same way: the tunnel's local and
peers' addresses are then IPv6.

The agent's --backend, `node join --backend`, lab files' networking.backend and
the trace all read BACKENDS; nothing else spells a backend's name.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import ClassVar, Protocol

from podnet.errors import PodnetError
from podnet.kernel.route import ForwardingEntry, Neighbour, Route
from podnet.model.families import FAMILIES, IPV4, IPV6, family_of
from podnet.model.node import Node

VXLAN_DEVICE = "podnet.1"
VXLAN_VNI = 1
VXLAN_PORT = 8472  # flannel's (the Linux default, before IANA's 4789)
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
VXLAN_OVERHEAD_V6 = 70  # an IPv6 outer header is 20 bytes longer


class UnknownBackend(PodnetError):
    """A backend name no backend is registered under."""


@dataclass(frozen=True)
class VxlanDevice:
    name: str
    vni: int
    local: str  # the node's IP: tunnels start and end there
    port: int
    mac: str
    mtu: int
    addresses: tuple[str, ...]  # the node's VTEP address per family: its pod subnet's network address, /32 or /128

    @property
    def address(self) -> str:
        return self.addresses[0]


@dataclass(frozen=True)
class Peering:
    """What a backend adds to a node's pod network so that its peers' pods are reached."""

    routes: frozenset[Route]
    vxlan: VxlanDevice | None = None
    neighbours: frozenset[Neighbour] = frozenset()
    fdb: frozenset[ForwardingEntry] = frozenset()


class Backend(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    one_segment: ClassVar[bool]  # the nodes must share an L2 segment

    def pod_mtu(self, underlay_mtu: int, underlay_family: str = IPV4) -> int: ...

    def peering(self, node: Node, peers: list[Node], underlay_mtu: int) -> Peering:
        """peers: the other nodes that have a pod subnet and an address."""

    def own_addresses(self, node: Node) -> set[str]:
        """Addresses the backend gives the node besides its own and its bridge's."""


def vtep_mac(node_name: str) -> str:
    """A node's VTEP MAC, derived from its name so every peer knows it without
    asking (flannel keeps a random one in the node's annotations instead)."""
    digest = hashlib.sha256(node_name.encode()).digest()
    return ":".join(f"{b:02x}" for b in bytes([0x02]) + digest[:5])


def vtep_address(pod_cidr: str) -> str:
    """A VXLAN node's address on its tunnel device (and what masquerade gives packets leaving by it)."""
    return str(ipaddress.ip_network(pod_cidr).network_address)


def _host_prefix(address: str) -> str:
    return f"{address}/{128 if ':' in address else 32}"


def peer_families(node: Node, peer: Node) -> list[str]:
    """The pod families both nodes have subnets in."""
    return [family for family in FAMILIES if node.pod_cidr_of(family) and peer.pod_cidr_of(family)]


class HostGw:
    name = "host-gw"
    description = "routed via the other nodes' IPs (the nodes share one L2 segment)"
    one_segment = True

    def pod_mtu(self, underlay_mtu: int, underlay_family: str = IPV4) -> int:
        return underlay_mtu

    def peering(self, node: Node, peers: list[Node], underlay_mtu: int) -> Peering:
        """A route per family, via the peer's address of that family (none where the peer lacks one)."""
        return Peering(frozenset(Route(dst=p.pod_cidr_of(family), via=p.internal_ip_of(family))  # type: ignore[arg-type]
                                 for p in peers for family in peer_families(node, p) if p.internal_ip_of(family)))

    def own_addresses(self, node: Node) -> set[str]:
        return set()


class Vxlan:
    name = "vxlan"
    description = "in VXLAN tunnels (UDP 8472) to the other nodes' IPs (they need only reach each other)"
    one_segment = False

    def pod_mtu(self, underlay_mtu: int, underlay_family: str = IPV4) -> int:
        return underlay_mtu - (VXLAN_OVERHEAD_V6 if underlay_family == IPV6 else VXLAN_OVERHEAD)

    def peering(self, node: Node, peers: list[Node], underlay_mtu: int) -> Peering:
        if not node.internal_ip:
            raise ValueError(f"node {node.metadata.name} has no internal IP for its VXLAN tunnels")
        underlay = family_of(node.internal_ip)  # the primary family's: every peer is reached in it
        device = VxlanDevice(VXLAN_DEVICE, VXLAN_VNI, node.internal_ip, VXLAN_PORT, vtep_mac(node.metadata.name),
                             self.pod_mtu(underlay_mtu, underlay),
                             tuple(_host_prefix(vtep_address(cidr)) for cidr in node.pod_cidrs))
        reached = [p for p in peers if p.internal_ip_of(underlay)]
        routes, neighbours = set(), set()
        for p in reached:
            for family in peer_families(node, p):
                vtep = vtep_address(p.pod_cidr_of(family))  # type: ignore[arg-type]
                routes.add(Route(p.pod_cidr_of(family), vtep, VXLAN_DEVICE, onlink=True))  # type: ignore[arg-type]
                neighbours.add(Neighbour(vtep, vtep_mac(p.metadata.name), VXLAN_DEVICE))
        return Peering(frozenset(routes), device, frozenset(neighbours),
                       frozenset(ForwardingEntry(vtep_mac(p.metadata.name), p.internal_ip_of(underlay), VXLAN_DEVICE)  # type: ignore[arg-type]
                                 for p in reached))

    def own_addresses(self, node: Node) -> set[str]:
        return {vtep_address(cidr) for cidr in node.pod_cidrs}


BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (HostGw(), Vxlan())}
DEFAULT = HostGw.name  # a lab's nodes share the fabric's segment
ACROSS_SUBNETS = Vxlan.name  # real machines may not: `node join` founds a cluster on this


def named(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UnknownBackend(f"{name!r} is not a backend: {' or '.join(BACKENDS)}") from None


def help_text() -> str:
    """Each backend in a line of --help."""
    return "; ".join(f"{backend.name}: {backend.description}" for backend in BACKENDS.values())
