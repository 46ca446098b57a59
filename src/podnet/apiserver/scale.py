"""The scale subresource: a Deployment's replicas as an autoscaling/v1 Scale,
which `kubectl scale` and autoscalers read and write."""

from __future__ import annotations

from typing import Any


def scale_of(document: dict[str, Any]) -> dict[str, Any]:
    meta = document.get("metadata") or {}
    spec, status = document.get("spec") or {}, document.get("status") or {}
    labels = ((spec.get("selector") or {}).get("matchLabels") or {})
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if key in meta},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": status.get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))}}
