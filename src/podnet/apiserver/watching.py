"""A watch as kube-apiserver streams it: chunked JSON lines, ADDED for what exists
when no resourceVersion is given, then every change under the request's
selectors (as Tables if asked: only the first carries the columns), bookmarks
when allowed, 410 Expired for a compacted revision, and an end after
timeoutSeconds (a few minutes, with jitter, by default)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import replace
from typing import Any

from aiohttp import web

from podnet.apiserver import objects
from podnet.apiserver.negotiation import wanted
from podnet.apiserver.paths import Target
from podnet.apiserver.requests import api_version, integer, selector_tests
from podnet.apiserver.status import ApiError
from podnet.apiserver.tables.registry import to_table
from podnet.apiserver.tables.table import TableOptions
from podnet.apiserver.watch import Change, WatchHub
from podnet.store.base import Compacted, Store

WATCH_TIMEOUT = 300.0  # a watch with no timeoutSeconds ends after this, plus up to a fifth more
BOOKMARK_EVERY = 60.0


async def watch(request: web.Request, target: Target, store: Store, hub: WatchHub) -> web.StreamResponse:
    form = wanted(request.headers.get("Accept"))
    test = selector_tests(request)
    since_text = request.query.get("resourceVersion", "")
    timeout = integer(request, "timeoutSeconds") or WATCH_TIMEOUT * (1 + random.random() / 5)
    bookmarks = request.query.get("allowWatchBookmarks") in ("1", "true")
    prefix = objects.prefix(target.resource, target.namespace)
    table = TableOptions.parse(request.query.get("includeObject"), form.table) if form.table else None
    response = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "Cache-Control": "no-cache, private"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    first_table = True

    async def send(kind: str, document: dict[str, Any], line: bytes | None = None) -> None:
        """The event, if the request's name and selectors take it; `line` is it
        encoded already (for every watcher of the change at once)."""
        nonlocal first_table
        if target.name and document.get("metadata", {}).get("name") != target.name and kind != "BOOKMARK":
            return
        if kind != "BOOKMARK" and not test(document):
            return
        if table and kind != "BOOKMARK":
            document = to_table(document, time.time(), replace(table, no_headers=not first_table))
            first_table = False
            line = None
        await response.write(line or json.dumps({"type": kind, "object": document}).encode() + b"\n")

    try:
        since = int(since_text) if since_text.isdigit() and since_text != "0" else None
        watcher, backlog = hub.subscribe(prefix, since if since is not None else store.revision())
    except Compacted:
        await response.write(json.dumps({"type": "ERROR", "object": ApiError(
            410, f"too old resource version: {since_text}", "Expired").status()}).encode() + b"\n")
        return response
    try:
        if since is None:  # no resourceVersion: what exists, as ADDED, then the changes
            listing = objects.listing(store, target.resource, target.namespace, lambda _: True, None, None)
            for item in listing["items"]:
                await send("ADDED", item)
        for change in backlog:
            await _send_change(send, target, change)
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
                await _send_change(send, target, change)
            if bookmarks and time.monotonic() >= next_bookmark:
                next_bookmark = time.monotonic() + BOOKMARK_EVERY
                await send("BOOKMARK", {"kind": target.resource.kind.name, "apiVersion": api_version(target),
                                        "metadata": {"resourceVersion": str(hub.revision)}})
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(watcher)
    return response

async def _send_change(send: Any, target: Target, change: Change) -> None:
    if change.value is None:
        return  # a deletion of what this server never saw
    await send(change.type, *change.served(api_version(target), target.resource.kind.name))
