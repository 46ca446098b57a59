"""`podnet apply`: create or update objects, as `kubectl apply` reports them
(created, configured, unchanged).

Every document is checked before anything is written: a bad one, an immutable
field changed or a namespace that does not exist applies nothing. An update is
the manifest merged onto the stored object (its status, its scheduled node, its
allocated addresses kept) and written by compare-and-swap, retried on conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from podnet.api import cluster, services, writes
from podnet.errors import ManifestError
from podnet.model import kinds
from podnet.model.deployment import Deployment
from podnet.model.manifest import Resource
from podnet.model.namespace import Namespace
from podnet.model.pod import Pod
from podnet.model.service import Service
from podnet.store.base import Store


@dataclass(frozen=True)
class Applied:
    resource: Resource
    action: str  # created, configured or unchanged

    def line(self) -> str:
        return f"{self.resource.kind.lower()}/{self.resource.metadata.name} {self.action}"


def merged(current: Resource, desired: Resource) -> Resource:
    """desired, with what the cluster decided for current kept; an immutable field
    changed is a ManifestError naming it."""
    if isinstance(current, Pod) and isinstance(desired, Pod):
        node = desired.node_name or current.node_name
        if desired.node_name and current.node_name and desired.node_name != current.node_name:
            raise ManifestError("spec.nodeName", "field is immutable once the pod is scheduled")
        if replace(desired, node_name=node).spec_manifest() != current.spec_manifest():
            raise ManifestError("spec", "pod updates may not change fields other than labels and annotations")
        return replace(current, metadata=replace(desired.metadata, owner=desired.metadata.owner or current.metadata.owner))
    if isinstance(current, Service) and isinstance(desired, Service):
        if desired.cluster_ip and current.cluster_ip and desired.cluster_ip != current.cluster_ip:
            raise ManifestError("spec.clusterIP", f"field is immutable (it is {current.cluster_ip})")
        return replace(desired, cluster_ips=desired.cluster_ips or current.cluster_ips)
    if isinstance(current, Deployment) and isinstance(desired, Deployment):
        if desired.selector != current.selector:
            raise ManifestError("spec.selector", "field is immutable")
        return replace(desired, status=current.status)  # the controller's to write
    if isinstance(current, Namespace) and isinstance(desired, Namespace):
        return replace(current, metadata=desired.labelled().metadata)
    return desired


Origin = tuple[str, int]  # a document's file (or STDIN) and its number there, for errors
Lookup = Callable[[str, str, str], "Resource | None"]  # (kind, namespace, name) -> the object as it is, if any


def stored_in(store: Store) -> Lookup:
    """Objects as the store holds them."""
    def lookup(kind: str, namespace: str, name: str) -> Resource | None:
        found = writes.read(store, kind, namespace, name)
        return found[0] if found else None

    return lookup


def check(lookup: Lookup, documents: list[Resource], origins: Sequence[Origin] = ()) -> None:
    """Everything apply would refuse, before anything is written, with the objects
    as `lookup` finds them (in the store, or through the API); an error names the
    document (by its origin, when given, else its place in the list)."""
    seen: set[tuple[str, str, str]] = set()
    creating = {d.metadata.name for d in documents if isinstance(d, Namespace)}
    for i, document in enumerate(documents):
        source, number = origins[i] if origins else ("", i + 1)
        where = f"document {number} ({document.kind.lower()}/{document.metadata.name})"
        identity = (document.kind, document.metadata.namespace, document.metadata.name)
        if identity in seen:
            raise ManifestError(where, "appears twice", source)
        seen.add(identity)
        if kinds.of(type(document)).namespaced:
            namespace = document.metadata.namespace
            found = lookup("Namespace", "", namespace)
            if found is None and namespace not in creating:
                raise ManifestError(where, f'namespaces "{namespace}" not found', source)
            if found is not None and found.terminating:  # type: ignore[attr-defined]
                raise ManifestError(where, f'namespace "{namespace}" is being deleted', source)
        if isinstance(document, Pod) and document.metadata.owner:
            raise ManifestError(f"{where}: metadata.ownerReferences", "are set by controllers, not by apply", source)
        stored = lookup(document.kind, document.metadata.namespace, document.metadata.name)
        if stored is not None:
            try:
                merged(stored, document)
            except ManifestError as err:
                raise ManifestError(f"{where}: {err.field}", err.problem, source) from None


def apply(store: Store, documents: list[Resource], origins: Sequence[Origin] = ()) -> list[Applied]:
    check(stored_in(store), documents, origins)
    new_services = [d for d in documents if isinstance(d, Service)
                    and writes.read(store, "Service", d.metadata.namespace, d.metadata.name) is None]
    if new_services:
        services.claim(store, cluster.load(store), new_services)
    ordered = sorted(documents, key=lambda d: not isinstance(d, Namespace))  # namespaces before what goes in them
    return [apply_one(store, document) for document in ordered]


def apply_one(store: Store, desired: Resource) -> Applied:
    if isinstance(desired, Namespace):
        desired = desired.labelled()
    if isinstance(desired, Service):
        return _apply_service(store, desired)
    if writes.create(store, desired):
        return Applied(desired, "created")
    meta = desired.metadata
    written, changed = writes.update(store, desired.kind, meta.namespace, meta.name, lambda current: merged(current, desired))
    return Applied(written, "configured" if changed else "unchanged")


def _apply_service(store: Store, desired: Service) -> Applied:
    """A new Service gets its addresses before it is written; an updated one keeps
    its own and gives back node ports it no longer uses."""
    config = cluster.load(store)
    meta = desired.metadata
    stored = writes.read(store, "Service", meta.namespace, meta.name)
    if stored is None:
        (allocated,) = services.allocate(store, config, [desired])
        if writes.create(store, allocated):
            return Applied(allocated, "created")
        services.release(store, config, allocated)
        stored = writes.read(store, "Service", meta.namespace, meta.name)
    previous: Service = stored[0]  # type: ignore[index,assignment]
    (allocated,) = services.allocate(store, config, [merged(previous, desired)], previous)  # type: ignore[list-item]
    written, changed = writes.update(store, "Service", meta.namespace, meta.name,
                                     lambda current: merged(current, allocated))
    services.release(store, config, previous, keep=written)  # type: ignore[arg-type]
    return Applied(written, "configured" if changed else "unchanged")
