"""Unknown fields, found and judged as kube-apiserver does with the
`fieldValidation` query parameter: Strict refuses the write (400, "strict
decoding error"), Warn (the default, what kubectl 1.20 and the Python client
get) accepts it with a warning per field, Ignore says nothing. Accepted, an
unknown field is dropped, as kube-apiserver's decoder keeps none: a later patch
or apply of the object does not meet it again.

A field is unknown when the kind's schema (schemas.py, the OpenAPI v3 that
kubectl reads) does not name it. Paths are written as Go's strict decoder writes
them: `spec.template.spec.containers[0].imagee`, a map's key as a field
(`metadata.labels` are free-form, so nothing under them is unknown).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from podnet.apiserver import schemas
from podnet.apiserver.schemas import REF, Schema
from podnet.apiserver.status import ApiError
from podnet.model.kinds import Kind

STRICT, WARN, IGNORE = "Strict", "Warn", "Ignore"
MODES = (IGNORE, STRICT, WARN)
MAX_REPORTED = 100  # Go's strict decoder stops collecting there


class Unknown(NamedTuple):
    path: str
    parent: dict[str, Any]  # the object holding it
    key: str


def unknown_fields(kind: Kind, document: dict[str, Any]) -> list[str]:
    """The dotted paths of the fields the kind's schema does not have, in the document's order."""
    return [found.path for found in _unknown(kind, document)]


def check(mode: str | None, kind: Kind, document: dict[str, Any], before: dict[str, Any] | None = None) -> list[str]:
    """The warnings to send (each as `Warning: 299 - "<text>"`), or ApiError 400
    under Strict; the unknown fields are removed from `document`. `mode` is the
    request's fieldValidation, absent meaning Warn. A patch passes the object as
    it was as `before`: what it already held is not the patch's doing, and goes
    without a word."""
    mode = mode or WARN
    if mode not in MODES:
        raise ApiError(400, f'fieldValidation: Unsupported value: "{mode}": supported values: "", '
                            + ", ".join(f'"{m}"' for m in MODES))
    unknown = _unknown(kind, document)
    held = set(unknown_fields(kind, before)) if before else set()
    problems = [f'unknown field "{found.path}"' for found in unknown if found.path not in held][:MAX_REPORTED]
    if problems and mode == STRICT:
        raise ApiError(400, f'{kind.name} in version "{kind.version}" cannot be handled as a {kind.name}: '
                            f'strict decoding error: {", ".join(problems)}')
    for found in unknown:
        del found.parent[found.key]
    return problems if mode == WARN else []


def _unknown(kind: Kind, document: dict[str, Any]) -> list[Unknown]:
    catalogue = schemas.catalogue()
    root = catalogue.roots.get((kind.group, kind.version, kind.name))
    found: list[Unknown] = []
    if root is not None:
        _walk(catalogue.components, {"allOf": [{"$ref": REF + root}]}, document, "", found)
    return found


def _walk(components: dict[str, Schema], schema: Schema, value: Any, path: str, found: list[Unknown]) -> None:
    while "allOf" in schema:
        schema = components[schema["allOf"][0]["$ref"].removeprefix(REF)]
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return
    if isinstance(value, dict):
        properties = schema.get("properties")
        if properties is not None:
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                if key in properties:
                    _walk(components, properties[key], item, where, found)
                elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                    found.append(Unknown(where, value, key))
        elif "additionalProperties" in schema:
            for key, item in value.items():
                _walk(components, schema["additionalProperties"], item, f"{path}.{key}" if path else key, found)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _walk(components, schema["items"], item, f"{path}[{index}]", found)
