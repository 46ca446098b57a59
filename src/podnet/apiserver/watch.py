"""Watches: one reader follows the store for every watcher, and hands each the
events under its prefix, so a thousand watchers cost one watch of the store,
not a thousand.

An event carries the whole object (a deletion, the object as it was last), and a
watcher whose revision the store has compacted gets 410 Gone, as from etcd."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from podnet.store.base import Compacted, Event, Store
from podnet.store.resources import REGISTRY

log = logging.getLogger("podnet.apiserver.watch")
POLL = 0.02  # seconds between looks at the store while someone watches
QUEUE_MAX = 10_000  # events a slow watcher may have waiting before it is cut off


@dataclass(frozen=True)
class Change:
    """What a watcher is told: ADDED, MODIFIED or DELETED, and the object (as it
    was last, for a deletion; None if the hub never saw it)."""

    type: str
    key: str
    value: dict[str, Any] | None
    revision: int
    _served: dict[tuple[str, str], tuple[dict[str, Any], bytes]] = field(
        default_factory=dict, compare=False, repr=False)

    def served(self, api_version: str, kind: str) -> tuple[dict[str, Any], bytes]:
        """The object as a watcher is sent it (at this revision), and its JSON line:
        made once however many watch it, as every watcher's queue holds this Change."""
        key = (api_version, kind)
        if key not in self._served:
            assert self.value is not None
            document = dict(self.value)
            document["metadata"] = {**(document.get("metadata") or {}), "resourceVersion": str(self.revision)}
            document.setdefault("apiVersion", api_version)
            document.setdefault("kind", kind)
            self._served[key] = (document, json.dumps({"type": self.type, "object": document}).encode() + b"\n")
        return self._served[key]


@dataclass(eq=False)
class Watcher:
    prefix: str
    queue: asyncio.Queue[Change | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    gone: bool = False  # its revision was compacted, or it fell too far behind


class WatchHub:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.revision = store.revision()
        self.watchers: set[Watcher] = set()
        self.last: dict[str, dict[str, Any]] = {}  # key -> its latest value, to send with its deletion
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, prefix: str, since: int) -> tuple[Watcher, list[Change]]:
        """A watcher of the prefix, and the changes after `since` that came before it
        joined (Compacted if the store has forgotten them)."""
        watcher = Watcher(prefix)
        if not self.watchers:  # no one followed the store meanwhile: pick it up from now
            self.revision = self.store.revision()
        entries, _ = self.store.list(prefix)
        for entry in entries:
            self.last.setdefault(entry.key, entry.value)
        backlog = [self._change(e) for e in self.store.events_since(prefix, since) if e.revision <= self.revision] \
            if since < self.revision else []
        self.watchers.add(watcher)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())
        return watcher, backlog

    def unsubscribe(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    async def _follow(self) -> None:
        """The store's own watch (a held stream on etcd, looks every POLL on SQLite),
        in a thread of its own, until no one watches."""
        loop = asyncio.get_running_loop()
        while self.watchers:
            events: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
            stop = threading.Event()

            def hand(item: Event | BaseException | None) -> None:
                try:
                    loop.call_soon_threadsafe(events.put_nowait, item)
                except RuntimeError:  # the loop has closed (the server stopped): no one is left to tell
                    stop.set()

            def read(since: int) -> None:
                try:
                    for event in self.store.watch(REGISTRY, since, stop, POLL):
                        hand(event)
                except BaseException as err:  # noqa: BLE001 - handed to the loop, which decides
                    hand(err)
                else:
                    hand(None)

            threading.Thread(target=read, args=(self.revision,), name="watch-hub", daemon=True).start()
            try:
                while self.watchers:
                    try:
                        item = await asyncio.wait_for(events.get(), 1.0)
                    except asyncio.TimeoutError:
                        continue
                    if item is None:
                        break
                    if isinstance(item, Compacted):
                        self.revision = await asyncio.to_thread(self.store.revision)
                        for watcher in list(self.watchers):
                            self._cut(watcher)
                        break
                    if isinstance(item, BaseException):  # the store is away for a moment: the watchers wait
                        log.warning("watch: reading the store failed: %s", item)
                        await asyncio.sleep(1.0)
                        break
                    self._dispatch(item)
            finally:
                stop.set()

    def _dispatch(self, event: Event) -> None:
        self.revision = event.revision
        change = self._change(event)
        for watcher in list(self.watchers):
            if event.key.startswith(watcher.prefix):
                try:
                    watcher.queue.put_nowait(change)
                except asyncio.QueueFull:
                    self._cut(watcher)

    def _change(self, event: Event) -> Change:
        if event.value is None:
            return Change("DELETED", event.key, self.last.pop(event.key, None), event.revision)
        known = event.key in self.last
        self.last[event.key] = event.value
        return Change("MODIFIED" if known else "ADDED", event.key, event.value, event.revision)

    def _cut(self, watcher: Watcher) -> None:
        watcher.gone = True
        self.watchers.discard(watcher)
        while not watcher.queue.empty():
            watcher.queue.get_nowait()
        watcher.queue.put_nowait(None)
