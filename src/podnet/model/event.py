"""Event: something that happened to an object (scheduled, started, killed,
probe failed), as controllers and the kubelet report it for `describe`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from podnet.errors import ManifestError
from podnet.model.fields import Fields
from podnet.model.meta import ObjectMeta
from podnet.model.origin import Origin

TYPES = ("Normal", "Warning")


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(fields: Fields, key: str) -> float:
    text = fields.text(key, required=True) or ""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ManifestError(fields.at(key), f"{text!r} is not an RFC 3339 time") from None


@dataclass(frozen=True)
class Event:
    metadata: ObjectMeta  # in the object's namespace, named <object>.<time>
    involved: tuple[str, str]  # (kind, name) of the object, in the same namespace
    reason: str  # Scheduled, Started, Killing, Unhealthy, BackOff, ...
    message: str
    source: str  # who says so: default-scheduler, kubelet, ...
    time: float  # seconds since the epoch
    type: str = "Normal"
    involved_uid: str = ""  # the object's uid, which kubectl describe finds its events by
    origin: Origin | None = field(default=None, compare=False, repr=False)  # model/origin.py

    kind = "Event"

    @classmethod
    def parse(cls, fields: Fields) -> Event:
        involved = fields.mapping("involvedObject", required=True)
        assert involved is not None
        kind = fields.text("type", "Normal") or "Normal"
        if kind not in TYPES:
            raise ManifestError(fields.at("type"), f"{kind!r} is not Normal or Warning")
        source = fields.mapping("source")
        return cls(ObjectMeta.parse(fields), (involved.text("kind", required=True) or "",
                                              involved.text("name", required=True) or ""),
                   fields.text("reason", "") or "", fields.text("message", "") or "",
                   (source.text("component", "") or "") if source else "", parse_time(fields, "lastTimestamp"), kind,
                   involved.text("uid", "") or "")

    def to_manifest(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Event", "metadata": self.metadata.to_manifest(),
                "involvedObject": {"kind": self.involved[0], "name": self.involved[1],
                                   "namespace": self.metadata.namespace,
                                   **({"uid": self.involved_uid} if self.involved_uid else {})},
                "reason": self.reason, "message": self.message, "source": {"component": self.source},
                "firstTimestamp": timestamp(self.time), "lastTimestamp": timestamp(self.time), "count": 1,
                "type": self.type}
