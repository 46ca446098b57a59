"""Deployment: a pod template kept at `replicas` copies, rolled to a new template
within maxSurge and maxUnavailable."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from podnet.errors import ManifestError
from podnet.model.fields import Fields
from podnet.model.meta import ObjectMeta
from podnet.model.origin import Origin, document_of, remember
from podnet.model.pod import Pod
from podnet.model.selector import LabelSelector

TEMPLATE_HASH = "pod-template-hash"  # the label a ReplicaSet puts on its pods
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # `rollout restart` changes the template with this


@dataclass(frozen=True)
class DeploymentStatus:
    """What the Deployment controller reports, and `kubectl rollout status` reads."""

    observed_generation: int
    replicas: int  # pods it runs, old and new
    updated: int  # of the current template
    ready: int
    available: int

    @property
    def unavailable(self) -> int:
        return max(0, self.replicas - self.available)

    def to_manifest(self, wanted: int, unavailable_allowed: int) -> dict[str, Any]:
        available = self.available >= wanted - unavailable_allowed
        complete = self.updated == wanted and self.replicas == wanted and self.available == wanted
        out: dict[str, Any] = {"observedGeneration": self.observed_generation, "replicas": self.replicas,
                               "updatedReplicas": self.updated, "readyReplicas": self.ready,
                               "availableReplicas": self.available}
        if self.unavailable:
            out["unavailableReplicas"] = self.unavailable
        out["conditions"] = [
            {"type": "Available", "status": "True" if available else "False",
             "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
             "message": "Deployment has minimum availability." if available else
             "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": "True",
             "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
             "message": "ReplicaSet has successfully progressed." if complete else "ReplicaSet is progressing."}]
        return out


@dataclass(frozen=True)
class Deployment:
    metadata: ObjectMeta
    replicas: int
    template: Pod  # its metadata.name is the deployment's
    selector: LabelSelector = field(default_factory=LabelSelector)
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"
    status: DeploymentStatus | None = None
    origin: Origin | None = field(default=None, compare=False, repr=False)  # model/origin.py

    kind = "Deployment"

    @classmethod
    def parse(cls, fields: Fields) -> Deployment:
        metadata = ObjectMeta.parse(fields)
        spec = fields.mapping("spec", required=True)
        replicas = spec.integer("replicas", 1, minimum=0, maximum=1000)
        template = spec.mapping("template", required=True)
        template_meta = template.mapping("metadata") or Fields({}, template.at("metadata"))
        labels = template_meta.labels("labels")
        annotations = template_meta.annotations("annotations")
        given = spec.mapping("selector")
        selector = LabelSelector.parse(given) if given else LabelSelector.of(labels)
        if not (selector.match_labels or selector.match_expressions) or not selector.matches(labels):
            raise ManifestError(spec.at("selector"), "does not match the template's labels")
        pod_meta = ObjectMeta(metadata.name, metadata.namespace, labels, annotations)
        pod = remember(Pod(pod_meta, **Pod.parse_spec(template.mapping("spec", required=True))),
                       {"apiVersion": "v1", "kind": "Pod", **template.data})  # its pods' document: image, env, ...
        surge, unavailable = _rolling_update(spec)
        if surge in (0, "0%") and unavailable in (0, "0%"):
            raise ManifestError(spec.at("strategy.rollingUpdate"), "maxSurge and maxUnavailable may not both be 0")
        return cls(metadata, replicas or 0, pod, selector, surge, unavailable, _parse_status(fields.mapping("status")))

    @functools.cached_property
    def template_hash(self) -> str:
        """Names a template version, as a ReplicaSet's pod-template-hash does: of
        the whole template, so that a new image is a new version."""
        document = document_of(self.template)
        text = json.dumps({"metadata": document.get("metadata", {}), "spec": document.get("spec", {})}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def surge(self) -> int:
        """Pods above replicas a rollout may run; a percentage rounds up, as Kubernetes'."""
        return _scaled(self.max_surge, self.replicas, round_up=True)

    def unavailable(self) -> int:
        """Pods below replicas a rollout may leave unready; a percentage rounds down."""
        return _scaled(self.max_unavailable, self.replicas, round_up=False)

    def pod(self, name: str) -> Pod:
        """A new pod from the template, labelled with its version and owned by this deployment."""
        meta = self.template.metadata
        labels = {**meta.labels, TEMPLATE_HASH: self.template_hash}
        return replace(self.template, metadata=ObjectMeta(name, self.metadata.namespace, labels, dict(meta.annotations),
                                                          owner=(self.kind, self.metadata.name)))

    def controlled(self, pods: list[Pod]) -> list[Pod]:
        """Pods whose ownerReference names this deployment, whatever their labels."""
        key = (self.kind, self.metadata.name)
        return [p for p in pods if p.metadata.namespace == self.metadata.namespace and p.metadata.owner == key]

    def pods(self) -> list[Pod]:
        """The first rollout's pods: web-0, web-1, ... (the names the controller
        gives to a fresh deployment; a lab file's names are checked against them)."""
        return [self.pod(f"{self.metadata.name}-{i}") for i in range(self.replicas)]

    def scaled(self, replicas: int) -> Deployment:
        return replace(self, replicas=replicas)

    def with_status(self, status: DeploymentStatus) -> Deployment:
        return replace(self, status=status)

    def to_manifest(self) -> dict[str, Any]:
        template_meta: dict[str, Any] = {"labels": dict(self.template.metadata.labels)}
        if self.template.metadata.annotations:
            template_meta["annotations"] = dict(self.template.metadata.annotations)
        out: dict[str, Any] = {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": self.metadata.to_manifest(),
            "spec": {"replicas": self.replicas, "selector": self.selector.to_manifest(),
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                         "maxSurge": self.max_surge, "maxUnavailable": self.max_unavailable}},
                     "template": {"metadata": template_meta, "spec": self.template.spec_manifest()}},
        }
        if self.status is not None:
            out["status"] = self.status.to_manifest(self.replicas, self.unavailable())
        return out


def _parse_status(status: Fields | None) -> DeploymentStatus | None:
    if status is None or not status.has("observedGeneration"):
        return None
    counts = [status.integer(key, 0, minimum=0) or 0 for key in ("observedGeneration", "replicas", "updatedReplicas",
                                                                 "readyReplicas", "availableReplicas")]
    return DeploymentStatus(*counts)


def _rolling_update(spec: Fields) -> tuple[int | str, int | str]:
    strategy = spec.mapping("strategy")
    if strategy is None:
        return "25%", "25%"
    kind = strategy.text("type", "RollingUpdate")
    if kind != "RollingUpdate":
        raise ManifestError(strategy.at("type"), f"{kind!r} is not supported (only RollingUpdate)")
    rolling = strategy.mapping("rollingUpdate")
    if rolling is None:
        return "25%", "25%"
    return _int_or_percent(rolling, "maxSurge"), _int_or_percent(rolling, "maxUnavailable")


def _int_or_percent(fields: Fields, key: str) -> int | str:
    value = fields.data.get(key, "25%")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit() and int(value[:-1]) <= 100:
        return value
    raise ManifestError(fields.at(key), f"{value!r} is not a count or a percentage such as 25%")


def _scaled(value: int | str, replicas: int, *, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    share = int(value[:-1]) * replicas
    return -(-share // 100) if round_up else share // 100
