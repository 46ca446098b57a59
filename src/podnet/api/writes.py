"""Reads and compare-and-swap writes of one object, as the API server does them:
an update is based on the version it read, and a conflict is read again and
retried, so concurrent writers never lose each other's changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from podnet.errors import ManifestError, PodnetError
from podnet.model import kinds
from podnet.model.identity import stamped
from podnet.model.manifest import Resource, parse_resource
from podnet.model.origin import document_of
from podnet.store import resources
from podnet.store.base import Entry, Store, StoreError

R = TypeVar("R", bound=Resource)
MAX_CONFLICTS = 200  # far beyond any real contention; a bound, so a bug cannot spin for ever


def describe(kind: str, namespace: str, name: str) -> str:
    """`pods "web-0" in namespace "apps"`."""
    return f'{_plural(kind)} "{name}"' + (f' in namespace "{namespace}"' if namespace else "")


def _plural(kind: str) -> str:
    registered = kinds.named(kind)
    return registered.plural if registered else kind.lower()


class NotFound(PodnetError):
    """No such object, in the API's words, `pods "web-0" not found`, whichever verb
    looked (kubectl names no namespace, though it looked in one)."""

    heading = "Error from server (NotFound)"  # as kubectl prints the server's answer

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        super().__init__(f'{_plural(kind)} "{name}" not found')


def read(store: Store, kind: str, namespace: str, name: str) -> tuple[Resource, int] | None:
    """The object and its resourceVersion (the store's revision of its last write)."""
    entry = store.get(resources.key(kind, namespace, name))
    return (parse_resource(entry.value, entry.key), entry.mod_revision) if entry else None


def update(store: Store, kind: str, namespace: str, name: str,
           change: Callable[[Resource], Resource | None]) -> tuple[Resource, bool]:
    """Apply change to the current object until a compare-and-swap takes it.
    Returns the object as written (or as it was, if change made no difference)
    and whether it changed; change returning None deletes the object."""
    key = resources.key(kind, namespace, name)
    for _ in range(MAX_CONFLICTS):
        entry = store.get(key)
        if entry is None:
            raise NotFound(kind, name)
        current = parse_resource(entry.value, entry.key)
        changed = change(current)
        if changed is None:
            if store.compare_and_swap(key, None, entry.mod_revision) is not None:
                return current, True
            continue
        document = stamped(document_of(changed), entry.value)
        if document == entry.value:
            return current, False
        _check_metadata(kind, name, current, changed)
        if store.compare_and_swap(key, document, entry.mod_revision) is not None:
            return changed, True
    raise StoreError(f"{describe(kind, namespace, name)} changed {MAX_CONFLICTS} times while being updated; try again")


def _check_metadata(kind: str, name: str, current: Resource, changed: Resource) -> None:
    """Labels and annotations a change sets (`podnet label`, `annotate`) are
    validated as a manifest's are, in kubectl's words: `The Pod "c" is invalid:
    metadata.labels: Invalid value: ...`."""
    before, after = current.metadata, changed.metadata
    if (before.labels, before.annotations) == (after.labels, after.annotations):
        return
    try:
        after.check()
    except ManifestError as err:
        raise err.in_source(f'The {kind} "{name}" is invalid') from None


def create(store: Store, resource: Resource) -> Entry | None:
    """Write a new object, and return it as stored; None when one of that name exists already."""
    key, document = resources.key_of(resource), stamped(document_of(resource))
    revision = store.compare_and_swap(key, document, 0)
    return Entry(key, document, revision, revision) if revision is not None else None


def modify(store: Store, cls: type[R], namespace: str, name: str, change: Callable[[R], R | None]) -> tuple[R, bool]:
    """update, typed by class."""
    return update(store, kinds.of(cls).name, namespace, name, change)  # type: ignore[arg-type,return-value]
