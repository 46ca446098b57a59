"""A dry run's store: its own writes are seen by its reads and by no one else."""

from __future__ import annotations

from podnet.store.dryrun import DryRun
from podnet.store.sqlite import SqliteStore


def test_writes_are_seen_by_the_dry_run_only(store: SqliteStore) -> None:
    store.put("/registry/x/kept", {"v": 1})
    store.put("/registry/x/gone", {"v": 1})
    before = store.revision()
    dry = DryRun(store)
    kept = dry.get("/registry/x/kept")
    assert kept is not None
    assert dry.compare_and_swap("/registry/x/kept", {"v": 2}, kept.mod_revision) == before + 1
    assert dry.compare_and_swap("/registry/x/kept", {"v": 3}, kept.mod_revision - 1) is None  # stale, as for real
    assert dry.get("/registry/x/kept").mod_revision == kept.mod_revision  # type: ignore[union-attr]  # kept, as kube's
    assert dry.compare_and_swap("/registry/x/new", {"v": 1}, 0) == before + 2
    assert dry.delete("/registry/x/gone") == before + 3 and dry.delete("/registry/x/gone") is None
    entries, revision = dry.list("/registry/x/")
    assert [(e.key, e.value) for e in entries] == [("/registry/x/kept", {"v": 2}), ("/registry/x/new", {"v": 1})]
    assert revision == dry.revision() == before + 3
    assert dry.get("/registry/x/kept").create_revision == kept.create_revision  # type: ignore[union-attr]
    assert store.revision() == before and store.get("/registry/x/kept").value == {"v": 1}  # type: ignore[union-attr]
    assert store.get("/registry/x/new") is None and store.get("/registry/x/gone") is not None
