"""Reading a request as kube-apiserver reads it: its object (which must be the
kind, namespace and name the URL names), its selectors and integer options, its
field manager and fieldValidation; and the JSON answers, with their warnings."""

from __future__ import annotations

import json
import random
import re
from typing import Any

from aiohttp import web

from podnet.apiserver import fieldvalidation
from podnet.apiserver.paths import Target
from podnet.apiserver.selectors import field_test, label_test
from podnet.apiserver.status import ApiError, invalid
from podnet.errors import ManifestError
from podnet.model.manifest import Resource, parse_resource
from podnet.store.base import Store
from podnet.store.dryrun import DryRun

_GENERATED = "bcdfghjklmnpqrstvwxz2456789"  # what generateName's suffix is made of, as kube-apiserver's


def field_manager(request: web.Request) -> str:
    """The write's field manager: as the client names it, else its User-Agent's
    first word, as kube-apiserver defaults it (`kubectl`, `OpenAPI-Generator`)."""
    return request.query.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0][:128]


def api_version(target: Target) -> str:
    resource = target.resource
    return f"{resource.group}/{resource.version}" if resource.group else resource.version


def selector_tests(request: web.Request) -> Any:
    labels, fields = label_test(request.query.get("labelSelector")), field_test(request.query.get("fieldSelector"))
    return lambda document: labels(document) and fields(document)


def integer(request: web.Request, name: str) -> int | None:
    """A query parameter kube-apiserver reads as a whole number: 400 if it is not one."""
    text = request.query.get(name)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f'{name}: invalid value "{text}": must be an integer') from None


def field_validation(request: web.Request, target: Target, document: dict[str, Any],
                     before: dict[str, Any] | None = None) -> list[str]:
    """The request's fieldValidation on the object it writes (its unknown fields
    dropped): 400 under Strict, else the warnings to send."""
    return fieldvalidation.check(request.query.get("fieldValidation"), target.resource.kind, document, before)


def warned(response: web.Response, warnings: list[str]) -> web.Response:
    """Each warning as kube-apiserver sends it, `Warning: 299 - "text"`; kubectl prints `Warning: text`."""
    for text in warnings:
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        printable = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", quoted)  # a header is one line
        response.headers.add("Warning", f'299 - "{printable}"')
    return response


PROTOBUF = "application/vnd.kubernetes.protobuf"


def dry_run(store: Store, asked: list[str]) -> Store:
    """The store a write goes to: under dryRun=All (in the query, or a delete's
    DeleteOptions), one whose writes no one else sees (store/dryrun.py)."""
    if not asked or isinstance(store, DryRun):
        return store
    if asked != ["All"]:
        raise ApiError(400, f"dryRun: Unsupported value: {asked[0]!r}: supported values: \"All\"")
    return DryRun(store)


def json_response(value: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(value).encode(), status=status, content_type="application/json")


def protobuf_object(raw: bytes) -> dict[str, Any]:
    """A Kubernetes protobuf body as its JSON object: 415 for a type podnet has no
    schema of, 400 for bytes that are not one."""
    from podnet.apiserver.protobuf.decode import ProtobufError, UnknownType, decode

    try:
        return decode(raw)
    except ProtobufError as err:
        raise ApiError(415 if isinstance(err, UnknownType) else 400, str(err)) from None


async def body_of(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if request.content_type == PROTOBUF:  # kubectl's create verbs, and Go's typed clients
        return protobuf_object(raw)
    try:
        body = json.loads(raw)
    except ValueError:
        from podnet.model.manifest import load_yaml_documents

        try:
            documents = load_yaml_documents(raw.decode(), "the request")
        except Exception:
            raise ApiError(400, "the request body is neither JSON nor YAML") from None
        body = documents[0] if len(documents) == 1 else None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be one object")
    return body


def name_generated(body: dict[str, Any]) -> None:
    """generateName: a random suffix of five, as kube-apiserver's."""
    meta = body.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "".join(random.choice(_GENERATED) for _ in range(5))


def parsed(body: dict[str, Any], target: Target) -> Resource:
    """The typed resource of a request's object; what the model refuses is 422
    Invalid, naming the object as kube-apiserver does (`Pod "p1" is invalid: ...`)."""
    document = identified(body, target)
    try:
        return parse_resource(document)
    except ManifestError as err:
        name = str((document.get("metadata") or {}).get("name") or target.name or "")
        raise invalid(target.resource.kind.name, name, err.field, err.problem, target.resource.group) from None


def identified(body: dict[str, Any], target: Target) -> dict[str, Any]:
    """The request's object, which must be the target's kind, in the target's
    namespace, with the target's name; apiVersion, kind and namespace filled in
    where left out."""
    resource = target.resource
    meta = body.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise ApiError(400, "metadata must be an object")
    body.setdefault("apiVersion", api_version(target))
    body.setdefault("kind", resource.kind.name)
    if body["kind"] != resource.kind.name or body["apiVersion"] != api_version(target):
        raise ApiError(400, f"the API version in the data ({body['apiVersion']}) does not match the expected API "
                            f"version ({api_version(target)})" if body["kind"] == resource.kind.name else
                       f"the kind in the data ({body['kind']}) does not match the expected kind "
                       f"({resource.kind.name})")
    if resource.kind.namespaced:
        given = meta.setdefault("namespace", target.namespace or "default")
        if target.namespace and given != target.namespace:
            raise ApiError(400, "the namespace of the provided object does not match the namespace sent on the "
                                "request")
    if target.name and meta.get("name") != target.name:
        raise ApiError(400, f'the name of the object ({meta.get("name")}) does not match the name on the URL '
                            f"({target.name})")
    return body
