"""The API's verbs on one object, as the Kubernetes API server gives them: create
(AlreadyExists when taken), replace at a resourceVersion (Conflict when it has
moved on), and a status write that touches status only. `podnet apply` and the
HTTP API both come here, so the rules are the same through either door:
namespaces must exist, Services get their addresses, immutable fields stay."""

from __future__ import annotations

from typing import Any

from podnet.api import cluster, services, writes
from podnet.api.apply import merged
from podnet.errors import PodnetError
from podnet.model import kinds
from podnet.model.identity import stamped
from podnet.model.manifest import Resource, parse_resource
from podnet.model.namespace import Namespace
from podnet.model.origin import document_of
from podnet.model.service import Service
from podnet.store import resources
from podnet.store.base import Entry, Store


class AlreadyExists(PodnetError):
    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        super().__init__(f'{kinds.named(kind).plural if kinds.named(kind) else kind} "{name}" already exists')


class Conflict(PodnetError):
    """The object changed since the version the writer read."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        super().__init__(f'Operation cannot be fulfilled on {_plural(kind)} "{name}": the object has been modified; '
                         "please apply your changes to the latest version and try again")


class NamespaceTerminating(PodnetError):
    def __init__(self, kind: str, name: str, namespace: str) -> None:
        self.kind, self.name, self.namespace = kind, name, namespace
        super().__init__(f'{_plural(kind)} "{name}" is forbidden: unable to create new content in namespace '
                         f"{namespace} because it is being terminated")


def _plural(kind: str) -> str:
    registered = kinds.named(kind)
    return registered.plural if registered else kind.lower()


def check_namespace(store: Store, resource: Resource) -> None:
    """A namespaced object's namespace exists and is not being deleted."""
    if not kinds.of(type(resource)).namespaced:
        return
    namespace = resource.metadata.namespace
    found = writes.read(store, "Namespace", "", namespace)
    if found is None:
        raise writes.NotFound("Namespace", namespace)
    if found[0].terminating:  # type: ignore[union-attr]
        raise NamespaceTerminating(resource.kind, resource.metadata.name, namespace)


def create(store: Store, resource: Resource) -> Entry:
    """The new object as stored; a Service gets its addresses first, and gives them
    back if the name is taken."""
    check_namespace(store, resource)
    if store.get(resources.key_of(resource)) is not None:  # before any allocation: a refusal changes nothing
        raise AlreadyExists(resource.kind, resource.metadata.name)
    allocated = resource.labelled() if isinstance(resource, Namespace) else resource  # as kube-apiserver labels it
    if isinstance(resource, Service):
        (allocated,) = services.allocate(store, cluster.load(store), [resource])
    entry = writes.create(store, allocated)
    if entry is None:
        if isinstance(allocated, Service):
            services.release(store, cluster.load(store), allocated)
        raise AlreadyExists(resource.kind, resource.metadata.name)
    return entry


def replace(store: Store, desired: Resource, resource_version: int | None) -> Entry:
    """desired in place of the stored object, if it is still at resource_version
    (any, when None); its status stays as stored, since status has its own writes."""
    key = resources.key_of(desired)
    entry = _current(store, desired)
    if resource_version is not None and resource_version != entry.mod_revision:
        raise Conflict(desired.kind, desired.metadata.name)
    current = parse_resource(entry.value, entry.key)
    result = merged(current, desired)
    if isinstance(result, Service) and isinstance(current, Service):
        (result,) = services.allocate(store, cluster.load(store), [result], current)
    document = stamped(document_of(result), entry.value)
    if "status" in entry.value or "status" in document:
        document = {**document, "status": entry.value.get("status", {})}
    return _write(store, key, document, entry, desired)


def replace_status(store: Store, desired: Resource, resource_version: int | None) -> Entry:
    """Only the status of desired is written; the rest stays as stored."""
    key = resources.key_of(desired)
    entry = _current(store, desired)
    if resource_version is not None and resource_version != entry.mod_revision:
        raise Conflict(desired.kind, desired.metadata.name)
    status = document_of(desired).get("status", {})
    return _write(store, key, {**entry.value, "status": status}, entry, desired)


def _current(store: Store, resource: Resource) -> Entry:
    entry = store.get(resources.key_of(resource))
    if entry is None:
        raise writes.NotFound(resource.kind, resource.metadata.name)
    return entry


def _write(store: Store, key: str, document: dict[str, Any], entry: Entry, desired: Resource) -> Entry:
    if document == entry.value:
        return entry
    revision = store.compare_and_swap(key, document, entry.mod_revision)
    if revision is None:
        raise Conflict(desired.kind, desired.metadata.name)
    return Entry(key, document, entry.create_revision, revision)
