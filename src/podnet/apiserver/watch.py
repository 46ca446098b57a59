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

from podnet.store.base import Compacted, Entry, Event, Store
from podnet.store.resources import REGISTRY

log = logging.getLogger("podnet.apiserver.watch")
POLL = 0.02  # seconds between looks at the store while someone watches
CATCH_UP = 0.1  # seconds a list waits for the cache to catch up with the store before reading the store
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
    since: int = 0  # what it was sent before (a listing, a backlog) is at this revision: the hub sends only later
    queue: asyncio.Queue[Change | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    gone: bool = False  # its revision was compacted, or it fell too far behind


class WatchHub:
    """Follows the store for every watcher; once started (as the API server starts
    it), for good, holding every object as the watch cache kube-apiserver keeps,
    so that a list can be read from memory once the cache has caught up with the
    store (a consistent read)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.revision = store.revision()
        self.watchers: set[Watcher] = set()
        self.objects: dict[str, Entry] = {}  # key -> its latest entry (also what a deletion sends)
        self.caching = False  # objects holds the whole registry at self.revision
        self._caught_up = threading.Condition()  # guards objects and revision for lists, off the loop
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Every object read, then followed from that revision on, for good."""
        entries, revision = await asyncio.to_thread(self.store.list, REGISTRY)
        with self._caught_up:
            self.objects = {entry.key: entry for entry in entries}
            self.revision = revision
            self.caching = True
        self._ensure_following()

    async def stop(self) -> None:
        self.caching = False
        if self._task is not None:
            self._task.cancel()

    def listed(self, prefix: str) -> tuple[list[Entry], int] | None:
        """The entries under prefix from the cache, once it holds all the store had
        when asked (None if it does not within CATCH_UP: read the store then).
        Called off the loop."""
        if not self.caching:
            return None
        wanted = self.store.revision()
        with self._caught_up:
            if not self._caught_up.wait_for(lambda: self.revision >= wanted, CATCH_UP):
                return None
            found = [entry for key, entry in self.objects.items() if key.startswith(prefix)]
            revision = self.revision
        return sorted(found, key=lambda entry: entry.key), revision

    def subscribe(self, prefix: str, since: int) -> tuple[Watcher, list[Change]]:
        """A watcher of the prefix, and the changes after `since` that came before it
        joined (Compacted if the store has forgotten them)."""
        watcher = Watcher(prefix, since)
        if not self.caching:
            if not self.watchers:  # no one followed the store meanwhile: pick it up from now
                self.revision = self.store.revision()
            entries, _ = self.store.list(prefix)
            for entry in entries:
                self.objects.setdefault(entry.key, entry)
        missed = [e for e in self.store.events_since(prefix, since) if e.revision <= self.revision] \
            if since < self.revision else []
        with self._caught_up:
            backlog = [self._classified(e) for e in missed]  # told, not applied: the objects are past them
        self.watchers.add(watcher)
        self._ensure_following()
        return watcher, backlog

    def unsubscribe(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    def _ensure_following(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        """The store's own watch (a held stream on etcd, looks every POLL on SQLite),
        in a thread of its own, while anyone watches or the cache is kept."""
        loop = asyncio.get_running_loop()
        while self.watchers or self.caching:
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
                while self.watchers or self.caching:
                    try:
                        item = await asyncio.wait_for(events.get(), 1.0)
                    except asyncio.TimeoutError:
                        continue
                    if item is None:
                        break
                    if isinstance(item, Compacted):
                        await self._restart()
                        break
                    if isinstance(item, BaseException):  # the store is away for a moment: the watchers wait
                        log.warning("watch: reading the store failed: %s", item)
                        await asyncio.sleep(1.0)
                        break
                    self._dispatch(item)
            finally:
                stop.set()

    async def _restart(self) -> None:
        """After a compaction the hub's place in the history is gone: every watcher
        is told to watch again, and the cache is read anew."""
        for watcher in list(self.watchers):
            self._cut(watcher)
        if self.caching:
            entries, revision = await asyncio.to_thread(self.store.list, REGISTRY)
            with self._caught_up:
                self.objects = {entry.key: entry for entry in entries}
                self.revision = revision
        else:
            self.revision = await asyncio.to_thread(self.store.revision)

    def _dispatch(self, event: Event) -> None:
        with self._caught_up:
            change = self._change(event)
            self.revision = event.revision
            self._caught_up.notify_all()
        for watcher in list(self.watchers):
            if event.key.startswith(watcher.prefix) and event.revision > watcher.since:
                try:
                    watcher.queue.put_nowait(change)
                except asyncio.QueueFull:
                    self._cut(watcher)

    def _classified(self, event: Event) -> Change:
        """ADDED, MODIFIED or DELETED (with the object as last known), by what the hub holds."""
        known = self.objects.get(event.key)
        if event.value is None:
            return Change("DELETED", event.key, known.value if known else None, event.revision)
        return Change("MODIFIED" if known else "ADDED", event.key, event.value, event.revision)

    def _change(self, event: Event) -> Change:
        """The event classified, then applied to what the hub holds."""
        change = self._classified(event)
        if event.value is None:
            self.objects.pop(event.key, None)
        else:
            known = self.objects.get(event.key)
            self.objects[event.key] = Entry(event.key, event.value,
                                            known.create_revision if known else event.revision, event.revision)
        return change

    def _cut(self, watcher: Watcher) -> None:
        watcher.gone = True
        self.watchers.discard(watcher)
        while not watcher.queue.empty():
            watcher.queue.get_nowait()
        watcher.queue.put_nowait(None)
