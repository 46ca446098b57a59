"""The control plane's loop: on every store change (and every second), bind
pending pods, converge deployments, collect pods whose deployment is gone,
write every Service's EndpointSlices and finish namespaces being deleted. Every write is a compare-and-swap or a create,
so a second control plane, or this one restarted half-way, does no harm."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from podnet.api import writes
from podnet.api.delete import delete, finish_namespace
from podnet.controller import deployments, endpointslices
from podnet.controller.scheduler import schedule
from podnet.model.deployment import Deployment
from podnet.model.endpointslice import EndpointSlice
from podnet.model.namespace import Namespace
from podnet.model.node import Node
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.base import Store
from podnet.store.follow import follow

log = logging.getLogger("podnet.controller")


class ControlPlane:
    def __init__(self, store: Store, resync_seconds: float = 1.0) -> None:
        self.store = store
        self.resync_seconds = resync_seconds

    def reconcile(self) -> int:
        nodes, revision = resources.list_kind(self.store, Node)
        pods, _ = resources.list_kind(self.store, Pod)
        deployment_list, _ = resources.list_kind(self.store, Deployment)
        for deployment in deployment_list:
            self._converge(deployment, pods)
        self._collect_orphans(pods, deployment_list)
        self._bind([p for p in pods if not p.node_name and not p.terminating], nodes, pods)
        self._sync_slices(resources.list_kind(self.store, Service)[0], pods, nodes)
        for namespace in resources.list_kind(self.store, Namespace)[0]:
            if namespace.terminating:
                finish_namespace(self.store, namespace.metadata.name)
        return revision

    def _converge(self, deployment: Deployment, pods: list[Pod]) -> None:
        for pod in deployments.controlled(deployment, pods):
            if not deployment.selector.matches(pod.metadata.labels):
                self._release(pod)
        changes = deployments.reconcile(deployment, pods)
        for pod in changes.create:
            writes.create(self.store, pod)  # False: someone else made it first, which is as good
        for pod in changes.delete:
            self._delete(pod)

    def _collect_orphans(self, pods: list[Pod], deployment_list: list[Deployment]) -> None:
        """Pods a deleted deployment left (the garbage collector's job)."""
        live = {(d.metadata.namespace, d.metadata.name) for d in deployment_list}
        for pod in pods:
            owner = pod.metadata.owner
            if owner and owner[0] == "Deployment" and (pod.metadata.namespace, owner[1]) not in live \
                    and not pod.terminating:
                self._delete(pod)

    def _sync_slices(self, services: list[Service], pods: list[Pod], nodes: list[Node]) -> None:
        """Write the slices that differ from what the controller decided, and delete
        the ones it no longer wants (their service went, or fewer are needed)."""
        existing = {s.metadata.key: s for s in endpointslices.managed(resources.list_kind(self.store, EndpointSlice)[0])}
        for wanted in endpointslices.desired(services, pods, nodes):
            found = existing.pop(wanted.metadata.key, None)
            if found is None:
                writes.create(self.store, wanted)
            elif found.to_manifest() != wanted.to_manifest():
                self._write(wanted)
        for unwanted in existing.values():
            self.store.delete(resources.key_of(unwanted))

    def _write(self, slice_: EndpointSlice) -> None:
        try:
            writes.modify(self.store, EndpointSlice, slice_.metadata.namespace, slice_.metadata.name, lambda _: slice_)
        except writes.NotFound:
            writes.create(self.store, slice_)

    def _release(self, pod: Pod) -> None:
        meta = pod.metadata
        try:
            writes.modify(self.store, Pod, meta.namespace, meta.name,
                          lambda p: replace(p, metadata=replace(p.metadata, owner=None)))
        except writes.NotFound:
            pass

    def _delete(self, pod: Pod) -> None:
        try:
            delete(self.store, "Pod", pod.metadata.namespace, pod.metadata.name)
        except writes.NotFound:
            pass

    def _bind(self, pending: list[Pod], nodes: list[Node], pods: list[Pod]) -> None:
        for binding in schedule(pending, nodes, pods):
            meta = binding.pod.metadata

            def bind(current: Pod, node: str | None = binding.node, reason: str = binding.reason) -> Pod:
                if current.node_name or current.terminating:
                    return current  # bound or deleted meanwhile
                if node is None:
                    return current.with_status(pod_ip=None, host_ip=None, ready=False, phase="Pending",
                                               reason=f"Unschedulable: {reason}")
                return current.scheduled(node)

            try:
                writes.modify(self.store, Pod, meta.namespace, meta.name, bind)
            except writes.NotFound:
                pass

    def run(self, stop: threading.Event, poll: float = 0.05) -> None:
        follow(self.store, self.reconcile, stop, log, self.resync_seconds, poll, started="control plane is running")
