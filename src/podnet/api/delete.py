"""`podnet delete`: as the API server deletes.

A pod bound to a node is only marked terminating: its node's agent stops its
processes within its grace period, runs CNI DEL and then removes the object, and
meanwhile its endpoints drain. A Deployment takes its pods with it, a Service
gives back its addresses, and a Namespace takes everything in it and goes once
its last pod has.
"""

from __future__ import annotations

from podnet.api import cluster, services, writes
from podnet.errors import PodnetError
from podnet.model import kinds
from podnet.model.deployment import Deployment
from podnet.model.endpointslice import EndpointSlice
from podnet.model.manifest import Resource
from podnet.model.namespace import BUILT_IN, Namespace
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.model.stored import ConfigMap, Secret, ServiceAccount
from podnet.store import resources
from podnet.store.base import Store

NAMESPACED_CHILDREN = (Deployment, Service, Pod, EndpointSlice, ConfigMap, Secret, ServiceAccount)  # in this order


def delete(store: Store, kind: str, namespace: str, name: str, force: bool = False) -> Resource:
    """Returns the object as it was; NotFound if there is none. force (a grace
    period of 0) takes a pod away at once: its kubelet then finds a sandbox no pod
    owns, and tears it down."""
    if kind == "Pod":
        return _delete_pod(store, namespace, name, force)
    if kind == "Namespace":
        return _delete_namespace(store, name)
    found = writes.read(store, kind, "" if not kinds.named(kind).namespaced else namespace, name)  # type: ignore[union-attr]
    if found is None:
        raise writes.NotFound(kind, name)
    resource, revision = found
    if store.compare_and_swap(resources.key_of(resource), None, revision) is None:
        return delete(store, kind, namespace, name, force)  # changed meanwhile: look again
    if isinstance(resource, Service):
        services.release(store, cluster.load(store), resource)
    if isinstance(resource, Deployment):
        for pod in resource.controlled(resources.list_kind(store, Pod)[0]):
            try:
                _delete_pod(store, namespace, pod.metadata.name)
            except writes.NotFound:
                pass  # gone meanwhile
    return resource


def _delete_pod(store: Store, namespace: str, name: str, force: bool = False) -> Resource:
    """Unscheduled pods go at once; scheduled ones are marked for their kubelet."""
    pod, _ = writes.modify(store, Pod, namespace, name, lambda p: p.terminated() if p.node_name and not force else None)
    return pod


def _delete_namespace(store: Store, name: str) -> Resource:
    if name in BUILT_IN:
        raise PodnetError(f'namespace "{name}" may not be deleted')
    namespace, _ = writes.modify(store, Namespace, "", name, Namespace.deleting)
    for cls in NAMESPACED_CHILDREN:
        for resource in resources.list_kind(store, cls)[0]:
            if resource.metadata.namespace == name:
                try:
                    delete(store, resource.kind, name, resource.metadata.name)
                except writes.NotFound:
                    pass  # someone else deleted it first
    finish_namespace(store, name)
    return namespace


def finish_namespace(store: Store, name: str) -> bool:
    """A terminating namespace goes when nothing is left in it (the namespace
    controller's job, repeated by the control plane until it holds)."""
    found = writes.read(store, "Namespace", "", name)
    if found is None or not found[0].terminating:  # type: ignore[union-attr]
        return False
    for cls in NAMESPACED_CHILDREN:
        if any(r.metadata.namespace == name for r in resources.list_kind(store, cls)[0]):
            return False
    return store.compare_and_swap(resources.key("Namespace", "", name), None, found[1]) is not None
