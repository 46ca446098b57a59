"""ObjectMeta: the name, namespace and labels every resource carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podnet.model.fields import Fields, check_annotations, check_dns_label, check_dns_subdomain, check_labels


@dataclass(frozen=True)
class ObjectMeta:
    name: str
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    owner: tuple[str, str] | None = None  # (kind, name) of the controller that made it: its ownerReference
    generation: int = field(default=0, compare=False)  # as stored (model/identity.py stamps it; never rendered)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, fields: Fields, *, namespaced: bool = True) -> ObjectMeta:
        meta = fields.mapping("metadata", required=True)
        name = check_dns_subdomain(meta.text("name", required=True), meta.at("name"))
        namespace = meta.text("namespace", "default") if namespaced else ""
        if namespaced:
            check_dns_label(namespace, meta.at("namespace"))
        owner = None
        for reference in meta.records("ownerReferences"):
            if reference.boolean("controller"):
                owner = (reference.text("kind", required=True) or "", reference.text("name", required=True) or "")
        return cls(name=name, namespace=namespace, labels=meta.labels("labels"), annotations=meta.annotations("annotations"),
                   owner=owner, generation=meta.integer("generation", 0, minimum=0) or 0)

    def check(self) -> None:
        """Labels and annotations as parse() checks them, for metadata changed in
        place (`podnet label`, `annotate`) rather than read from a manifest."""
        check_labels(self.labels, "metadata.labels")
        check_annotations(self.annotations, "metadata.annotations")

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.owner:
            api_version = "apps/v1" if self.owner[0] in ("Deployment", "ReplicaSet") else "v1"
            out["ownerReferences"] = [{"apiVersion": api_version, "kind": self.owner[0], "name": self.owner[1],
                                       "controller": True}]
        return out
