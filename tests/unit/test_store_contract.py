"""The contract every Store backend must keep; run against each backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.store.base import Compacted, Store
from podnet.store.sqlite import SqliteStore


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = SqliteStore(tmp_path / "store.db")
    yield backend
    backend.close()


def test_put_get_and_revisions(store: Store) -> None:
    assert store.revision() == 0 and store.get("/a") is None
    first = store.put("/a", {"v": 1})
    second = store.put("/a", {"v": 2})
    entry = store.get("/a")
    assert second == first + 1 == store.revision()
    assert entry is not None and entry.value == {"v": 2}
    assert (entry.create_revision, entry.mod_revision) == (first, second)


def test_list_by_prefix_is_sorted_and_exact(store: Store) -> None:
    for key in ("/pods/b", "/pods/a", "/podsx/c", "/nodes/n"):
        store.put(key, {"k": key})
    entries, revision = store.list("/pods/")
    assert [e.key for e in entries] == ["/pods/a", "/pods/b"]
    assert revision == store.revision()


def test_delete(store: Store) -> None:
    store.put("/a", {})
    assert store.delete("/a") == store.revision()
    assert store.get("/a") is None
    assert store.delete("/a") is None


def test_compare_and_swap(store: Store) -> None:
    created = store.compare_and_swap("/lease", {"owner": "n1"}, 0)
    assert created is not None
    assert store.compare_and_swap("/lease", {"owner": "n2"}, 0) is None  # exists already
    assert store.compare_and_swap("/lease", {"owner": "n2"}, created - 1) is None  # stale
    updated = store.compare_and_swap("/lease", {"owner": "n2"}, created)
    assert updated is not None and store.get("/lease").value == {"owner": "n2"}  # type: ignore[union-attr]
    assert store.compare_and_swap("/lease", None, created) is None
    assert store.compare_and_swap("/lease", None, updated) is not None
    assert store.get("/lease") is None


def test_compare_and_swap_has_one_winner_among_racers(store: Store) -> None:
    winners = []

    def race(owner: int) -> None:
        if store.compare_and_swap("/subnet/10.244.1.0", {"owner": owner}, 0) is not None:
            winners.append(owner)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert store.get("/subnet/10.244.1.0").value == {"owner": winners[0]}  # type: ignore[union-attr]


def test_events_since_a_revision(store: Store) -> None:
    start = store.revision()
    store.put("/pods/a", {"n": 1})
    store.put("/nodes/x", {})
    store.delete("/pods/a")
    events = store.events_since("/pods/", start)
    assert [(e.type, e.key, e.value) for e in events] == [("PUT", "/pods/a", {"n": 1}), ("DELETE", "/pods/a", None)]
    assert store.events_since("/pods/", events[-1].revision) == []


def test_watch_delivers_later_writes_in_order(store: Store) -> None:
    start = store.revision()
    stop = threading.Event()
    seen: list[str] = []

    def consume() -> None:
        for event in store.watch("/w/", start, stop):
            seen.append(event.key)
            if len(seen) == 3:
                stop.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    for key in ("/w/1", "/other", "/w/2", "/w/3"):
        store.put(key, {})
    consumer.join(timeout=5)
    stop.set()
    assert seen == ["/w/1", "/w/2", "/w/3"]


def test_watch_from_a_compacted_revision_asks_for_a_relist(store: Store) -> None:
    for i in range(5):
        store.put(f"/k/{i}", {})
    store.compact(3)
    with pytest.raises(Compacted):
        store.events_since("/k/", 1)
    assert [e.key for e in store.events_since("/k/", 3)] == ["/k/3", "/k/4"]
    entries, _ = store.list("/k/")
    assert len(entries) == 5  # compaction forgets history, never current values


def test_a_second_process_sees_writes(store: Store, tmp_path: Path) -> None:
    if not isinstance(store, SqliteStore):
        pytest.skip("sqlite-specific")
    other = SqliteStore(store.path)
    try:
        revision = store.put("/shared", {"x": 1})
        assert other.get("/shared").mod_revision == revision  # type: ignore[union-attr]
        assert other.compare_and_swap("/shared", {"x": 2}, revision) is not None
        assert store.get("/shared").value == {"x": 2}  # type: ignore[union-attr]
    finally:
        other.close()
