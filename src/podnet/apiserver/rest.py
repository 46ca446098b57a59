"""The resource verbs over HTTP: get, list and watch; create, update, patch and
delete; the status and scale subresources. Reads come from the store as it is;
writes go through api/ (api/verbs.py, api/delete.py), as `podnet apply` does,
so both doors have one semantics."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import replace
from typing import Any

from aiohttp import web

from podnet.api import verbs
from podnet.api.delete import delete as delete_object
from podnet.apiserver import fieldvalidation, objects
from podnet.apiserver.auth import User, authorize
from podnet.apiserver.negotiation import wanted
from podnet.apiserver.paths import Target
from podnet.apiserver.patching import APPLY, patched, recorded
from podnet.apiserver.scale import scale_of
from podnet.apiserver.selectors import field_test, label_test
from podnet.apiserver.status import ApiError, invalid, success
from podnet.apiserver.tables.registry import to_table
from podnet.apiserver.tables.table import TableOptions
from podnet.apiserver.watch import Change, WatchHub
from podnet.api.writes import MAX_CONFLICTS, NotFound
from podnet.errors import ManifestError
from podnet.model.manifest import Resource, parse_resource
from podnet.store.base import Compacted, Store

RETURNS_OBJECT = ("Pod", "Service", "Namespace", "ServiceAccount")  # kube-apiserver answers their delete with them
WATCH_TIMEOUT = 300.0  # a watch with no timeoutSeconds ends after this, plus up to a fifth more
BOOKMARK_EVERY = 60.0
_GENERATED = "bcdfghjklmnpqrstvwxz2456789"  # what generateName's suffix is made of, as kube-apiserver's


def verb_of(method: str, target: Target, query: Any) -> str:
    if method == "GET":
        if target.watch_path or query.get("watch") in ("1", "true"):
            return "watch"
        return "get" if target.name else "list"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


class Rest:
    def __init__(self, store: Store, hub: WatchHub) -> None:
        self.store = store
        self.hub = hub

    async def handle(self, request: web.Request, target: Target, user: User) -> web.StreamResponse:
        verb = verb_of(request.method, target, request.query)
        authorize(user, verb, target.resource.name, target.resource.group, target.namespace, target.subresource)
        if verb not in target.resource.verbs:
            raise ApiError(405, f"the server does not allow this method on the requested resource "
                                f"({target.resource.name} are {' and '.join(target.resource.verbs)} only)")
        if target.resource.derive is not None:
            return await self.derived(request, target, verb)
        if verb == "watch":
            return await self.watch(request, target)
        handler = {"get": self.get, "list": self.list, "create": self.create, "update": self.update,
                   "patch": self.patch, "delete": self.delete, "deletecollection": self.delete_collection}.get(verb)
        if handler is None or (target.subresource and verb not in ("get", "update", "patch")):
            raise ApiError(405, "the server does not allow this method on the requested resource")
        return await handler(request, target)

    # Reads.

    async def get(self, request: web.Request, target: Target) -> web.Response:
        document = await asyncio.to_thread(objects.read, self.store, target.resource, target.namespace,
                                           target.name or "")
        if target.subresource == "scale":
            return _json(scale_of(document))
        return self._answer(request, document)

    async def list(self, request: web.Request, target: Target) -> web.Response:
        test = _tests(request)
        limit = int(request.query["limit"]) if request.query.get("limit", "").isdigit() else None
        listing = await asyncio.to_thread(objects.listing, self.store, target.resource, target.namespace, test,
                                          limit or None, request.query.get("continue") or None)
        return self._answer(request, listing)

    async def derived(self, request: web.Request, target: Target, verb: str) -> web.Response:
        resource = target.resource
        assert resource.derive is not None
        items, revision = await asyncio.to_thread(resource.derive, self.store, target.namespace)
        if verb == "get":
            found = next((i for i in items if i["metadata"]["name"] == target.name), None)
            if found is None:
                raise ApiError(404, f'{resource.name} "{target.name}" not found',
                               details={"name": target.name, "group": resource.group, "kind": resource.name})
            return self._answer(request, found)
        test = _tests(request)
        return self._answer(request, {"kind": f"{resource.kind.name}List", "apiVersion": _api_version(target),
                                      "metadata": {"resourceVersion": str(revision)},
                                      "items": [i for i in items if test(i)]})

    def _answer(self, request: web.Request, value: dict[str, Any]) -> web.Response:
        form = wanted(request.headers.get("Accept"))
        if form.table:
            return _json(to_table(value, time.time(), TableOptions.parse(request.query.get("includeObject"),
                                                                          form.table)))
        return _json(value)

    async def watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        form = wanted(request.headers.get("Accept"))
        test = _tests(request)
        since_text = request.query.get("resourceVersion", "")
        timeout = _integer(request, "timeoutSeconds") or WATCH_TIMEOUT * (1 + random.random() / 5)
        bookmarks = request.query.get("allowWatchBookmarks") in ("1", "true")
        prefix = objects.prefix(target.resource, target.namespace)
        table = TableOptions.parse(request.query.get("includeObject"), form.table) if form.table else None
        response = web.StreamResponse(headers={"Content-Type": "application/json",
                                               "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        first_table = True

        async def send(kind: str, document: dict[str, Any]) -> None:
            nonlocal first_table
            if target.name and document.get("metadata", {}).get("name") != target.name and kind != "BOOKMARK":
                return
            if kind != "BOOKMARK" and not test(document):
                return
            if table and kind != "BOOKMARK":
                document = to_table(document, time.time(), replace(table, no_headers=not first_table))
                first_table = False
            await response.write(json.dumps({"type": kind, "object": document}).encode() + b"\n")

        try:
            since = int(since_text) if since_text.isdigit() and since_text != "0" else None
            watcher, backlog = self.hub.subscribe(prefix, since if since is not None else self.store.revision())
        except Compacted:
            await response.write(json.dumps({"type": "ERROR", "object": ApiError(
                410, f"too old resource version: {since_text}", "Expired").status()}).encode() + b"\n")
            return response
        try:
            if since is None:  # no resourceVersion: what exists, as ADDED, then the changes
                listing = objects.listing(self.store, target.resource, target.namespace, lambda _: True, None, None)
                for item in listing["items"]:
                    await send("ADDED", item)
            for change in backlog:
                await self._send_change(send, target, change)
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + BOOKMARK_EVERY
            while (left := deadline - time.monotonic()) > 0:
                try:
                    change = await asyncio.wait_for(watcher.queue.get(), min(left, 1.0))
                except asyncio.TimeoutError:
                    change = None
                    if watcher.gone:
                        break
                if change is None and watcher.gone:
                    await response.write(json.dumps({"type": "ERROR", "object": ApiError(
                        410, "the watch fell behind; watch again", "Expired").status()}).encode() + b"\n")
                    break
                if change is not None:
                    await self._send_change(send, target, change)
                if bookmarks and time.monotonic() >= next_bookmark:
                    next_bookmark = time.monotonic() + BOOKMARK_EVERY
                    await send("BOOKMARK", {"kind": target.resource.kind.name, "apiVersion": _api_version(target),
                                            "metadata": {"resourceVersion": str(self.hub.revision)}})
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.hub.unsubscribe(watcher)
        return response

    async def _send_change(self, send: Any, target: Target, change: Change) -> None:
        if change.value is None:
            return  # a deletion of what this server never saw
        document = dict(change.value)
        document["metadata"] = {**(document.get("metadata") or {}), "resourceVersion": str(change.revision)}
        document.setdefault("apiVersion", _api_version(target))
        document.setdefault("kind", target.resource.kind.name)
        await send(change.type, document)

    # Writes.

    async def create(self, request: web.Request, target: Target) -> web.Response:
        body = _identified(await _body(request), target)
        warnings = _field_validation(request, target, body)
        _name_it(body)
        resource = _parsed(recorded(None, body, _manager(request)), target)
        entry = await asyncio.to_thread(verbs.create, self.store, resource)
        return _warned(_json(objects.served(target.resource, entry), status=201), warnings)

    async def update(self, request: web.Request, target: Target) -> web.Response:
        body = _identified(await _body(request), target)
        if target.subresource == "scale":
            raise ApiError(405, "scale is written with PATCH here")
        current = await asyncio.to_thread(objects.read, self.store, target.resource, target.namespace,
                                          target.name or "")
        warnings = _field_validation(request, target, body, current)
        resource = _parsed(recorded(current, body, _manager(request), target.subresource or ""), target)
        version = (body.get("metadata") or {}).get("resourceVersion")
        write = verbs.replace_status if target.subresource == "status" else verbs.replace
        entry = await asyncio.to_thread(write, self.store, resource, int(version) if str(version).isdigit() else None)
        return _warned(_json(objects.served(target.resource, entry)), warnings)

    async def patch(self, request: web.Request, target: Target) -> web.Response:
        body = await request.read()
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        manager, sub = _manager(request), target.subresource or ""
        for _ in range(MAX_CONFLICTS):  # read, patch, write at that version; again if someone wrote meanwhile
            try:
                current = await asyncio.to_thread(objects.read, self.store, target.resource, target.namespace,
                                                  target.name or "")
            except ApiError as err:
                if err.code != 404 or content_type != APPLY or sub:
                    raise
                document = patched(APPLY, None, body, target.resource.kind.name, request.query, manager)
                warnings = _field_validation(request, target, document)
                created = _parsed(document, target)  # an apply of what is not there yet makes it
                entry = await asyncio.to_thread(verbs.create, self.store, created)
                return _warned(_json(objects.served(target.resource, entry), status=201), warnings)
            if sub == "scale":
                document = patched(content_type, scale_of(current), body, "Scale", request.query, manager)
                scaled = {**current, "spec": {**current.get("spec", {}),
                                              "replicas": document.get("spec", {}).get("replicas")}}
                resource = _parsed(recorded(current, scaled, manager, "scale"), target)
                write, warnings = verbs.replace, []
            else:
                document = patched(content_type, current, body, target.resource.kind.name, request.query, manager, sub)
                warnings = _field_validation(request, target, document, current)
                resource = _parsed(document, target)
                write = verbs.replace_status if sub == "status" else verbs.replace
            try:
                entry = await asyncio.to_thread(write, self.store, resource,
                                                int(current["metadata"]["resourceVersion"]))
            except verbs.Conflict:
                continue
            served = objects.served(target.resource, entry)
            return _warned(_json(scale_of(served) if target.subresource == "scale" else served), warnings)
        raise ApiError(409, "the object kept changing while it was patched; try again", "Conflict")

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        options = await _delete_options(request)
        current = await asyncio.to_thread(objects.read, self.store, target.resource, target.namespace,
                                          target.name or "")
        _check_preconditions(target, current, options.get("preconditions") or {})
        return _json(await asyncio.to_thread(self._delete_one, target, current, options))

    async def delete_collection(self, request: web.Request, target: Target) -> web.Response:
        options = await _delete_options(request)
        listing = await asyncio.to_thread(objects.listing, self.store, target.resource, target.namespace,
                                          _tests(request), None, None)
        deleted = []
        for item in listing["items"]:
            meta = item["metadata"]
            one = Target(target.resource, meta.get("namespace"), meta["name"])
            try:
                deleted.append(await asyncio.to_thread(self._delete_one, one, item, options))
            except NotFound:
                pass  # gone meanwhile
        return _json({**listing, "items": [d for d in deleted if d.get("kind") != "Status"]})

    def _delete_one(self, target: Target, current: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """As kube-apiserver answers a delete: a pod still stopping as it is now; a
        pod, Service, Namespace or ServiceAccount as it was; anything else a Status."""
        resource = target.resource
        grace = options.get("gracePeriodSeconds")
        delete_object(self.store, resource.kind.name, target.namespace or "", target.name or "", force=grace == 0)
        entry = self.store.get(objects.key(resource, target.namespace, target.name or ""))
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
    if raw.strip():
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


def _manager(request: web.Request) -> str:
    """The write's field manager: as the client names it, else its User-Agent's
    first word, as kube-apiserver defaults it (`kubectl`, `OpenAPI-Generator`)."""
    return request.query.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0][:128]


def _api_version(target: Target) -> str:
    resource = target.resource
    return f"{resource.group}/{resource.version}" if resource.group else resource.version


def _tests(request: web.Request) -> Any:
    labels, fields = label_test(request.query.get("labelSelector")), field_test(request.query.get("fieldSelector"))
    return lambda document: labels(document) and fields(document)


def _integer(request: web.Request, name: str) -> int | None:
    """A query parameter kube-apiserver reads as a whole number: 400 if it is not one."""
    text = request.query.get(name)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f'{name}: invalid value "{text}": must be an integer') from None


def _field_validation(request: web.Request, target: Target, document: dict[str, Any],
                      before: dict[str, Any] | None = None) -> list[str]:
    """The request's fieldValidation on the object it writes (its unknown fields
    dropped): 400 under Strict, else the warnings to send."""
    return fieldvalidation.check(request.query.get("fieldValidation"), target.resource.kind, document, before)


def _warned(response: web.Response, warnings: list[str]) -> web.Response:
    """Each warning as kube-apiserver sends it, `Warning: 299 - "text"`; kubectl prints `Warning: text`."""
    for text in warnings:
        response.headers.add("Warning", '299 - "{}"'.format(text.replace("\\", "\\\\").replace('"', '\\"')))
    return response


def _json(value: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(value).encode(), status=status, content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
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


def _name_it(body: dict[str, Any]) -> None:
    """generateName: a random suffix of five, as kube-apiserver's."""
    meta = body.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "".join(random.choice(_GENERATED) for _ in range(5))


def _parsed(body: dict[str, Any], target: Target) -> Resource:
    """The typed resource of a request's object; what the model refuses is 422
    Invalid, naming the object as kube-apiserver does (`Pod "p1" is invalid: ...`)."""
    document = _identified(body, target)
    try:
        return parse_resource(document)
    except ManifestError as err:
        name = str((document.get("metadata") or {}).get("name") or target.name or "")
        raise invalid(target.resource.kind.name, name, err.field, err.problem, target.resource.group) from None


def _identified(body: dict[str, Any], target: Target) -> dict[str, Any]:
    """The request's object, which must be the target's kind, in the target's
    namespace, with the target's name; apiVersion, kind and namespace filled in
    where left out."""
    resource = target.resource
    meta = body.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise ApiError(400, "metadata must be an object")
    body.setdefault("apiVersion", _api_version(target))
    body.setdefault("kind", resource.kind.name)
    if body["kind"] != resource.kind.name or body["apiVersion"] != _api_version(target):
        raise ApiError(400, f"the API version in the data ({body['apiVersion']}) does not match the expected API "
                            f"version ({_api_version(target)})" if body["kind"] == resource.kind.name else
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
