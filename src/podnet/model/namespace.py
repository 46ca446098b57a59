"""Namespace: a scope for names, with labels NetworkPolicy can select on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from podnet.model.fields import Fields
from podnet.model.meta import ObjectMeta
from podnet.model.origin import Origin

NAME_LABEL = "kubernetes.io/metadata.name"
BUILT_IN = ("default", "kube-node-lease", "kube-system")  # exist from a cluster's start, as in Kubernetes


@dataclass(frozen=True)
class Namespace:
    metadata: ObjectMeta
    terminating: bool = False  # being deleted: nothing new may be created in it
    origin: Origin | None = field(default=None, compare=False, repr=False)  # model/origin.py

    kind = "Namespace"

    @classmethod
    def parse(cls, fields: Fields) -> Namespace:
        metadata = ObjectMeta.parse(fields, namespaced=False)
        status = fields.mapping("status")
        terminating = bool(status and status.text("phase") == "Terminating")
        return cls(metadata, terminating)

    @classmethod
    def named(cls, name: str) -> Namespace:
        return cls(ObjectMeta(name, namespace="")).labelled()

    def labelled(self) -> Namespace:
        """Every namespace carries its name as a label, which policies select on."""
        meta = self.metadata
        return replace(self, metadata=replace(meta, labels={**meta.labels, NAME_LABEL: meta.name}))

    def deleting(self) -> Namespace:
        return replace(self, terminating=True)

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": self.metadata.to_manifest(),
                "status": {"phase": "Terminating" if self.terminating else "Active"}}
