"""A request's own view of the store under `dryRun=All`: its writes are seen by
its own reads, so every check, default and allocation runs as for real, and by
no one else; they vanish with the request. kube-apiserver runs a dry run the
same way, through the whole write path but for the storage's last step."""

from __future__ import annotations

from typing import Any

from podnet.store.base import Entry, Event, Store


class DryRun(Store):
    def __init__(self, store: Store) -> None:
        self.store = store
        self.written: dict[str, Entry | None] = {}  # None: deleted
        self._revision: int | None = None

    def get(self, key: str) -> Entry | None:
        return self.written[key] if key in self.written else self.store.get(key)

    def list(self, prefix: str) -> tuple[list[Entry], int]:
        entries, revision = self.store.list(prefix)
        mine = {key: entry for key, entry in self.written.items() if key.startswith(prefix)}
        kept = [e for e in entries if e.key not in mine] + [e for e in mine.values() if e is not None]
        return sorted(kept, key=lambda e: e.key), max(revision, self._revision or 0)

    def put(self, key: str, value: dict[str, Any]) -> int:
        """An object changed keeps its resourceVersion, as kube-apiserver answers a
        dry run (`kubectl diff` shows the change, not a new version)."""
        existing = self.get(key)
        revision = self._next()
        self.written[key] = Entry(key, value, existing.create_revision if existing else revision,
                                  existing.mod_revision if existing else revision)
        return revision

    def delete(self, key: str) -> int | None:
        if self.get(key) is None:
            return None
        self.written[key] = None
        return self._next()

    def compare_and_swap(self, key: str, value: dict[str, Any] | None, expected_revision: int) -> int | None:
        existing = self.get(key)
        if (existing.mod_revision if existing else 0) != expected_revision:
            return None
        return self.put(key, value) if value is not None else self.delete(key)

    def revision(self) -> int:
        return self._revision if self._revision is not None else self.store.revision()

    def events_since(self, prefix: str, revision: int) -> list[Event]:
        return self.store.events_since(prefix, revision)

    def compact(self, revision: int) -> None:
        raise NotImplementedError("a dry run compacts nothing")

    def close(self) -> None:
        pass  # the store is the server's

    def _next(self) -> int:
        self._revision = self.revision() + 1
        return self._revision
