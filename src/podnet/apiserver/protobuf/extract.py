"""schema.json and openapi_v2.json, remade from the protobuf descriptors a Go
Kubernetes client carries: kubectl registers each API group's `generated.proto`,
and gnostic's OpenAPIv2.proto (the form kubectl reads OpenAPI v2 in), as gzipped
FileDescriptorProtos, so the field numbers come from the client that uses them.

    python -m podnet.apiserver.protobuf.extract /path/to/kubectl > schema.json
    python -m podnet.apiserver.protobuf.extract --openapi-v2 /path/to/kubectl-1.20 > openapi_v2.json

Only the messages the served kinds (or an OpenAPI v2 Document) reach are kept.
kubectl 1.20 (Debian's) carries gnostic's descriptor gzipped; later ones do not."""

from __future__ import annotations

import json
import re
import sys
import zlib
from typing import Any

from podnet.apiserver.protobuf.wire import fields

# FieldDescriptorProto.type's numbers, by the names schema.json uses
SCALARS = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32", 8: "bool",
           9: "string", 12: "bytes", 13: "uint32", 15: "sfixed32", 16: "sfixed64", 17: "sint32", 18: "sint64"}
MESSAGE, REPEATED = 11, 3
PACKAGES = {"": "k8s.io.api.core.v1", "apps": "k8s.io.api.apps.v1", "autoscaling": "k8s.io.api.autoscaling.v1",
            "discovery.k8s.io": "k8s.io.api.discovery.v1", "events.k8s.io": "k8s.io.api.events.v1",
            "coordination.k8s.io": "k8s.io.api.coordination.v1", "networking.k8s.io": "k8s.io.api.networking.v1",
            "authorization.k8s.io": "k8s.io.api.authorization.v1",
            "authentication.k8s.io": "k8s.io.api.authentication.v1"}


def descriptors(binary: bytes) -> list[bytes]:
    """Every gzipped generated.proto descriptor in the binary."""
    found = []
    for match in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00", binary):
        try:
            data = zlib.decompressobj(31).decompress(binary[match.start():match.start() + (1 << 20)])
        except zlib.error:
            continue
        if b"generated.proto" in data[:100] or b"OpenAPIv2.proto" in data[:100]:
            found.append(data)
    return found


def messages(descriptor: bytes) -> dict[str, dict[str, Any]]:
    """Each message of one file, by full name: {number: [name, type, flags]}."""
    package = next(v.decode() for n, _, v in fields(descriptor) if n == 2 and isinstance(v, bytes))
    out: dict[str, dict[str, Any]] = {}
    for number, _, value in fields(descriptor):
        if number == 4 and isinstance(value, bytes):
            _message(value, package, out, {})
    return out


def _message(data: bytes, scope: str, out: dict[str, dict[str, Any]], entries: dict[str, tuple[str, str]]) -> None:
    name = next(v.decode() for n, _, v in fields(data) if n == 1 and isinstance(v, bytes))
    full = f"{scope}.{name}"
    nested: dict[str, tuple[str, str]] = {}
    for number, _, value in fields(data):
        if number == 3 and isinstance(value, bytes):
            _message(value, full, out, nested)
        elif number == 7 and isinstance(value, bytes) and (7, 0, 1) in fields(value):  # MessageOptions.map_entry
            table = {}
            for n, _, v in fields(data):
                if n == 2 and isinstance(v, bytes):
                    table.update(_field(v))
            entries[full] = (table["1"][1], table["2"][1])
            return
    table = {}
    for number, _, value in fields(data):
        if number == 2 and isinstance(value, bytes):
            table.update(_field(value))
    for spec in table.values():
        if spec[1] in nested:
            key, value_type = nested[spec[1]]
            assert key == "string", (full, spec)
            spec[1:] = [value_type, "map"]
    out[full] = table


def _field(data: bytes) -> dict[str, list[str]]:
    parts: dict[int, Any] = {n: v for n, _, v in fields(data)}
    type_name = parts[6].decode().lstrip(".") if parts[5] == MESSAGE else SCALARS[parts[5]]
    return {str(parts[3]): [parts[1].decode(), type_name, "repeated" if parts[4] == REPEATED else ""]}


def schema(binary: bytes, kinds: list[tuple[str, str]]) -> dict[str, Any]:
    """The kinds' messages and all they reach; kinds are (apiVersion, kind)."""
    roots = {f"{api_version}/{kind}": f"{PACKAGES[api_version.rpartition('/')[0]]}.{kind}"
             for api_version, kind in kinds} | OPTIONS
    return {"kinds": dict(sorted(roots.items())), "messages": _reached(binary, list(roots.values()))}


OPTIONS = {"v1/DeleteOptions": "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"}  # a typed client's delete body


def openapi_v2(binary: bytes) -> dict[str, Any]:
    """gnostic's OpenAPI v2 Document and all it reaches."""
    return {"messages": _reached(binary, [GNOSTIC_DOCUMENT])}


GNOSTIC_DOCUMENT = "openapi.v2.Document"


def _reached(binary: bytes, roots: list[str]) -> dict[str, dict[str, Any]]:
    everything: dict[str, dict[str, Any]] = {}
    for descriptor in descriptors(binary):
        everything.update(messages(descriptor))
    kept: dict[str, dict[str, Any]] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept[name] = everything[name]
        todo += [spec[1] for spec in kept[name].values() if spec[1] in everything]
    return dict(sorted(kept.items()))


def main() -> None:
    from podnet.apiserver.resources import SERVED

    if sys.argv[1] == "--openapi-v2":
        print(json.dumps(openapi_v2(open(sys.argv[2], "rb").read()), indent=None, separators=(",", ":")))
        return
    kinds = sorted({(r.kind.group_version, r.kind.name) for r in SERVED if r.derive is None
                    and r.group in PACKAGES} | {("autoscaling/v1", "Scale"), ("events.k8s.io/v1", "Event")})
    print(json.dumps(schema(open(sys.argv[1], "rb").read(), kinds), indent=None, separators=(",", ":")))


if __name__ == "__main__":
    main()
