"""Deletes as kube-apiserver answers them: DeleteOptions from the body or the
query string, preconditions on uid and resourceVersion, a grace period of 0
taking a pod at once; a pod still stopping answered as it is now, a pod,
Service, Namespace or ServiceAccount as it was, anything else with a Status;
and deletecollection, narrowed by the request's selectors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from podnet.api.delete import delete as delete_object
from podnet.api.writes import NotFound
from podnet.apiserver import objects
from podnet.apiserver.paths import Target
from podnet.apiserver.requests import PROTOBUF, dry_run, json_response, protobuf_object, selector_tests
from podnet.apiserver.status import ApiError, success
from podnet.store.base import Store

RETURNS_OBJECT = ("Pod", "Service", "Namespace", "ServiceAccount")  # kube-apiserver answers their delete with them


async def delete(request: web.Request, target: Target, store: Store) -> web.Response:
    options = await _delete_options(request)
    store = dry_run(store, options.get("dryRun") or [])
    current = await asyncio.to_thread(objects.read, store, target.resource, target.namespace,
                                      target.name or "")
    _check_preconditions(target, current, options.get("preconditions") or {})
    return json_response(await asyncio.to_thread(_delete_one, store, target, current, options))

async def delete_collection(request: web.Request, target: Target, store: Store) -> web.Response:
    options = await _delete_options(request)
    store = dry_run(store, options.get("dryRun") or [])
    listing = await asyncio.to_thread(objects.listing, store, target.resource, target.namespace,
                                      selector_tests(request), None, None)
    deleted = []
    for item in listing["items"]:
        meta = item["metadata"]
        one = Target(target.resource, meta.get("namespace"), meta["name"])
        try:
            deleted.append(await asyncio.to_thread(_delete_one, store, one, item, options))
        except NotFound:
            pass  # gone meanwhile
    return json_response({**listing, "items": [d for d in deleted if d.get("kind") != "Status"]})

def _delete_one(store: Store, target: Target, current: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """As kube-apiserver answers a delete: a pod still stopping as it is now; a
    pod, Service, Namespace or ServiceAccount as it was; anything else a Status."""
    resource = target.resource
    grace = options.get("gracePeriodSeconds")
    delete_object(store, resource.kind.name, target.namespace or "", target.name or "", force=grace == 0)
    entry = store.get(objects.key(resource, target.namespace, target.name or ""))
    if entry is not None:
        return objects.served(resource, entry)
    if resource.kind.name in RETURNS_OBJECT:
        return current
    return success({"name": target.name, "group": resource.group, "kind": resource.name,
                    "uid": current["metadata"].get("uid", "")})


async def _delete_options(request: web.Request) -> dict[str, Any]:
    """DeleteOptions, from the body (kubectl's) or the query string."""
    raw = await request.read()
    options: dict[str, Any] = {}
    if raw.strip() and request.content_type == PROTOBUF:  # kubectl drain's, and Go's typed clients'
        options = protobuf_object(raw)
    elif raw.strip():
        try:
            options = json.loads(raw)
        except ValueError:
            raise ApiError(400, "the body of a delete must be DeleteOptions as JSON") from None
        if not isinstance(options, dict):
            raise ApiError(400, "the body of a delete must be DeleteOptions as JSON")
    for key in ("gracePeriodSeconds", "propagationPolicy"):
        if key in request.query and key not in options:
            value = request.query[key]
            options[key] = int(value) if key == "gracePeriodSeconds" and value.lstrip("-").isdigit() else value
    if not isinstance(options.get("dryRun") or [], list):
        raise ApiError(400, "dryRun must be a list: [All]")
    if not isinstance(options.get("preconditions") or {}, dict):
        raise ApiError(400, "preconditions must be an object (uid, resourceVersion)")
    if options.get("propagationPolicy") not in (None, "Orphan", "Background", "Foreground"):
        raise ApiError(400, f"propagationPolicy {options['propagationPolicy']!r} is not Orphan, Background or "
                            "Foreground")
    return options


def _check_preconditions(target: Target, current: dict[str, Any], preconditions: dict[str, Any]) -> None:
    meta = current["metadata"]
    for key, word in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        wanted = preconditions.get(key)
        if wanted and str(wanted) != str(meta.get(key)):
            raise ApiError(409, f"Precondition failed: {word} in precondition: {wanted}, {word} in object meta: "
                                f"{meta.get(key)}", "Conflict", {"name": target.name, "kind": target.resource.name})
