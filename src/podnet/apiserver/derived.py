"""Resources made from others when asked, never stored: Endpoints, which
kube-apiserver's EndpointSlice mirroring keeps for older clients, read here from
the Services' EndpointSlices (ready addresses, and those not ready, per port)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podnet.model.endpointslice import SERVICE_NAME
from podnet.store import resources
from podnet.store.base import Store

Derive = Callable[[Store, str | None], tuple[list[dict[str, Any]], int]]


def endpoints(store: Store, namespace: str | None) -> tuple[list[dict[str, Any]], int]:
    """One Endpoints per Service that has slices, as the slices have it now."""
    prefix = resources.prefix("EndpointSlice") + (f"{namespace}/" if namespace else "")
    entries, revision = store.list(prefix)
    grouped: dict[tuple[str, str], list[Any]] = {}
    for entry in entries:
        meta = entry.value.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME)
        if service:
            grouped.setdefault((meta.get("namespace", ""), service), []).append(entry)
    found = []
    for (ns, name), slices in sorted(grouped.items()):
        ready, not_ready, ports = [], [], []
        for entry in slices:
            for endpoint in entry.value.get("endpoints") or []:
                address = {"ip": (endpoint.get("addresses") or [""])[0]}
                if endpoint.get("nodeName"):
                    address["nodeName"] = endpoint["nodeName"]
                if endpoint.get("targetRef"):
                    address["targetRef"] = endpoint["targetRef"]
                (ready if (endpoint.get("conditions") or {}).get("ready") else not_ready).append(address)
            ports += [p for p in entry.value.get("ports") or [] if p not in ports]
        subset: dict[str, Any] = {"ports": ports}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        stamp = min(((e.value.get("metadata") or {}).get("creationTimestamp", "") for e in slices), default="")
        found.append({"apiVersion": "v1", "kind": "Endpoints",
                      "metadata": {"name": name, "namespace": ns, "creationTimestamp": stamp or None,
                                   "resourceVersion": str(max(e.mod_revision for e in slices))},
                      "subsets": [subset] if ready or not_ready else []})
    return found, revision
