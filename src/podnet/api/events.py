"""Recording what happened to an object, for `describe`: one Event per
occurrence, kept for an hour (the API server's default --event-ttl).

Reporting is best effort, as Kubernetes' event recorder: a store that refuses
an event is logged and the work it describes goes on."""

from __future__ import annotations

import logging
import time

from podnet.api import writes
from podnet.errors import PodnetError
from podnet.model.event import Event
from podnet.model.meta import ObjectMeta
from podnet.store import resources
from podnet.store.base import Store

log = logging.getLogger("podnet.events")

TTL = 3600.0
NODE_EVENTS = "default"  # where a cluster-scoped object's (a Node's) events go, as in Kubernetes


def record(store: Store, kind: str, namespace: str, name: str, reason: str, message: str, source: str,
           warning: bool = False) -> None:
    now = time.time()
    try:
        event = Event(ObjectMeta(f"{name}.{time.time_ns():x}", namespace or NODE_EVENTS), (kind, name), reason,
                      message, source, now, "Warning" if warning else "Normal", _uid(store, kind, namespace, name))
        writes.create(store, event)
    except PodnetError as err:
        log.warning("could not record %s of %s/%s: %s", reason, kind.lower(), name, err)


def _uid(store: Store, kind: str, namespace: str, name: str) -> str:
    """The object's uid, as events name it; a Node's events name the node, as kubelet's do."""
    if kind == "Node":
        return name
    entry = store.get(resources.key(kind, namespace, name))
    return str((entry.value.get("metadata") or {}).get("uid", "")) if entry else ""


def about(events: list[Event], kind: str, namespace: str, name: str) -> list[Event]:
    """An object's events, oldest first."""
    return sorted((e for e in events if e.involved == (kind, name) and e.metadata.namespace == (namespace or NODE_EVENTS)),
                  key=lambda e: e.time)


def expire(store: Store, now: float | None = None) -> int:
    """Delete events older than TTL; returns how many went."""
    cutoff = (now if now is not None else time.time()) - TTL
    old = [e for e in resources.list_kind(store, Event)[0] if e.time < cutoff]
    for event in old:
        resources.delete(store, event)
    return len(old)
