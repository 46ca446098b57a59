"""The node network controller: the node's bridge, the way to every other node's
pods (host-gw routes or VXLAN) and egress masquerade, and the node's subnet lease."""

from __future__ import annotations

import logging
import time

from podnet.store.snapshot import Snapshot
from podnet.kernel.node import NodeKernel
from podnet.model.node import Node
from podnet.network import backends, leases
from podnet.network.apply import apply_node_network
from podnet.network.node import render_node_network
from podnet.store.base import Store

log = logging.getLogger("podnet.network")


class NetworkController:
    name = "network"

    def __init__(self, kernel: NodeKernel, store: Store, node_name: str, cluster_cidr: str | None = None,
                 backend: str = backends.DEFAULT, resync_seconds: float = 1.0) -> None:
        self.kernel = kernel
        self.store = store
        self.node_name = node_name
        self.cluster_cidr = cluster_cidr
        self.backend = backend
        self.resync_seconds = resync_seconds
        self._lease_checked: float | None = None
        self._applied: object = None
        self._applied_at = 0.0

    def sync(self, snapshot: Snapshot) -> None:
        me = snapshot.node(self.node_name)
        if me is None or not me.pod_cidr:
            log.info("node %s is not in the store yet (or has no podCIDR)", self.node_name)
            return
        self.renew_lease(me)
        network = render_node_network(me, snapshot.nodes, self.cluster_cidr, self.backend)
        if network == self._applied and time.monotonic() - self._applied_at < self.resync_seconds:
            return  # a pod or a service changed, not the nodes: drift is checked once a resync period
        added, removed = apply_node_network(self.kernel, network)
        self._applied, self._applied_at = network, time.monotonic()
        for route in sorted(removed):
            log.info("removed route %s", route)
        for route in sorted(added):
            log.info("added route %s", route)

    def renew_lease(self, me: Node) -> None:
        """Keep the node's subnet lease (as flanneld does); losing it is logged,
        since another node may now be handed the same subnet."""
        now = time.monotonic()
        if not me.pod_cidr or (self._lease_checked is not None and now - self._lease_checked < leases.RENEW_EVERY):
            return
        self._lease_checked = now
        for cidr in me.pod_cidrs:
            if not leases.renew(self.store, self.node_name, me.internal_ip or "", cidr):
                log.error("node %s does not hold the lease on %s any more", self.node_name, cidr)
