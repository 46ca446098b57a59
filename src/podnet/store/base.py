"""The Store interface and the values it hands out."""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from podnet.errors import PodnetError


class StoreError(PodnetError):
    pass


class Compacted(StoreError):
    """The requested revision is older than the oldest kept; re-list and watch anew."""

    def __init__(self, requested: int, compacted: int) -> None:
        self.requested = requested
        self.compacted = compacted
        super().__init__(f"revision {requested} is compacted (oldest kept is {compacted + 1}); list again")


@dataclass(frozen=True)
class Entry:
    key: str
    value: dict[str, Any]
    create_revision: int
    mod_revision: int


@dataclass(frozen=True)
class Event:
    type: str  # "PUT" or "DELETE"
    key: str
    value: dict[str, Any] | None
    revision: int


class Store(abc.ABC):
    """Every write bumps one store-wide revision, and is visible to watchers in order."""

    @abc.abstractmethod
    def get(self, key: str) -> Entry | None: ...

    @abc.abstractmethod
    def list(self, prefix: str) -> tuple[list[Entry], int]:
        """Entries under prefix, sorted by key, and the revision they were read at."""

    @abc.abstractmethod
    def put(self, key: str, value: dict[str, Any]) -> int:
        """Write unconditionally; returns the new revision."""

    @abc.abstractmethod
    def delete(self, key: str) -> int | None:
        """Returns the new revision, or None when the key did not exist."""

    @abc.abstractmethod
    def compare_and_swap(self, key: str, value: dict[str, Any] | None, expected_revision: int) -> int | None:
        """Write (or delete, when value is None) only if the key's mod revision is
        expected_revision (0: the key must not exist). Returns the new revision, or
        None when someone else got there first."""

    @abc.abstractmethod
    def revision(self) -> int: ...

    @abc.abstractmethod
    def events_since(self, prefix: str, revision: int) -> list[Event]:
        """Events under prefix with a revision greater than `revision`.

        Raises Compacted when events after `revision` may have been dropped."""

    @abc.abstractmethod
    def compact(self, revision: int) -> None:
        """Forget the history up to and including revision."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def watch(self, prefix: str, revision: int, stop: threading.Event, poll: float = 0.05) -> Iterator[Event]:
        """Events under prefix after revision, as they happen, until stop is set."""
        while not stop.is_set():
            looked = self.revision()
            events = self.events_since(prefix, revision)
            for event in events:
                yield event
                revision = event.revision
            if not events:
                self.wait_for_writes(looked, stop, poll)

    def wait_for_writes(self, looked: int, stop: threading.Event, poll: float) -> None:
        """Between a watch's looks at the store (at revision `looked`): `poll`, unless
        the store can tell sooner that it was written."""
        stop.wait(poll)
