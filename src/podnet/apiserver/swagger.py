"""OpenAPI v2 (Swagger 2.0) at /openapi/v2, made from the v3 documents (one
for all group-versions, with `definitions` for `components/schemas` and body
parameters for request bodies), as JSON or, for kubectl up to 1.28, in gnostic's
protobuf form (protobuf/gnostic.py), which kubectl downloads to validate an
object before sending it, to explain a kind and (1.20) to see that the server
takes dryRun. Built once, on first asking."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from aiohttp import web

from podnet.apiserver import openapi
from podnet.apiserver.resources import served_group_versions
from podnet.apiserver.schemas import REF
from podnet.model.version import GIT_VERSION

ROOT = "/openapi/v2"
PROTOBUF = "application/octet-stream"  # the answer's type, as kube-openapi's: Go cannot parse the Accept's (an @)
DEFINITIONS = "#/definitions/"
METHODS = ("get", "put", "post", "delete", "patch")


@functools.cache
def swagger() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for group, version in served_group_versions():
        v3 = openapi.document(group, version)
        for path, item in v3["paths"].items():
            paths[path] = _path_item(item)
        for name, schema in v3["components"]["schemas"].items():
            definitions[name] = _schema(schema)
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": paths,
            "definitions": definitions}


@functools.cache
def encoded(protobuf: bool) -> tuple[bytes, str]:
    """The body and its ETag."""
    if protobuf:
        from podnet.apiserver.protobuf.gnostic import document

        body = document(swagger())
    else:
        body = json.dumps(swagger(), separators=(",", ":")).encode()
    return body, f'"{hashlib.sha512(body).hexdigest().upper()}"'


def respond(accept: str | None, if_none_match: str | None) -> web.Response:
    """Protobuf when the client asks for it, JSON otherwise. Slow the first time:
    call it off the event loop."""
    protobuf = "protobuf" in (accept or "")
    body, etag = encoded(protobuf)
    headers = {"ETag": etag, "Content-Type": PROTOBUF if protobuf else "application/json"}
    if if_none_match == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers)


def _path_item(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {method: _operation(item[method]) for method in METHODS if method in item}
    if item.get("parameters"):
        out["parameters"] = [_parameter(p) for p in item["parameters"]]
    return out


def _operation(operation: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in operation.items()
           if key in ("description", "operationId") or key.startswith("x-")}
    parameters = [_parameter(p) for p in operation.get("parameters", [])]
    body = operation.get("requestBody")
    if body:
        content = body.get("content", {})
        out["consumes"] = list(content)
        schema = next(iter(content.values()), {}).get("schema", {"type": "object"})
        parameters.append({"name": "body", "in": "body", "required": bool(body.get("required")),
                           "schema": _schema(schema)})
    out["parameters"] = parameters
    out["produces"] = ["application/json", "application/yaml"]
    out["responses"] = {code: _response(response) for code, response in operation.get("responses", {}).items()}
    return out


def _parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in parameter.items() if key in ("name", "in", "description", "required")}
    out.update({key: value for key, value in parameter.get("schema", {}).items() if key in ("type", "uniqueItems")})
    return out


def _response(response: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": response.get("description", "")}
    content = response.get("content", {})
    if content:
        out["schema"] = _schema(next(iter(content.values())).get("schema", {}))
    return out


def _schema(schema: Any) -> Any:
    """v3's words as v2 has them: a lone allOf reference becomes the reference."""
    if isinstance(schema, list):
        return [_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _schema(value) for key, value in schema.items() if key not in ("allOf", "nullable")}
    if "allOf" in schema:
        if len(schema["allOf"]) == 1 and "$ref" in schema["allOf"][0]:
            out["$ref"] = schema["allOf"][0]["$ref"]
        else:
            out["allOf"] = _schema(schema["allOf"])
    if isinstance(out.get("$ref"), str):
        out["$ref"] = out["$ref"].replace(REF, DEFINITIONS)
    return out
