"""OpenAPI v3, as kube-apiserver serves it: an index at /openapi/v3 naming one
document per group-version, each at a URL carrying its content's hash, so a
client may keep it for good. kubectl (1.29 and later) reads them to validate on
the server (fieldValidation, which it finds on each PATCH operation), to compute
client-side apply's patches (the schemas' merge keys) and to explain a kind.

Each document holds the paths of the group-version's resources (collection:
list, create, deletecollection; object: read, replace, patch, delete; the status
and scale subresources: read, replace, patch) and the schemas they reach
(schemas.py). Built once, on first asking, and the same bytes every time.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from podnet.apiserver import schemas
from podnet.apiserver.resources import SUBRESOURCE_KINDS, Resource, in_group_version, served_group_versions
from podnet.apiserver.schemas import REF
from podnet.apiserver.status import ApiError
from podnet.model.version import GIT_VERSION

ROOT = "/openapi/v3"
CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "log"})  # streams, relayed to the kubelet
IMMUTABLE = "public, immutable"  # kube-apiserver's answer to a URL with the document's hash
A_YEAR = 365 * 24 * 3600

_QUERY = {  # parameter -> (type, description)
    "dryRun": ("string", "When present, the write is checked but not persisted: All."),
    "fieldManager": ("string", "The name of the actor making the change, recorded in managedFields."),
    "fieldValidation": ("string", "What to do with unknown or duplicate fields in the body: Ignore, Warn (the "
                                  "default) or Strict (refuse them)."),
    "force": ("boolean", "For an apply: take over the fields other managers own. Must be unset otherwise."),
    "pretty": ("string", "If 'true', the output is indented."),
    "labelSelector": ("string", "Only the objects whose labels match."),
    "fieldSelector": ("string", "Only the objects whose fields match."),
    "limit": ("integer", "At most this many objects; the list's continue token fetches the rest."),
    "continue": ("string", "The continue token of a previous list."),
    "resourceVersion": ("string", "The version of the data to list or to watch from."),
    "watch": ("boolean", "Watch for changes instead of listing."),
    "allowWatchBookmarks": ("boolean", "Let a watch send BOOKMARK events."),
    "timeoutSeconds": ("integer", "How long a list or watch may last."),
    "gracePeriodSeconds": ("integer", "How long the object may take to go; 0 means at once."),
    "propagationPolicy": ("string", "How dependents are collected: Orphan, Background or Foreground."),
}
_LIST = ("labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch", "allowWatchBookmarks",
         "timeoutSeconds")
_WRITE = ("dryRun", "fieldManager", "fieldValidation")
_PATCH = (*_WRITE, "force")
_DELETE = ("dryRun", "gracePeriodSeconds", "propagationPolicy")
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json")
_VERBS = {  # x-kubernetes-action -> (operationId's verb, description's verb)
    "list": ("list", "list or watch objects of kind"), "post": ("create", "create a"),
    "deletecollection": ("deleteCollection", "delete a collection of"), "get": ("read", "read the specified"),
    "put": ("replace", "replace the specified"), "patch": ("patch", "partially update the specified"),
    "delete": ("delete", "delete a"),
}

_VERB_OF = {"list": "list", "post": "create", "deletecollection": "deletecollection", "get": "get", "put": "update",
            "patch": "patch", "delete": "delete"}  # x-kubernetes-action -> the verb discovery lists


@dataclass(frozen=True)
class Document:
    body: bytes
    hash: str  # of the body: hex of its SHA-512, as kube-apiserver's


def gv_path(group: str, version: str) -> str:
    """The index's name for a group-version: api/v1, apis/apps/v1."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


@functools.cache
def documents() -> dict[str, Document]:
    """Every group-version's document, by its index name."""
    return {gv_path(*gv): _encoded(document(*gv)) for gv in served_group_versions()}


@functools.cache
def index() -> Document:
    return _encoded({"paths": {name: {"serverRelativeURL": f"{ROOT}/{name}?hash={doc.hash}"}
                               for name, doc in documents().items()}})


def respond(path: str, wanted_hash: str | None, if_none_match: str | None) -> web.Response:
    """The answer to GET /openapi/v3[/<gv>]. Slow the first time (the documents are
    built): call it off the event loop."""
    name = path.removeprefix(ROOT).strip("/")
    if not name:
        return _answer(index(), None, if_none_match)
    doc = documents().get(name)
    if doc is None:
        raise ApiError(404, "the server could not find the requested resource")
    if wanted_hash and wanted_hash != doc.hash:  # an old hash: to the current one, as kube-apiserver does
        return web.Response(status=301, headers={"Location": f"{ROOT}/{name}?hash={doc.hash}"})
    return _answer(doc, wanted_hash, if_none_match)


def _answer(doc: Document, wanted_hash: str | None, if_none_match: str | None) -> web.Response:
    headers = {"ETag": f'"{doc.hash}"', "Content-Type": "application/json"}
    if wanted_hash:
        headers |= {"Cache-Control": IMMUTABLE, "Expires": email.utils.formatdate(time.time() + A_YEAR, usegmt=True)}
    if if_none_match == headers["ETag"]:
        return web.Response(status=304, headers=headers)
    return web.Response(body=doc.body, headers=headers)


def _encoded(value: dict[str, Any]) -> Document:
    body = json.dumps(value, separators=(",", ":")).encode()
    return Document(body, hashlib.sha512(body).hexdigest().upper())


def document(group: str, version: str) -> dict[str, Any]:
    catalogue = schemas.catalogue()
    paths: dict[str, Any] = {}
    wanted = [schemas.STATUS_SCHEMA]
    for resource in in_group_version(group, version):
        paths |= _paths(resource, catalogue)
        name = catalogue.roots[(group, version, resource.kind.name)]
        wanted += [name, f"{name}List"] if "list" in resource.verbs else [name]
        wanted += [catalogue.roots[SUBRESOURCE_KINDS[sub]] for sub in resource.kind.subresources
                   if sub in SUBRESOURCE_KINDS]
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": paths,
            "components": {"schemas": catalogue.reachable(wanted)}}


def _paths(resource: Resource, catalogue: schemas.Catalogue) -> dict[str, Any]:
    kind = resource.kind
    schema = catalogue.roots[(resource.group, resource.version, kind.name)]
    prefix = f"/{gv_path(resource.group, resource.version)}"
    scope = "/namespaces/{namespace}" if kind.namespaced else ""
    scope_params = [_path_param("namespace")] if kind.namespaced else []
    collection = f"{prefix}{scope}/{resource.name}"
    item = f"{collection}/{{name}}"
    found = {
        collection: {"parameters": [*scope_params, _query("pretty")],
                     "get": _operation("list", resource, f"{schema}List", _LIST),
                     "post": _operation("post", resource, schema, _WRITE, _body(schema)),
                     "delete": _operation("deletecollection", resource, schemas.STATUS_SCHEMA, (*_DELETE, *_LIST))},
        item: {"parameters": [_path_param("name"), *scope_params, _query("pretty")],
               "get": _operation("get", resource, schema),
               "put": _operation("put", resource, schema, _WRITE, _body(schema)),
               "patch": _operation("patch", resource, schema, _PATCH, _patch_body()),
               "delete": _operation("delete", resource, schema, _DELETE)},
    }
    for operations in found.values():  # a read-only resource (Endpoints) has its reads only
        for method in [m for m, op in operations.items()
                       if m != "parameters" and _VERB_OF[op["x-kubernetes-action"]] not in resource.verbs]:
            del operations[method]
    for sub in kind.subresources:
        if sub in CONNECT_SUBRESOURCES:
            continue  # kube-apiserver describes these as connect operations on strings; podnet leaves them out
        answers = SUBRESOURCE_KINDS.get(sub)
        sub_schema = catalogue.roots[answers] if answers else schema
        found[f"{item}/{sub}"] = {
            "parameters": [_path_param("name"), *scope_params, _query("pretty")],
            "get": _operation("get", resource, sub_schema, sub=sub, answers=answers),
            "put": _operation("put", resource, sub_schema, _WRITE, _body(sub_schema), sub, answers),
            "patch": _operation("patch", resource, sub_schema, _PATCH, _patch_body(), sub, answers)}
    if kind.namespaced:
        found[f"{prefix}/{resource.name}"] = {"parameters": [_query("pretty")],
                                               "get": _operation("list", resource, f"{schema}List", _LIST,
                                                                 every_namespace=True)}
    return found


def _operation(action: str, resource: Resource, response: str, params: tuple[str, ...] = (),
               body: dict[str, Any] | None = None, sub: str = "", answers: tuple[str, str, str] | None = None,
               every_namespace: bool = False) -> dict[str, Any]:
    """One operation on `resource`, or on its subresource `sub`, which `answers`
    with a kind of its own (a Deployment's scale with autoscaling/v1 Scale)."""
    kind = resource.kind
    group, version, kind_name = answers or (resource.group, resource.version, kind.name)
    verb, words = _VERBS[action]
    scope = "Namespaced" if kind.namespaced and not every_namespace else ""
    group_word = "".join(w.capitalize() for w in resource.group.removesuffix(".k8s.io").split(".")) or "Core"
    operation: dict[str, Any] = {
        "description": f"{words} {kind.name}" + (f" {sub}" if sub else ""),
        "operationId": f"{verb}{group_word}{resource.version.capitalize()}{scope}{kind.name}{sub.capitalize()}"
                       + ("ForAllNamespaces" if every_namespace else ""),
        "parameters": [_query(name) for name in params],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": _ref(response)}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind_name},
    }
    if body:
        operation["requestBody"] = body
    return operation


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _body(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(schema)}, "application/yaml": {"schema": _ref(schema)}},
            "required": True}


def _patch_body() -> dict[str, Any]:
    return {"content": {kind: {"schema": {"type": "object"}} for kind in _PATCH_TYPES}, "required": True}


def _query(name: str) -> dict[str, Any]:
    kind, description = _QUERY[name]
    return {"name": name, "in": "query", "description": description, "schema": {"type": kind, "uniqueItems": True}}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": f"the {name} of the object",
            "schema": {"type": "string", "uniqueItems": True}}
