"""A pod's attachment to its node: one veth from the node's bridge into the pod."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podnet.kernel.route import Route

POD_IFNAME = "eth0"


@dataclass(frozen=True)
class PodAttachment:
    node_namespace: str
    pod_namespace: str
    host_ifname: str  # the veth end on the node, enslaved to the bridge
    bridge: str
    address: str  # "10.244.1.5/24"
    gateway: str  # "10.244.1.1"
    mtu: int | None = None

    @property
    def routes(self) -> frozenset[Route]:
        return frozenset({Route("default", via=self.gateway, dev=POD_IFNAME)})

    @property
    def ip(self) -> str:
        return str(ipaddress.ip_interface(self.address).ip)
