"""Resources in the store: Kubernetes-style keys, manifests as values."""

from __future__ import annotations

import logging
import weakref
from typing import TypeVar

from podnet.errors import ManifestError
from podnet.model import kinds
from podnet.model.identity import stamped
from podnet.model.manifest import Resource, parse_resource
from podnet.model.origin import document_of
from podnet.store.base import Event, Store

REGISTRY = "/registry/"
R = TypeVar("R", bound=Resource)


def prefix(kind: str) -> str:
    registered = kinds.named(kind)
    if registered is None:
        raise KeyError(f"no kind {kind!r} in the registry")
    return f"{REGISTRY}{registered.plural}/"


def key(kind: str, namespace: str, name: str) -> str:
    """Cluster-scoped kinds (Node) have no namespace segment, as in Kubernetes."""
    return f"{prefix(kind)}{namespace}/{name}" if namespace else f"{prefix(kind)}{name}"


def key_of(resource: Resource) -> str:
    return key(resource.kind, resource.metadata.namespace, resource.metadata.name)


def put(store: Store, resource: Resource) -> int:
    """Write whatever is there: the whole object (model/origin.py), its identity kept."""
    key = key_of(resource)
    previous = store.get(key)
    return store.put(key, stamped(document_of(resource), previous.value if previous else None))


def delete(store: Store, resource: Resource) -> int | None:
    return store.delete(key_of(resource))


_parsed: weakref.WeakKeyDictionary[Store, dict[str, dict[str, tuple[int, Resource | None]]]] = \
    weakref.WeakKeyDictionary()
log = logging.getLogger("podnet.store")


def list_kind(store: Store, cls: type[R]) -> tuple[list[R], int]:
    """Every stored resource of the class's kind, and the revision they are at.

    Objects are immutable, so one parsed at a revision is reused until its entry
    changes: a controller that lists 1 000 pods on every pass parses only the
    few that changed since the last. An entry this model cannot read (written by
    a newer podnet, say) is left out and logged once, so that one object never
    stops every controller's pass."""
    kind_prefix = prefix(kinds.of(cls).name)
    entries, revision = store.list(kind_prefix)
    by_prefix = _parsed.setdefault(store, {})
    known = by_prefix.get(kind_prefix, {})
    current: dict[str, tuple[int, Resource | None]] = {}
    for entry in entries:
        cached = known.get(entry.key)
        if cached is None or cached[0] != entry.mod_revision:
            cached = (entry.mod_revision, _readable(entry.value, entry.key))
        current[entry.key] = cached
    by_prefix[kind_prefix] = current
    return [resource for _, resource in current.values() if resource is not None], revision  # type: ignore[misc]


def _readable(value: object, key: str) -> Resource | None:
    try:
        return parse_resource(value, key)
    except ManifestError as err:
        log.warning("left out, unreadable: %s", err)
        return None


def get(store: Store, cls: type[R], namespace: str, name: str) -> R | None:
    entry = store.get(key(kinds.of(cls).name, namespace, name))
    return parse_resource(entry.value, entry.key) if entry else None  # type: ignore[return-value]


def decode(event: Event) -> Resource | None:
    return parse_resource(event.value, event.key) if event.value else None
