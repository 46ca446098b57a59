"""What the API server stamps on every object it stores: a uid and a
creationTimestamp when it is created, kept for its life, and a generation that
moves only when its spec changes (so a controller's observedGeneration says
whether it has seen the latest spec)."""

from __future__ import annotations

import time
import uuid
from typing import Any


def timestamp(seconds: float | None = None) -> str:
    """RFC 3339 in UTC, to the second, as Kubernetes writes metav1.Time."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if seconds is None else seconds))


def stamped(document: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document to store: the previous version's identity kept, a new object's
    made; generation 1 for a new object with a spec, one more when its spec changes."""
    before = (previous or {}).get("metadata") or {}
    meta = dict(document.get("metadata") or {})
    meta["uid"] = before.get("uid") or meta.get("uid") or str(uuid.uuid4())
    meta["creationTimestamp"] = before.get("creationTimestamp") or meta.get("creationTimestamp") or timestamp()
    if "spec" in document:
        if previous is None:
            meta["generation"] = 1
        else:
            meta["generation"] = (before.get("generation") or 1) + (previous.get("spec") != document["spec"])
    meta.pop("resourceVersion", None)  # the store's revision, given when read
    return {**document, "metadata": meta}
