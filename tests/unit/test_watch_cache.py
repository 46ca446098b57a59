"""The API server's watch cache: lists are read from memory once it holds all
the store had when asked, whoever wrote it; until then, from the store."""

from __future__ import annotations

import asyncio

from podnet.apiserver.watch import WatchHub
from podnet.store.sqlite import SqliteStore

MAPS = "/registry/configmaps/"


def test_a_list_waits_for_the_cache_to_hold_what_another_process_wrote(store: SqliteStore) -> None:
    other = SqliteStore(store.path)  # another process's writes: seen by the cache's next look, not told to it

    async def run() -> None:
        hub = WatchHub(store)
        await hub.start()
        try:
            other.put(MAPS + "default/b", {"n": 1})
            other.put(MAPS + "default/a", {"n": 2})
            other.delete(MAPS + "default/b")
            revision = other.put("/registry/pods/default/p", {})
            entries, at = await asyncio.to_thread(hub.listed, MAPS)  # type: ignore[misc]
            assert [(e.key, e.value) for e in entries] == [(MAPS + "default/a", {"n": 2})] and at >= revision
            written = store.put(MAPS + "default/a", {"n": 3})  # changed again: the next list has it
            (entry,), _ = await asyncio.to_thread(hub.listed, MAPS)  # type: ignore[misc]
            assert (entry.value, entry.mod_revision, entry.create_revision) == ({"n": 3}, written, revision - 2)
        finally:
            await hub.stop()

    try:
        asyncio.run(run())
    finally:
        other.close()


def test_without_the_cache_a_list_is_the_stores(store: SqliteStore) -> None:
    assert WatchHub(store).listed(MAPS) is None  # never started: the caller reads the store
