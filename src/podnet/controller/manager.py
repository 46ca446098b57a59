"""The control plane's loop: on every store change (and every second), bind
pending pods, converge deployments, collect pods whose deployment is gone,
write every Service's EndpointSlices, mark nodes whose heartbeats lapsed
NotReady, and finish namespaces being deleted. Every write is a compare-and-swap or a create,
so a second control plane, or this one restarted half-way, does no harm."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import TypeVar

from podnet.api import events, writes
from podnet.api.delete import delete, finish_namespace
from podnet.controller import deployments, endpointslices
from podnet.controller import nodes as lifecycle
from podnet.controller.scheduler import schedule
from podnet.model.deployment import Deployment
from podnet.model.endpointslice import TRIGGER_TIME, EndpointSlice
from podnet.model.lease import NODE_LEASES, Lease
from podnet.model.manifest import Resource
from podnet.model.namespace import Namespace
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.base import Store
from podnet.store.follow import follow

log = logging.getLogger("podnet.controller")
R = TypeVar("R", bound=Resource)
SCHEDULER, DEPLOYMENTS, NODE_LIFECYCLE = "default-scheduler", "deployment-controller", "node-controller"
EXPIRE_EVERY = 60.0  # seconds between sweeps of old events


class ControlPlane:
    def __init__(self, store: Store, resync_seconds: float = 1.0, node_grace: float = 5.0) -> None:
        self.store = store
        self.resync_seconds = resync_seconds
        self.node_grace = node_grace
        self._first_seen: dict[str, float] = {}  # nodes by when this controller first saw them
        self._next_expiry = 0.0

    def reconcile(self) -> int:
        nodes, revision = resources.list_kind(self.store, Node)
        pods, _ = resources.list_kind(self.store, Pod)
        nodes = self._watch_nodes(nodes, pods)
        deployment_list, _ = resources.list_kind(self.store, Deployment)
        for deployment in deployment_list:
            self._converge(deployment, pods)
        self._collect_orphans(pods, deployment_list)
        self._collect_stranded(pods, nodes)
        self._bind([p for p in pods if not p.node_name and not p.terminating], nodes, pods)
        self._sync_slices(resources.list_kind(self.store, Service)[0], pods, nodes)
        for namespace in resources.list_kind(self.store, Namespace)[0]:
            if namespace.terminating:
                finish_namespace(self.store, namespace.metadata.name)
        if time.monotonic() >= self._next_expiry:
            events.expire(self.store)
            self._next_expiry = time.monotonic() + EXPIRE_EVERY
        return revision

    def _converge(self, deployment: Deployment, pods: list[Pod]) -> None:
        for pod in deployment.controlled(pods):
            if not deployment.selector.matches(pod.metadata.labels):
                self._release(pod)
        changes = deployments.reconcile(deployment, pods)
        meta = deployment.metadata
        for pod in changes.create:
            if writes.create(self.store, pod):  # False: someone else made it first, which is as good
                events.record(self.store, "Deployment", meta.namespace, meta.name, "SuccessfulCreate",
                              f"Created pod: {pod.metadata.name}", DEPLOYMENTS)
        for pod in changes.delete:
            if self._delete(pod):
                events.record(self.store, "Deployment", meta.namespace, meta.name, "SuccessfulDelete",
                              f"Deleted pod: {pod.metadata.name}", DEPLOYMENTS)
        status = deployments.status_of(deployment, pods)
        if status != deployment.status:
            self._modify(Deployment, meta.namespace, meta.name, lambda d: d.with_status(
                replace(status, observed_generation=d.metadata.generation)))

    def _collect_orphans(self, pods: list[Pod], deployment_list: list[Deployment]) -> None:
        """Pods a deleted deployment left (the garbage collector's job)."""
        live = {(d.metadata.namespace, d.metadata.name) for d in deployment_list}
        for pod in pods:
            owner = pod.metadata.owner
            if owner and owner[0] == "Deployment" and (pod.metadata.namespace, owner[1]) not in live \
                    and not pod.terminating:
                self._delete(pod)

    def _collect_stranded(self, pods: list[Pod], nodes: list[Node]) -> None:
        """Pods bound to a node that is gone (the pod GC's job): no kubelet will end
        them, so they go at once, and their Deployments make them anew elsewhere."""
        known = {n.metadata.name for n in nodes}
        for pod in pods:
            if pod.node_name and pod.node_name not in known:
                log.info("pod %s was bound to node %s, which is gone", pod.metadata.key, pod.node_name)
                self._modify(Pod, pod.metadata.namespace, pod.metadata.name,
                             lambda p: None if p.node_name not in known else p)

    def _watch_nodes(self, nodes: list[Node], pods: list[Pod]) -> list[Node]:
        """Ready or NotReady by the heartbeats; a NotReady node's pods lose Ready,
        so their endpoints leave the Services (its agent gives it back when it
        returns). Returns the nodes as they now are."""
        leases = {lease.metadata.name: lease for lease in resources.list_kind(self.store, Lease)[0]
                  if lease.metadata.namespace == NODE_LEASES}
        now = time.time()
        current = []
        for node in nodes:
            name = node.metadata.name
            ready = lifecycle.alive(leases.get(name), now, self.node_grace, self._first_seen.setdefault(name, now))
            if ready != node.ready:
                status = "NodeReady" if ready else "NodeNotReady"
                log.info("node %s is %s", name, "Ready" if ready else "NotReady")
                node = self._modify(Node, "", name, lambda n, r=ready: replace(n, ready=r)) or node
                events.record(self.store, "Node", "", name, status, f"Node {name} status is now: {status}",
                              NODE_LIFECYCLE, warning=not ready)
            if not ready:
                for pod in pods:
                    if pod.node_name == name and pod.ready:
                        self._modify(Pod, pod.metadata.namespace, pod.metadata.name,
                                     lambda p: replace(p, ready=False) if p.node_name == name else p)
            current.append(node)
        return current

    def _modify(self, cls: type[R], namespace: str, name: str, change: Callable[[R], R | None]) -> R | None:
        """A compare-and-swap change (None deletes); None when the object is not there."""
        try:
            return writes.modify(self.store, cls, namespace, name, change)[0]
        except writes.NotFound:
            return None

    def _sync_slices(self, services: list[Service], pods: list[Pod], nodes: list[Node]) -> None:
        """Write the slices that differ from what the controller decided, and delete
        the ones it no longer wants (their service went, or fewer are needed)."""
        existing = {s.metadata.key: s for s in endpointslices.managed(resources.list_kind(self.store, EndpointSlice)[0])}
        now = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        for wanted in endpointslices.desired(services, pods, nodes):
            found = existing.pop(wanted.metadata.key, None)
            if found is None:
                writes.create(self.store, _triggered(wanted, now))
            elif found.to_manifest() != _triggered(wanted, found.metadata.annotations.get(TRIGGER_TIME)).to_manifest():
                self._write(_triggered(wanted, now))
        for unwanted in existing.values():
            self.store.delete(resources.key_of(unwanted))

    def _write(self, slice_: EndpointSlice) -> None:
        if self._modify(EndpointSlice, slice_.metadata.namespace, slice_.metadata.name, lambda _: slice_) is None:
            writes.create(self.store, slice_)

    def _release(self, pod: Pod) -> None:
        self._modify(Pod, pod.metadata.namespace, pod.metadata.name,
                     lambda p: replace(p, metadata=replace(p.metadata, owner=None)))

    def _delete(self, pod: Pod) -> bool:
        try:
            delete(self.store, "Pod", pod.metadata.namespace, pod.metadata.name)
        except writes.NotFound:
            return False
        return True

    def _bind(self, pending: list[Pod], nodes: list[Node], pods: list[Pod]) -> None:
        for binding in schedule(pending, nodes, pods):
            meta = binding.pod.metadata

            def bind(current: Pod, node: str | None = binding.node, reason: str = binding.reason) -> Pod:
                if current.node_name or current.terminating:
                    return current  # bound or deleted meanwhile
                if node is None:
                    return current.with_status(pod_ips=(), host_ip=None, ready=False, phase="Pending",
                                               reason=f"Unschedulable: {reason}")
                return current.scheduled(node)

            try:
                written, changed = writes.modify(self.store, Pod, meta.namespace, meta.name, bind)
            except writes.NotFound:
                continue
            if changed and written.node_name:
                events.record(self.store, "Pod", meta.namespace, meta.name, "Scheduled",
                              f"Successfully assigned {meta.namespace}/{meta.name} to {written.node_name}", SCHEDULER)
            elif changed:
                events.record(self.store, "Pod", meta.namespace, meta.name, "FailedScheduling", binding.reason,
                              SCHEDULER, warning=True)

    def run(self, stop: threading.Event, poll: float = 0.05) -> None:
        follow(self.store, self.reconcile, stop, log, self.resync_seconds, poll, started="control plane is running")


def _triggered(slice_: EndpointSlice, when: str | None) -> EndpointSlice:
    """The slice stamped with the time of the change it carries (as Kubernetes'
    controller stamps it), so each node can tell how long it took to program."""
    if when is None:
        return slice_
    return replace(slice_, metadata=replace(slice_.metadata, annotations={**slice_.metadata.annotations,
                                                                          TRIGGER_TIME: when}))
