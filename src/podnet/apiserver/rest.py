"""The resource verbs over HTTP: get, list and watch; create, update, patch and
delete; the status and scale subresources. Reads come from the store as it is;
writes go through api/ (api/verbs.py, api/delete.py), as `podnet apply` does,
so both doors have one semantics. A pod's exec, attach, port-forward and log are
the kubelet's, proxied (kubelet_proxy.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from podnet.api import verbs
from podnet.api.writes import MAX_CONFLICTS
from podnet.apiserver import deletion, objects, pod_streams, watching
from podnet.apiserver.auth import User, authorize
from podnet.apiserver.kubelet_client import Kubelets
from podnet.apiserver.kubelet_proxy import KubeletProxy
from podnet.apiserver.negotiation import wanted
from podnet.apiserver.paths import Target
from podnet.apiserver.patching import APPLY, patched, recorded
from podnet.apiserver.requests import (api_version, body_of, dry_run, field_manager, field_validation,
                                       identified, json_response, name_generated, parsed, selector_tests, warned)
from podnet.apiserver.scale import scale_of
from podnet.apiserver.status import ApiError, invalid
from podnet.apiserver.tables.registry import to_table
from podnet.apiserver.tables.table import TableOptions
from podnet.apiserver.watch import WatchHub
from podnet.errors import ManifestError
from podnet.store.base import Store


def verb_of(method: str, target: Target, query: Any) -> str:
    if method == "GET":
        if target.watch_path or query.get("watch") in ("1", "true"):
            return "watch"
        return "get" if target.name else "list"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


class Rest:
    def __init__(self, store: Store, hub: WatchHub, kubelets: Kubelets) -> None:
        self.store = store
        self.hub = hub
        self.kubelets = kubelets
        self.kubelet_proxy = KubeletProxy(store, kubelets)

    async def handle(self, request: web.Request, target: Target, user: User) -> web.StreamResponse:
        verb = verb_of(request.method, target, request.query)
        if target.resource.review is not None and verb == "create" and not target.name:  # anyone may ask about themself
            return json_response(target.resource.review(await body_of(request), user), status=201)
        if target.subresource in pod_streams.SUBRESOURCES:
            return await self.kubelet_proxy.handle(request, target, user)
        authorize(user, verb, target.resource.name, target.resource.group, target.namespace, target.subresource,
                  target.name)
        if verb not in target.resource.verbs:
            raise ApiError(405, f"the server does not allow this method on the requested resource "
                                f"({target.resource.name} are {' and '.join(target.resource.verbs)} only)")
        if target.resource.derive is not None:
            if verb == "watch":
                return await watching.watch_derived(request, target, self.store, self.hub)
            return await self.derived(request, target, verb)
        if verb == "watch":
            return await watching.watch(request, target, self.store, self.hub)
        rest = self if verb in ("get", "list") else self.dry_run(request)
        handler = {"get": rest.get, "list": rest.list, "create": rest.create, "update": rest.update,
                   "patch": rest.patch, "delete": rest.delete, "deletecollection": rest.delete_collection}.get(verb)
        if handler is None or (target.subresource and verb not in ("get", "update", "patch")):
            raise ApiError(405, "the server does not allow this method on the requested resource")
        return await handler(request, target)

    def dry_run(self, request: web.Request) -> Rest:
        """This Rest, or under dryRun=All one whose writes go nowhere (store/dryrun.py)."""
        store = dry_run(self.store, request.query.getall("dryRun", []))
        return self if store is self.store else Rest(store, self.hub, self.kubelets)

    # Reads.

    async def get(self, request: web.Request, target: Target) -> web.Response:
        document = await asyncio.to_thread(objects.read, self.store, target.resource, target.namespace,
                                           target.name or "")
        if target.subresource == "scale":
            return json_response(scale_of(document))
        return self._answer(request, document)

    async def list(self, request: web.Request, target: Target) -> web.Response:
        test = selector_tests(request)
        limit = int(request.query["limit"]) if request.query.get("limit", "").isdigit() else None
        listing = await asyncio.to_thread(objects.listing, self.store, target.resource, target.namespace, test,
                                          limit or None, request.query.get("continue") or None, self.hub)
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
        test = selector_tests(request)
        return self._answer(request, {"kind": f"{resource.kind.name}List", "apiVersion": api_version(target),
                                      "metadata": {"resourceVersion": str(revision)},
                                      "items": [i for i in items if test(i)]})

    def _answer(self, request: web.Request, value: dict[str, Any]) -> web.Response:
        form = wanted(request.headers.get("Accept"))
        if form.table:
            return json_response(to_table(value, time.time(), TableOptions.parse(request.query.get("includeObject"),
                                                                          form.table)))
        return json_response(value)

    # Writes.

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        return await deletion.delete(request, target, self.store)

    async def delete_collection(self, request: web.Request, target: Target) -> web.Response:
        return await deletion.delete_collection(request, target, self.store)

    async def create(self, request: web.Request, target: Target) -> web.Response:
        body = identified(await body_of(request), target)
        warnings = field_validation(request, target, body)
        name_generated(body)
        resource = parsed(recorded(None, body, field_manager(request)), target)
        with named_invalid(target, resource.metadata.name):
            entry = await asyncio.to_thread(verbs.create, self.store, resource)
        return warned(json_response(objects.served(target.resource, entry), status=201), warnings)

    async def update(self, request: web.Request, target: Target) -> web.Response:
        body = identified(await body_of(request), target)
        if target.subresource == "scale":
            raise ApiError(405, "scale is written with PATCH here")
        current = await asyncio.to_thread(objects.read, self.store, target.resource, target.namespace,
                                          target.name or "")
        warnings = field_validation(request, target, body, current)
        resource = parsed(recorded(current, body, field_manager(request), target.subresource or ""), target)
        version = (body.get("metadata") or {}).get("resourceVersion")
        write = verbs.replace_status if target.subresource == "status" else verbs.replace
        with named_invalid(target, resource.metadata.name):
            entry = await asyncio.to_thread(write, self.store, resource, int(version) if str(version).isdigit() else None)
        return warned(json_response(objects.served(target.resource, entry)), warnings)

    async def patch(self, request: web.Request, target: Target) -> web.Response:
        body = await request.read()
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        manager, sub = field_manager(request), target.subresource or ""
        for _ in range(MAX_CONFLICTS):  # read, patch, write at that version; again if someone wrote meanwhile
            try:
                current = await asyncio.to_thread(objects.read, self.store, target.resource, target.namespace,
                                                  target.name or "")
            except ApiError as err:
                if err.code != 404 or content_type != APPLY or sub:
                    raise
                document = patched(APPLY, None, body, target.resource.kind.name, request.query, manager)
                warnings = field_validation(request, target, document)
                created = parsed(document, target)  # an apply of what is not there yet makes it
                with named_invalid(target, created.metadata.name):
                    entry = await asyncio.to_thread(verbs.create, self.store, created)
                return warned(json_response(objects.served(target.resource, entry), status=201), warnings)
            if sub == "scale":
                document = patched(content_type, scale_of(current), body, "Scale", request.query, manager)
                scaled = {**current, "spec": {**current.get("spec", {}),
                                              "replicas": document.get("spec", {}).get("replicas")}}
                resource = parsed(recorded(current, scaled, manager, "scale"), target)
                write, warnings = verbs.replace, []
            else:
                document = patched(content_type, current, body, target.resource.kind.name, request.query, manager, sub)
                warnings = field_validation(request, target, document, current)
                resource = parsed(document, target)
                write = verbs.replace_status if sub == "status" else verbs.replace
            try:
                with named_invalid(target, resource.metadata.name):
                    entry = await asyncio.to_thread(write, self.store, resource,
                                                    int(current["metadata"]["resourceVersion"]))
            except verbs.Conflict:
                continue
            served = objects.served(target.resource, entry)
            return warned(json_response(scale_of(served) if target.subresource == "scale" else served), warnings)
        raise ApiError(409, "the object kept changing while it was patched; try again", "Conflict")


@contextmanager
def named_invalid(target: Target, name: str) -> Iterator[None]:
    """What a write refuses past parsing (a Service's IP families against the
    cluster's, say) is 422 naming the object, as kube-apiserver names it."""
    try:
        yield
    except ManifestError as err:
        raise invalid(target.resource.kind.name, name, err.field, err.problem, target.resource.group) from None
