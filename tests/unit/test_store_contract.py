"""The contract every Store backend must keep; run against each backend: SQLite,
and a real etcd (Debian's etcd-server) in a namespace of its own. Revisions are
compared relative to where a test starts, as etcd's never start at zero."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.kernel import netns
from podnet.store.base import Compacted, Store
from podnet.store.etcd import EtcdStore
from podnet.store.sqlite import SqliteStore

ETCD_NAMESPACE = "pn-test_etcd"  # the suite's scope (tests/scope.py)


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One etcd member listening on loopback inside a pn- namespace."""
    if os.geteuid() != 0 or not shutil.which("etcd"):
        pytest.skip("etcd contract tests need root and etcd-server")
    netns.create(ETCD_NAMESPACE)
    subprocess.run(netns.exec_argv(ETCD_NAMESPACE, ["ip", "link", "set", "lo", "up"]), check=True)
    data = tmp_path_factory.mktemp("etcd")
    server = subprocess.Popen(netns.exec_argv(ETCD_NAMESPACE, [
        "etcd", "--data-dir", str(data / "member"), "--listen-client-urls", "http://127.0.0.1:2379",
        "--advertise-client-urls", "http://127.0.0.1:2379", "--listen-peer-urls", "http://127.0.0.1:2380"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe = EtcdStore([("127.0.0.1", 2379)], str(netns.path(ETCD_NAMESPACE)))
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.revision()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        probe.close()
        yield str(netns.path(ETCD_NAMESPACE))
    finally:
        server.terminate()
        server.wait()
        netns.kill_processes_in([ETCD_NAMESPACE])
        netns.delete(ETCD_NAMESPACE)


@pytest.fixture(params=["sqlite", "etcd"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        backend: Store = SqliteStore(tmp_path / "store.db")
    else:
        backend = EtcdStore([("127.0.0.1", 2379)], request.getfixturevalue("etcd"))
        for entry in backend.list("/")[0]:  # a clean keyspace; history moves on
            backend.delete(entry.key)
    yield backend
    backend.close()


def test_put_get_and_revisions(store: Store) -> None:
    assert store.get("/a") is None
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
    base = store.revision()
    for i in range(5):
        store.put(f"/k/{i}", {})
    store.compact(base + 3)
    with pytest.raises(Compacted):
        store.events_since("/k/", base + 1)
    with pytest.raises(Compacted):  # a held watch (etcd's stream) says so too
        next(iter(store.watch("/k/", base + 1, threading.Event())))
    assert [e.key for e in store.events_since("/k/", base + 3)] == ["/k/3", "/k/4"]
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


def _open_and_close(path: str) -> int:
    SqliteStore(path).close()
    return os.getpid()


def test_processes_opening_a_new_store_at_once_all_open_it(tmp_path: Path) -> None:
    """As `podnet dns --workers` does: each process turns WAL on, and only one at a time can."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(4) as pool:
        for round in range(8):
            assert len(set(pool.map(_open_and_close, [str(tmp_path / f"store{round}.db")] * 8, chunksize=1))) > 1
