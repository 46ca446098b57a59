"""The node agent's loop: reconcile on every store change, and at least every
second, so that drift (a route deleted by hand) is repaired as well as changes.
It keeps the node's pod network (bridge, routes, forwarding) and, when given the
cluster's pod network, its service table.
"""

from __future__ import annotations

import logging
import threading
import time

from podnet.errors import PodnetError
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.network import leases
from podnet.network.apply import apply_node_network
from podnet.network.node import render_node_network
from podnet.proxy.proxier import Proxier
from podnet.proxy.userspace_manager import UserspaceProxies
from podnet.store import resources
from podnet.store.base import Compacted, Store

log = logging.getLogger("podnet.agent")


class NodeAgent:
    def __init__(self, store: Store, node_name: str, namespace: str, resync_seconds: float = 1.0,
                 cluster_cidr: str | None = None, backend: str = "host-gw") -> None:
        self.store = store
        self.backend = backend
        self.node_name = node_name
        self.namespace = namespace
        self.resync_seconds = resync_seconds
        self.cluster_cidr = cluster_cidr
        # Services, in nftables and (for userspace-mode services) in this process.
        self.proxies = (Proxier(namespace, node_name, cluster_cidr), UserspaceProxies(namespace)) if cluster_cidr else ()
        self._lease_checked: float | None = None

    def reconcile(self) -> int:
        """One pass; returns the store revision it was computed from."""
        nodes, revision = resources.list_kind(self.store, "Node")
        me = next((n for n in nodes if isinstance(n, Node) and n.metadata.name == self.node_name), None)
        if me is None or not me.pod_cidr:
            log.info("node %s is not in the store yet (or has no podCIDR)", self.node_name)
            return revision
        self._renew_lease(me)
        added, removed = apply_node_network(self.namespace, render_node_network(me, nodes, self.cluster_cidr,
                                                                                  self.backend))
        for route in sorted(removed):
            log.info("removed route %s", route)
        for route in sorted(added):
            log.info("added route %s", route)
        if self.proxies:
            pods, _ = resources.list_kind(self.store, "Pod")
            services, _ = resources.list_kind(self.store, "Service")
            typed_services = [s for s in services if isinstance(s, Service)]
            typed_pods = [p for p in pods if isinstance(p, Pod)]
            for proxy in self.proxies:
                proxy.sync(typed_services, typed_pods)
        return revision

    def _renew_lease(self, me: Node) -> None:
        """Keep the node's subnet lease (as flanneld does); losing it is logged,
        since another node may now be handed the same subnet."""
        now = time.monotonic()
        if not me.pod_cidr or (self._lease_checked is not None and now - self._lease_checked < leases.RENEW_EVERY):
            return
        self._lease_checked = now
        if not leases.renew(self.store, self.node_name, me.internal_ip or "", me.pod_cidr):
            log.error("node %s does not hold the lease on %s any more", self.node_name, me.pod_cidr)

    def run(self, stop: threading.Event, poll: float = 0.05) -> None:
        revision = self._reconcile_logging_errors(0)
        log.info("agent for node %s is running in %s", self.node_name, self.namespace)
        next_resync = time.monotonic() + self.resync_seconds
        while not stop.wait(poll):
            try:
                changed = bool(self.store.events_since(resources.REGISTRY, revision))
            except Compacted:
                changed = True
            if changed or time.monotonic() >= next_resync:
                revision = self._reconcile_logging_errors(revision)
                next_resync = time.monotonic() + self.resync_seconds

    def _reconcile_logging_errors(self, revision: int) -> int:
        """A failed pass is retried at the next resync rather than ending the agent."""
        try:
            return self.reconcile()
        except PodnetError as err:
            log.error("reconcile failed: %s", err)
            return revision
