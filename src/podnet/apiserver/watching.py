"""A watch as kube-apiserver streams it: chunked JSON lines, ADDED for what exists
when no resourceVersion is given, then every change under the request's
selectors (as Tables if asked: only the first carries the columns), bookmarks
when allowed, 410 Expired for a compacted revision, and an end after
timeoutSeconds (a few minutes, with jitter, by default).

A view made from other objects (Endpoints, ReplicaSets) is watched through what
it is made from: each change to those makes the view again, and what differs is
sent."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from podnet.apiserver import objects
from podnet.apiserver.negotiation import wanted
from podnet.apiserver.paths import Target
from podnet.apiserver.requests import api_version, integer, selector_tests
from podnet.apiserver.status import ApiError
from podnet.apiserver.tables.registry import to_table
from podnet.apiserver.tables.table import TableOptions
from podnet.apiserver.watch import Change, WatchHub, Watcher
from podnet.store import resources as stored
from podnet.store.base import Compacted, Store

WATCH_TIMEOUT = 300.0  # a watch with no timeoutSeconds ends after this, plus up to a fifth more
BOOKMARK_EVERY = 60.0


class Stream:
    """One watch's answer: what its request asked for, and the lines it writes."""

    def __init__(self, request: web.Request, target: Target) -> None:
        form = wanted(request.headers.get("Accept"))
        self.target = target
        self.test = selector_tests(request)
        self.since_text = request.query.get("resourceVersion", "")
        self.timeout = integer(request, "timeoutSeconds") or WATCH_TIMEOUT * (1 + random.random() / 5)
        self.bookmarks = request.query.get("allowWatchBookmarks") in ("1", "true")
        self.table = TableOptions.parse(request.query.get("includeObject"), form.table) if form.table else None
        self.first_table = True
        self.response = web.StreamResponse(headers={"Content-Type": "application/json",
                                                    "Cache-Control": "no-cache, private"})
        self.response.enable_chunked_encoding()

    @property
    def since(self) -> int | None:
        """The revision asked to start after; None: from what exists now."""
        return int(self.since_text) if self.since_text.isdigit() and self.since_text != "0" else None

    async def send(self, kind: str, document: dict[str, Any], line: bytes | None = None) -> None:
        """The event, if the request's name and selectors take it; `line` is it
        encoded already (for every watcher of the change at once)."""
        target = self.target
        if target.name and document.get("metadata", {}).get("name") != target.name and kind != "BOOKMARK":
            return
        if kind != "BOOKMARK" and not self.test(document):
            return
        if self.table and kind != "BOOKMARK":
            document = to_table(document, time.time(), replace(self.table, no_headers=not self.first_table))
            self.first_table = False
            line = None
        await self.response.write(line or json.dumps({"type": kind, "object": document}).encode() + b"\n")

    async def expired(self, message: str) -> None:
        await self.response.write(json.dumps({"type": "ERROR", "object": ApiError(
            410, message, "Expired").status()}).encode() + b"\n")

    async def follow(self, changes: AsyncIterator[Change | None], revision: Callable[[], int]) -> None:
        """Each change until the timeout, with bookmarks between when allowed; a
        None from `changes` is a second with nothing."""
        deadline = time.monotonic() + self.timeout
        next_bookmark = time.monotonic() + BOOKMARK_EVERY
        async for change in changes:
            if change is not None and change.value is not None:  # (a deletion of what this server never saw: not)
                await self.send(change.type, *change.served(api_version(self.target), self.target.resource.kind.name))
            if self.bookmarks and time.monotonic() >= next_bookmark:
                next_bookmark = time.monotonic() + BOOKMARK_EVERY
                await self.send("BOOKMARK", {"kind": self.target.resource.kind.name,
                                             "apiVersion": api_version(self.target),
                                             "metadata": {"resourceVersion": str(revision())}})
            if time.monotonic() >= deadline:
                return


async def watch(request: web.Request, target: Target, store: Store, hub: WatchHub) -> web.StreamResponse:
    stream = Stream(request, target)
    await stream.response.prepare(request)
    since = stream.since
    try:
        watcher, backlog = hub.subscribe(objects.prefix(target.resource, target.namespace),
                                         since if since is not None else store.revision())
    except Compacted:
        await stream.expired(f"too old resource version: {stream.since_text}")
        return stream.response
    try:
        if since is None:  # no resourceVersion: what exists, as ADDED, then the changes
            listing = objects.listing(store, target.resource, target.namespace, lambda _: True, None, None)
            for item in listing["items"]:
                await stream.send("ADDED", item)
        for change in backlog:
            if change.value is not None:
                await stream.send(change.type, *change.served(api_version(target), target.resource.kind.name))
        await stream.follow(_queued(watcher, stream), lambda: hub.revision)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(watcher)
    return stream.response


async def _queued(watcher: Watcher, stream: Stream) -> AsyncIterator[Change | None]:
    while True:
        try:
            change = await asyncio.wait_for(watcher.queue.get(), 1.0)
        except asyncio.TimeoutError:
            change = None
        if watcher.gone:
            if change is None:
                await stream.expired("the watch fell behind; watch again")
            return
        yield change


@dataclass(frozen=True)
class View:
    """A derived resource's objects by key, at a revision of the store."""

    objects: dict[tuple[str, str], dict[str, Any]]
    revision: int

    @classmethod
    def made(cls, store: Store, target: Target) -> View:
        assert target.resource.derive is not None
        items, revision = target.resource.derive(store, target.namespace)
        return cls({(i["metadata"].get("namespace", ""), i["metadata"]["name"]): i for i in items}, revision)

    def changes(self, before: View) -> list[Change]:
        """ADDED, MODIFIED (a new resourceVersion) and DELETED, from before to this."""
        found = []
        for key, item in self.objects.items():
            was = before.objects.get(key)
            if was is None or was["metadata"].get("resourceVersion") != item["metadata"].get("resourceVersion"):
                found.append(Change("ADDED" if was is None else "MODIFIED", "/".join(key), item, self.revision))
        found += [Change("DELETED", "/".join(key), item, self.revision)
                  for key, item in before.objects.items() if key not in self.objects]
        return found


async def watch_derived(request: web.Request, target: Target, store: Store, hub: WatchHub) -> web.StreamResponse:
    """Through the kinds the view is made from: a change to any makes the view
    again. A resourceVersion is taken to mean now (a view keeps no history)."""
    stream = Stream(request, target)
    await stream.response.prepare(request)
    namespace = target.namespace if target.resource.kind.namespaced else None
    watchers = [hub.subscribe(stored.prefix(kind) + (f"{namespace}/" if namespace else ""), store.revision())[0]
                for kind in target.resource.sources]
    try:
        view = await asyncio.to_thread(View.made, store, target)
        if stream.since is None:
            for item in view.objects.values():
                await stream.send("ADDED", item)

        async def changes() -> AsyncIterator[Change | None]:
            nonlocal view
            while not any(w.gone for w in watchers):
                waits = [asyncio.ensure_future(w.queue.get()) for w in watchers]
                done, pending = await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                for wait in pending:
                    wait.cancel()
                for watcher in watchers:  # what else came meanwhile: one remaking for all of it
                    while not watcher.queue.empty():
                        watcher.queue.get_nowait()
                if not done:
                    yield None
                    continue
                now = await asyncio.to_thread(View.made, store, target)
                for change in now.changes(view):
                    yield change
                view = now
            await stream.expired("the watch fell behind; watch again")

        await stream.follow(changes(), lambda: view.revision)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        for watcher in watchers:
            hub.unsubscribe(watcher)
    return stream.response
