"""Kinds podnet stores and serves as they are given, with no controller of its
own (ConfigMap, Secret, ServiceAccount), so that ordinary manifests apply whole.
The model reads their metadata and checks what Kubernetes checks of their data;
everything else is their document's (model/origin.py)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from podnet.errors import ManifestError
from podnet.model.fields import Fields
from podnet.model.meta import ObjectMeta
from podnet.model.origin import Origin

_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")  # a ConfigMap's or Secret's key: a file name
SECRET_TYPE = "Opaque"


def _data(fields: Fields, key: str) -> dict[str, str]:
    """A map of file names to strings (a ConfigMap's data, a Secret's base64)."""
    data = fields.string_map(key)
    for name in data:
        if not _DATA_KEY.match(name) or len(name) > 253:
            raise ManifestError(f"{fields.at(key)}.{name}", "a valid config key must consist of alphanumeric "
                                "characters, '-', '_' or '.'")
    return data


@dataclass(frozen=True)
class ConfigMap:
    metadata: ObjectMeta
    origin: Origin | None = field(default=None, compare=False, repr=False)

    kind = "ConfigMap"

    @classmethod
    def parse(cls, fields: Fields) -> ConfigMap:
        for key in ("data", "binaryData"):
            _data(fields, key)
        return cls(ObjectMeta.parse(fields))

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": self.kind, "metadata": self.metadata.to_manifest()}


@dataclass(frozen=True)
class Secret:
    metadata: ObjectMeta
    type: str = SECRET_TYPE
    origin: Origin | None = field(default=None, compare=False, repr=False)

    kind = "Secret"

    @classmethod
    def parse(cls, fields: Fields) -> Secret:
        _data(fields, "stringData")
        for name, value in _data(fields, "data").items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise ManifestError(f"{fields.at('data')}.{name}", "must be base64 (stringData takes plain text)") \
                    from None
        return cls(ObjectMeta.parse(fields), fields.text("type", SECRET_TYPE) or SECRET_TYPE)

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": self.kind, "metadata": self.metadata.to_manifest(), "type": self.type}


@dataclass(frozen=True)
class ServiceAccount:
    metadata: ObjectMeta
    origin: Origin | None = field(default=None, compare=False, repr=False)

    kind = "ServiceAccount"

    @classmethod
    def parse(cls, fields: Fields) -> ServiceAccount:
        return cls(ObjectMeta.parse(fields))

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": self.kind, "metadata": self.metadata.to_manifest()}
