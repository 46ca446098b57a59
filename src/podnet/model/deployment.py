"""Deployment: a pod template stamped out `replicas` times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podnet.errors import ManifestError
from podnet.model.fields import Fields
from podnet.model.meta import ObjectMeta
from podnet.model.pod import Pod
from podnet.model.selector import LabelSelector


@dataclass(frozen=True)
class Deployment:
    metadata: ObjectMeta
    replicas: int
    template: Pod  # its metadata.name is the deployment's; pods get "-<index>"

    kind = "Deployment"

    @classmethod
    def parse(cls, fields: Fields) -> Deployment:
        metadata = ObjectMeta.parse(fields)
        spec = fields.mapping("spec", required=True)
        replicas = spec.integer("replicas", 1, minimum=0, maximum=1000)
        template = spec.mapping("template", required=True)
        template_meta = template.mapping("metadata") or Fields({}, template.at("metadata"))
        labels = template_meta.labels("labels")
        annotations = template_meta.labels("annotations")
        given = spec.mapping("selector")
        selector = LabelSelector.parse(given) if given else LabelSelector.of(labels)
        if not (selector.match_labels or selector.match_expressions) or not selector.matches(labels):
            raise ManifestError(spec.at("selector"), "does not match the template's labels")
        pod_meta = ObjectMeta(metadata.name, metadata.namespace, labels, annotations)
        pod = Pod(pod_meta, **Pod.parse_spec(template.mapping("spec", required=True)))
        return cls(metadata, replicas, pod)

    def pods(self) -> list[Pod]:
        """Stable, predictable pod names: web-0, web-1, ... (easy to exec into)."""
        return [
            Pod(ObjectMeta(f"{self.metadata.name}-{i}", self.metadata.namespace, self.template.metadata.labels,
                           self.template.metadata.annotations),
                self.template.containers, self.template.node_name, self.template.hostname, self.template.subdomain)
            for i in range(self.replicas)
        ]

    def to_manifest(self) -> dict[str, Any]:
        labels = self.template.metadata.labels
        return {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": self.metadata.to_manifest(),
            "spec": {"replicas": self.replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels), "annotations": dict(self.template.metadata.annotations)},
                                  "spec": self.template.spec_manifest()}},
        }
