"""How pod traffic reaches other nodes: the backends, each registered once by
name, as flannel registers its own.

  host-gw  every other node's pod subnet is routed via that node's IP, which works
           when nodes share an L2 segment (as the lab's fabric bridge gives them);
  vxlan    pod traffic to another node is encapsulated in UDP (port 8472) to that
           node's IP, so nodes need only reach each other by IP. Per remote node:
           a route to its pod subnet via its VTEP address (onlink), a permanent
           neighbour entry for that address, and an FDB entry sending the VTEP's
           MAC to the node's IP. Pod interfaces get the underlay MTU less 50.

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
from podnet.model.node import Node

VXLAN_DEVICE = "podnet.1"
VXLAN_VNI = 1
VXLAN_PORT = 8472  # flannel's (the Linux default, before IANA's 4789)
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8


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
    address: str  # the node's VTEP address, its pod subnet's network address as a /32


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

    def pod_mtu(self, underlay_mtu: int) -> int: ...

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


class HostGw:
    name = "host-gw"
    description = "routed via the other nodes' IPs (the nodes share one L2 segment)"
    one_segment = True

    def pod_mtu(self, underlay_mtu: int) -> int:
        return underlay_mtu

    def peering(self, node: Node, peers: list[Node], underlay_mtu: int) -> Peering:
        return Peering(frozenset(Route(dst=p.pod_cidr, via=p.internal_ip) for p in peers))  # type: ignore[arg-type]

    def own_addresses(self, node: Node) -> set[str]:
        return set()


class Vxlan:
    name = "vxlan"
    description = "in VXLAN tunnels (UDP 8472) to the other nodes' IPs (they need only reach each other)"
    one_segment = False

    def pod_mtu(self, underlay_mtu: int) -> int:
        return underlay_mtu - VXLAN_OVERHEAD

    def peering(self, node: Node, peers: list[Node], underlay_mtu: int) -> Peering:
        if not node.internal_ip:
            raise ValueError(f"node {node.metadata.name} has no internal IP for its VXLAN tunnels")
        device = VxlanDevice(VXLAN_DEVICE, VXLAN_VNI, node.internal_ip, VXLAN_PORT, vtep_mac(node.metadata.name),
                             self.pod_mtu(underlay_mtu), f"{vtep_address(node.pod_cidr or '')}/32")
        return Peering(
            frozenset(Route(p.pod_cidr, vtep_address(p.pod_cidr), VXLAN_DEVICE, onlink=True)  # type: ignore[arg-type]
                      for p in peers),
            device,
            frozenset(Neighbour(vtep_address(p.pod_cidr), vtep_mac(p.metadata.name), VXLAN_DEVICE)  # type: ignore[arg-type]
                      for p in peers),
            frozenset(ForwardingEntry(vtep_mac(p.metadata.name), p.internal_ip, VXLAN_DEVICE)  # type: ignore[arg-type]
                      for p in peers))

    def own_addresses(self, node: Node) -> set[str]:
        return {vtep_address(node.pod_cidr)} if node.pod_cidr else set()


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
