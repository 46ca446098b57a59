"""A Kubernetes protobuf request body as the JSON object it stands for.

The body is `k8s\\0` and a runtime.Unknown: the object's apiVersion and kind,
and its message. Each message's fields are read by schema.json (made from the
client's own descriptors by extract.py). JSON is what Kubernetes' JSON encoding
of the same object gives: Time as RFC 3339, IntOrString as a number or string,
Quantity as its string, bytes as base64, map fields as objects; a zero (an
empty string, 0, false, a zero time) is left out as `omitempty` leaves it. Go's
protobuf writes every plain field, zero or not, and a pointer field whenever it
is set, so a zero is kept only for the pointer fields where it says something
unset would not (POINTERS)."""

from __future__ import annotations

import base64
import datetime
import functools
import json
import struct
from importlib import resources
from typing import Any

from podnet.apiserver.protobuf.wire import BYTES, WireError, fields, packed_varints

MAGIC = b"k8s\x00"
META = "k8s.io.apimachinery.pkg.apis.meta.v1."
SPECIAL = {f"{META}Time", f"{META}MicroTime", f"{META}Duration", f"{META}FieldsV1",
           "k8s.io.apimachinery.pkg.util.intstr.IntOrString", "k8s.io.apimachinery.pkg.api.resource.Quantity",
           "k8s.io.apimachinery.pkg.runtime.RawExtension"}

POINTERS = frozenset({
    "replicas", "revisionHistoryLimit", "progressDeadlineSeconds", "terminationGracePeriodSeconds",
    "activeDeadlineSeconds", "deletionGracePeriodSeconds", "automountServiceAccountToken", "enableServiceLinks",
    "shareProcessNamespace", "setHostnameAsFQDN", "hostUsers", "immutable", "optional", "defaultMode", "mode",
    "runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "privileged", "allowPrivilegeEscalation",
    "readOnlyRootFilesystem", "ready", "serving", "terminating", "allocateLoadBalancerNodePorts",
    "leaseDurationSeconds", "leaseTransitions", "expirationSeconds", "priority", "endPort", "gracePeriodSeconds",
    "orphanDependents"})


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf object: one line for a 400."""


class UnknownType(ProtobufError):
    """Well-formed, but of a type (or an encoding) podnet has no schema for: a 415."""


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("schema.json").read_text())  # type: ignore[no-any-return]


def decode(body: bytes) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise ProtobufError("a protobuf body starts with k8s\\0")
    try:
        envelope = {number: value for number, _, value in fields(body[len(MAGIC):])}
        type_meta = {number: value for number, _, value in fields(_bytes(envelope.get(1, b"")))}
        api_version, kind = _bytes(type_meta.get(1, b"")).decode(), _bytes(type_meta.get(2, b"")).decode()
        if envelope.get(3):
            raise UnknownType(f"protobuf content encoding {_bytes(envelope[3]).decode()!r} is not supported")
        message = schema()["kinds"].get(f"{api_version}/{kind}")
        if message is None:
            raise UnknownType(f"no protobuf encoding is known for {kind or '?'} in {api_version or '?'}")
        return {"apiVersion": api_version, "kind": kind, **_message(_bytes(envelope.get(2, b"")), message)}
    except (WireError, UnicodeDecodeError, struct.error) as err:
        raise ProtobufError(f"the protobuf body is malformed: {err}") from None


def _message(data: bytes, name: str) -> Any:
    if name in SPECIAL:
        return _special(name, {number: value for number, _, value in fields(data)})
    table = schema()["messages"][name]
    out: dict[str, Any] = {}
    for number, wire_type, value in fields(data):
        spec = table.get(str(number))
        if spec is None:
            continue  # a field newer than the descriptors podnet read: as a client would, skip it
        field, type_name, how = spec
        if how == "map":
            entry = {n: v for n, _, v in fields(_bytes(value))}
            out.setdefault(field, {})[_bytes(entry.get(1, b"")).decode()] = \
                _value(entry.get(2, 0 if _is_varint(type_name) else b""), type_name)
        elif how == "repeated":
            packed = wire_type == BYTES and _is_varint(type_name)
            items: list[int | bytes] = [*packed_varints(_bytes(value))] if packed else [value]
            out.setdefault(field, []).extend(_value(item, type_name) for item in items)
        else:
            decoded = _value(value, type_name)
            if decoded is None or (decoded in ("", 0) and field not in POINTERS):  # 0 == False
                out.pop(field, None)
            else:
                out[field] = decoded
    return out


def _value(value: int | bytes, type_name: str) -> Any:
    if "." in type_name:
        return _message(_bytes(value), type_name)
    if type_name == "string":
        return _bytes(value).decode()
    if type_name == "bytes":
        return base64.b64encode(_bytes(value)).decode()
    if type_name == "bool":
        return bool(value)
    if type_name in ("double", "float"):
        return struct.unpack("<d" if type_name == "double" else "<f", _bytes(value))[0]
    if isinstance(value, bytes):  # fixed-width integers
        return int.from_bytes(value, "little", signed=type_name.startswith("sfixed"))
    if type_name in ("sint32", "sint64"):
        return (value >> 1) ^ -(value & 1)
    if type_name in ("int32", "int64") and value >= 1 << 63:
        return value - (1 << 64)
    return value


def _special(name: str, parts: dict[int, int | bytes]) -> Any:
    """The few messages whose JSON is not an object of their fields."""
    short = name.rpartition(".")[2]
    if short in ("Time", "MicroTime"):
        seconds, nanos = int(parts.get(1, 0)), int(parts.get(2, 0))  # type: ignore[arg-type]
        if not seconds and not nanos:
            return None
        moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
        if short == "Time":
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos // 1000:06d}Z"
    if short == "Duration":
        return f"{int(parts.get(1, 0)) / 1e9:g}s"  # type: ignore[arg-type]
    if short == "IntOrString":
        return _bytes(parts.get(3, b"")).decode() if parts.get(1) == 1 else _value(parts.get(2, 0), "int32")
    if short == "Quantity":
        return _bytes(parts.get(1, b"")).decode()
    raw = _bytes(parts.get(1, b""))  # RawExtension, FieldsV1: JSON already
    return json.loads(raw) if raw else {}


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise WireError("a number where bytes were expected")
    return value


def _is_varint(type_name: str) -> bool:
    return type_name in ("int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool")
