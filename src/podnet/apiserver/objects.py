"""Objects as the API serves them: the stored document, with the store's
revision as its resourceVersion, and lists of them narrowed by selectors and
cut into pages (limit and continue)."""

from __future__ import annotations

import base64
import json
from typing import Any, Protocol

from podnet.apiserver.resources import Resource
from podnet.apiserver.selectors import Test
from podnet.apiserver.status import ApiError
from podnet.store import resources as stored
from podnet.store.base import Entry, Store


class Cached(Protocol):
    def listed(self, prefix: str) -> tuple[list[Entry], int] | None: ...


def served(resource: Resource, entry: Entry) -> dict[str, Any]:
    """The document with its resourceVersion, apiVersion and kind."""
    document = dict(entry.value)
    document["metadata"] = {**(document.get("metadata") or {}), "resourceVersion": str(entry.mod_revision)}
    document["apiVersion"] = f"{resource.group}/{resource.version}" if resource.group else resource.version
    document["kind"] = resource.kind.name
    return document


def key(resource: Resource, namespace: str | None, name: str) -> str:
    return stored.key(resource.kind.name, namespace or "", name)


def prefix(resource: Resource, namespace: str | None) -> str:
    """Of every object of the resource, or of those in one namespace."""
    base = stored.prefix(resource.kind.name)
    return f"{base}{namespace}/" if namespace and resource.kind.namespaced else base


def read(store: Store, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
    entry = store.get(key(resource, namespace, name))
    if entry is None:
        raise ApiError(404, f'{_what(resource)} "{name}" not found',
                       details={"name": name, "group": resource.group, "kind": resource.name})
    return served(resource, entry)


def listing(store: Store, resource: Resource, namespace: str | None, test: Test, limit: int | None,
            token: str | None, cache: Cached | None = None) -> dict[str, Any]:
    """A List of what passes the test, a page at a time: `continue` names where the next starts.
    From the watch cache when there is one and it has caught up with the store."""
    entries, revision = (cache and cache.listed(prefix(resource, namespace))) or store.list(prefix(resource, namespace))
    start = ""
    if token:
        start, revision = _decode(token)
    items, following, items_last_key = [], "", ""
    for entry in entries:
        if entry.key <= start:
            continue
        document = served(resource, entry)
        if not test(document):
            continue
        if limit and len(items) == limit:
            following = _encode(items_last_key, revision)
            break
        items.append(document)
        items_last_key = entry.key
    group_version = f"{resource.group}/{resource.version}" if resource.group else resource.version
    metadata: dict[str, Any] = {"resourceVersion": str(revision)}
    if following:
        metadata["continue"] = following
    return {"kind": f"{resource.kind.name}List", "apiVersion": group_version, "metadata": metadata, "items": items}


def _what(resource: Resource) -> str:
    return f"{resource.name}.{resource.group}" if resource.group else resource.name


def _encode(last_key: str, revision: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"start": last_key, "rv": revision}).encode()).decode()


def _decode(token: str) -> tuple[str, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["start"]), int(data["rv"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "continue key is not valid") from None
