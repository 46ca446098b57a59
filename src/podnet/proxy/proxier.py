"""Keeping a node's service tables in step with the store: take in the views that
changed (tracker.py), and write only the elements that changed (or, to repair
drift, the whole table when it has not been written for a while).

One table per IP family of the pod network (kube-proxy's --cluster-cidr, one
CIDR per family), all rendered from the one snapshot's views, each diffed and
written on its own: a change to an IPv6 endpoint is an element update of the
IPv6 table only, and an IPv4-only node has no IPv6 table at all."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime

from podnet.store.snapshot import Snapshot
from podnet.errors import KernelError, PodnetError
from podnet.gcpause import collector_paused
from podnet.kernel.node import NodeKernel
from podnet.model.endpointslice import TRIGGER_TIME, EndpointSlice
from podnet.model.families import families_of, split_cidrs
from podnet.observe.metrics import AGENT
from podnet.model.service import Service
from podnet.proxy.endpoints import ServicePortView, ViewMemo, pod_weights, service_ports
from podnet.proxy.ruleset import pod_network_of
from podnet.proxy.tracker import Change, ChangeTracker

log = logging.getLogger("podnet.proxy")


class Proxier:
    """The proxy controller: Services and their endpoints as the node's service tables."""

    name = "proxy"

    def __init__(self, kernel: NodeKernel, node_name: str, cluster_cidr: str, resync_seconds: float = 10.0) -> None:
        self.kernel = kernel
        self.node_name = node_name
        self.cluster_cidr = cluster_cidr  # one CIDR per family the node serves, comma-separated
        self.families = pod_network_families(cluster_cidr)
        self.resync_seconds = resync_seconds
        self._trackers = {family: ChangeTracker(family, pod_network_of(cluster_cidr, family))
                          for family in self.families}
        self._applied_at: dict[str, float] = {}  # by family: when its table was last written whole
        self._udp_endpoints: dict[tuple[str, int], set[str]] = {}  # (cluster IP, port) -> endpoint IPs last written
        self._triggers: dict[str, str] | None = None  # slice -> the change time it carried when last programmed
        self._views = ViewMemo()

    def sync(self, snapshot: Snapshot) -> None:
        self.sync_services(snapshot.services, snapshot.slices, pod_weights(snapshot.pods))
        self._programmed(snapshot.slices)

    def _programmed(self, slices: list[EndpointSlice]) -> None:
        """Network programming latency: each slice change the table now carries, from
        when the controller saw it (what the agent found at its start is not timed)."""
        now = time.time()
        seen = {s.metadata.key: s.metadata.annotations.get(TRIGGER_TIME, "") for s in slices}
        if self._triggers is not None:
            for key, when in seen.items():
                if when and when != self._triggers.get(key):
                    try:
                        AGENT.programmed(max(0.0, now - datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()))
                    except ValueError:  # a slice written by someone else, with its own idea of a time
                        pass
        self._triggers = seen

    def sync_services(self, services: list[Service], slices: list[EndpointSlice],
                      weights: Mapping[tuple[str, str], int] | None = None) -> str:
        """Write what changed: "none", "elements" (one small transaction of the
        changed map elements) or "table" (the whole table, atomically: at the
        start, when chains change, and every resync period to repair drift);
        with several families, the most any of their tables needed."""
        with collector_paused():  # one pause for the whole render: a collection between families would walk it all
            views = service_ports(services, slices, self.node_name, weights, self._views)
            changes = [(family, self._trackers[family].update(views)) for family in self.families]
        done = [self._write(family, change) for family, change in changes]
        self._forget_stale_udp_flows(views)
        return max(done, key=_WRITES.index)

    def _write(self, family: str, change: Change) -> str:
        tracker = self._trackers[family]
        whole = change.whole
        if whole is None and time.monotonic() - self._applied_at.get(family, 0.0) > self.resync_seconds:
            with collector_paused():
                whole = tracker.whole()  # a resync: drift is repaired
        if whole is None and change.elements:
            try:
                self.kernel.nft.run(change.elements)
                log.info("service table %s: %d element changes", change.elements.table.text(), len(change.elements))
                return "elements"
            except KernelError as err:  # the table drifted from what we wrote: write it whole
                log.warning("element update failed (%s); replacing the table", err)
                with collector_paused():
                    whole = tracker.whole()
        if whole is None:
            return "none"
        with collector_paused():
            transaction = whole.transaction()
        self._applied_at.pop(family, None)  # should the write fail, the next sync writes it whole again
        self.kernel.nft.run(transaction)
        self._applied_at[family] = time.monotonic()
        if not change.empty:
            log.info("service table %s: %d ports, %d endpoints (whole table)", whole.table.text(),
                     len(tracker.views), sum(len(v.endpoints) for v in tracker.views.values()))
        return "table"

    def _forget_stale_udp_flows(self, views: list[ServicePortView]) -> None:
        """As kube-proxy does: flows to a removed UDP endpoint are dropped, and so are
        flows a service without endpoints was rejecting once it gets some."""
        current = {(v.cluster_ip, v.port): {e.ip for e in v.endpoints} for v in views if v.protocol == "udp"}
        for key, endpoints in current.items():
            before = self._udp_endpoints.get(key)
            if before is None:
                continue
            for gone in before - endpoints:
                self.kernel.forget_udp(reply_source=gone)
            if not before and endpoints:
                self.kernel.forget_udp(original_destination=key[0])
        self._udp_endpoints = current


_WRITES = ("none", "elements", "table")  # what a sync wrote, least first


def pod_network_families(cluster_cidr: str) -> tuple[str, ...]:
    """The families a node programs: those of its pod network, kube-proxy's
    --cluster-cidr (one CIDR per family, comma-separated)."""
    families = families_of(split_cidrs(cluster_cidr))
    if not families:
        raise PodnetError(f"the pod network (--cluster-cidr) {cluster_cidr!r} names no CIDR")
    return families
