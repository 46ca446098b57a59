"""A container's environment as a manifest declares it: plain values, and values
taken from the pod's own fields, a ConfigMap's key or a Secret's key when the
kubelet starts the container (it resolves them; the model only reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podnet.errors import ManifestError
from podnet.model.fields import Fields

FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
               "status.podIP", "status.podIPs", "status.hostIP")  # what a fieldRef may name, of what podnet's pods have
SOURCES = ("fieldRef", "configMapKeyRef", "secretKeyRef")


@dataclass(frozen=True)
class KeyRef:
    """A ConfigMap's or Secret's key."""
    name: str
    key: str
    optional: bool = False


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str = ""
    field_path: str | None = None  # valueFrom.fieldRef.fieldPath
    config_map: KeyRef | None = None  # valueFrom.configMapKeyRef
    secret: KeyRef | None = None  # valueFrom.secretKeyRef

    @classmethod
    def parse(cls, fields: Fields) -> EnvVar:
        name = fields.text("name", required=True) or ""
        source = fields.mapping("valueFrom")
        if source is None:
            return cls(name, fields.text("value", "") or "")
        given = [s for s in SOURCES if source.has(s)]
        if len(given) != 1:
            raise ManifestError(source.path, f"needs exactly one of {', '.join(SOURCES)}")
        ref = source.mapping(given[0], required=True)
        assert ref is not None
        if given[0] == "fieldRef":
            path = ref.text("fieldPath", required=True) or ""
            if path not in FIELD_PATHS and not path.startswith(("metadata.labels['", "metadata.annotations['")):
                raise ManifestError(ref.at("fieldPath"), f"{path!r} is not a supported field path: "
                                    f"{', '.join(FIELD_PATHS)}, metadata.labels['KEY'] or metadata.annotations['KEY']")
            return cls(name, field_path=path)
        key = KeyRef(ref.text("name", required=True) or "", ref.text("key", required=True) or "",
                     ref.boolean("optional"))
        return cls(name, config_map=key) if given[0] == "configMapKeyRef" else cls(name, secret=key)

    def to_manifest(self) -> dict[str, Any]:
        if self.field_path is not None:
            return {"name": self.name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": self.field_path}}}
        for source, ref in (("configMapKeyRef", self.config_map), ("secretKeyRef", self.secret)):
            if ref is not None:
                return {"name": self.name, "valueFrom": {source: {"name": ref.name, "key": ref.key,
                                                                   **({"optional": True} if ref.optional else {})}}}
        return {"name": self.name, "value": self.value}
