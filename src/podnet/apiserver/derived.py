"""Resources made from others when asked, never stored: Endpoints, which
kube-apiserver's EndpointSlice mirroring keeps for older clients, read here from
the Services' EndpointSlices (ready addresses, and those not ready, per port);
and ReplicaSets, read from each Deployment and its pods."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

from podnet.errors import ManifestError
from podnet.model.deployment import TEMPLATE_HASH, Deployment
from podnet.model.endpointslice import SERVICE_NAME
from podnet.model.manifest import parse_resource
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


def replicasets(store: Store, namespace: str | None) -> tuple[list[dict[str, Any]], int]:
    """A ReplicaSet per template version a Deployment runs pods of, and always its
    current one: podnet's Deployment controller keeps its pods itself (by their
    pod-template-hash), so kubectl's `describe deploy` and `rollout history` read
    these. Revisions number the versions that still have pods, oldest first; an
    old version's template is read from one of its pods."""
    scope = f"{namespace}/" if namespace else ""
    deployments, revision = store.list(resources.prefix("Deployment") + scope)
    pods, _ = store.list(resources.prefix("Pod") + scope)
    found = []
    for entry in deployments:
        try:
            deployment = parse_resource(entry.value, entry.key)
        except ManifestError:
            continue
        assert isinstance(deployment, Deployment)
        mine = [p for p in pods if _owned_by(p.value, deployment) and not p.value["metadata"].get("deletionTimestamp")]
        versions: dict[str, list[Any]] = {deployment.template_hash: []}
        for pod in sorted(mine, key=lambda p: p.value["metadata"].get("creationTimestamp") or ""):
            versions.setdefault(pod.value["metadata"].get("labels", {}).get(TEMPLATE_HASH, ""), []).append(pod)
        current = versions.pop(deployment.template_hash)
        ordered = [*versions.items(), (deployment.template_hash, current)]
        for number, (version, members) in enumerate(ordered, 1):
            found.append(_replicaset(entry, deployment, version, members, number))
    return found, revision


def _owned_by(pod: dict[str, Any], deployment: Deployment) -> bool:
    return pod["metadata"].get("namespace") == deployment.metadata.namespace and any(
        ref.get("kind") == "Deployment" and ref.get("name") == deployment.metadata.name
        for ref in pod["metadata"].get("ownerReferences") or [])


def _replicaset(entry: Any, deployment: Deployment, version: str, pods: list[Any], number: int) -> dict[str, Any]:
    meta = entry.value["metadata"]
    current = version == deployment.template_hash
    if current:
        template = copy.deepcopy(entry.value["spec"]["template"])
    else:
        template = {"metadata": {"labels": dict(pods[0].value["metadata"].get("labels") or {})},
                    "spec": copy.deepcopy(pods[0].value.get("spec") or {})}
    template.setdefault("metadata", {}).setdefault("labels", {})[TEMPLATE_HASH] = version
    selector = copy.deepcopy(entry.value["spec"].get("selector") or {"matchLabels": {}})
    selector.setdefault("matchLabels", {})[TEMPLATE_HASH] = version
    ready = sum(1 for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                       for c in (p.value.get("status") or {}).get("conditions") or []))
    stamps = [stamp for p in pods if (stamp := p.value["metadata"].get("creationTimestamp"))]
    name = f"{deployment.metadata.name}-{version}"
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": name, "namespace": deployment.metadata.namespace,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{meta.get('uid', '')}/{version}")),
            "creationTimestamp": min(stamps, default=meta.get("creationTimestamp")),
            "resourceVersion": str(max([entry.mod_revision, *(p.mod_revision for p in pods)])),
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {"deployment.kubernetes.io/revision": str(number),
                            "deployment.kubernetes.io/desired-replicas": str(deployment.replicas)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.metadata.name,
                                 "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"replicas": deployment.replicas if current else len(pods), "selector": selector,
                 "template": template},
        "status": {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                   "availableReplicas": ready, "observedGeneration": meta.get("generation", 1)},
    }


def events(store: Store, namespace: str | None) -> tuple[list[dict[str, Any]], int]:
    """The core Events as events.k8s.io/v1 has them: the same objects, as
    kube-apiserver converts between the two (regarding, note, and the core
    fields kept as deprecated*)."""
    entries, revision = store.list(resources.prefix("Event") + (f"{namespace}/" if namespace else ""))
    found = []
    for entry in entries:
        core = entry.value
        meta = {**core.get("metadata", {}), "resourceVersion": str(entry.mod_revision)}
        event = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta,
                 "eventTime": core.get("eventTime"), "regarding": core.get("involvedObject", {}),
                 "note": core.get("message", ""), "reason": core.get("reason", ""), "type": core.get("type", ""),
                 "reportingController": core.get("reportingComponent") or (core.get("source") or {}).get("component"),
                 "reportingInstance": core.get("reportingInstance") or (core.get("source") or {}).get("host"),
                 "deprecatedSource": core.get("source", {}), "deprecatedCount": core.get("count"),
                 "deprecatedFirstTimestamp": core.get("firstTimestamp"),
                 "deprecatedLastTimestamp": core.get("lastTimestamp")}
        found.append({key: value for key, value in event.items() if value not in (None, "")})
    return found, revision
