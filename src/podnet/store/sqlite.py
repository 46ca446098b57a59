"""The embedded store: one SQLite file in WAL mode, shared by the processes of a lab.

WAL lets the agents read while `podnet` writes; BEGIN IMMEDIATE serialises writers
across processes, which is what makes the revision counter and CAS safe.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from podnet.store.base import Compacted, Entry, Event, Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY, key TEXT NOT NULL, type TEXT NOT NULL, value TEXT);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
"""


def _prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with prefix."""
    return prefix + "\U0010ffff"


BUSY_TIMEOUT = 30.0  # seconds a statement waits for another connection's lock


def _use_wal(db: sqlite3.Connection) -> None:
    """Turning WAL on takes the database for itself and, unlike other statements,
    does not wait out a busy one: processes opening a new store at once (the DNS
    workers, agents starting together) take turns here instead of failing."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class SqliteStore(Store):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._written = threading.Condition()  # told of each write made through this store: its watches look at once
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        _use_wal(self._db)
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(statement)
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _meta(self, name: str) -> int:
        return self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]

    def revision(self) -> int:
        with self._lock:
            return self._meta("revision")

    def get(self, key: str) -> Entry | None:
        with self._lock:
            row = self._db.execute("SELECT key, value, create_rev, mod_rev FROM kv WHERE key = ?", (key,)).fetchone()
        return Entry(row[0], json.loads(row[1]), row[2], row[3]) if row else None

    def list(self, prefix: str) -> tuple[list[Entry], int]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                rows = self._db.execute(
                    "SELECT key, value, create_rev, mod_rev FROM kv WHERE key >= ? AND key < ? ORDER BY key",
                    (prefix, _prefix_end(prefix)),
                ).fetchall()
                revision = self._meta("revision")
            finally:
                self._db.execute("COMMIT")
        return [Entry(k, json.loads(v), c, m) for k, v, c, m in rows], revision

    def _write(self, key: str, value: dict[str, Any] | None, expected_revision: int | None) -> int | None:
        """The one write path: optional CAS check, then the row and its log entry."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT create_rev, mod_rev FROM kv WHERE key = ?", (key,)).fetchone()
                current = row[1] if row else 0
                if expected_revision is not None and current != expected_revision:
                    self._db.execute("ROLLBACK")
                    return None
                if value is None and row is None:
                    self._db.execute("ROLLBACK")
                    return None
                revision = self._meta("revision") + 1
                self._db.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (revision,))
                if value is None:
                    self._db.execute("DELETE FROM kv WHERE key = ?", (key,))
                    self._db.execute("INSERT INTO log VALUES (?, ?, 'DELETE', NULL)", (revision, key))
                else:
                    text = json.dumps(value, sort_keys=True)
                    self._db.execute(
                        "INSERT INTO kv VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = ?, mod_rev = ?",
                        (key, text, revision, revision, text, revision),
                    )
                    self._db.execute("INSERT INTO log VALUES (?, ?, 'PUT', ?)", (revision, key, text))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        with self._written:
            self._written.notify_all()
        return revision

    def wait_for_writes(self, looked: int, stop: threading.Event, poll: float) -> None:
        """`poll` for other processes' writes, but over at once after a write made
        through this store (an API server's own)."""
        with self._written:
            if self.revision() == looked:  # nothing written since the look (a write after it wakes this)
                self._written.wait(poll)

    def put(self, key: str, value: dict[str, Any]) -> int:
        revision = self._write(key, value, None)
        assert revision is not None
        return revision

    def delete(self, key: str) -> int | None:
        return self._write(key, None, None)

    def compare_and_swap(self, key: str, value: dict[str, Any] | None, expected_revision: int) -> int | None:
        return self._write(key, value, expected_revision)

    def events_since(self, prefix: str, revision: int) -> list[Event]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                compacted = self._meta("compacted")
                if revision < compacted:
                    raise Compacted(revision, compacted)
                rows = self._db.execute(
                    "SELECT rev, key, type, value FROM log WHERE rev > ? AND key >= ? AND key < ? ORDER BY rev",
                    (revision, prefix, _prefix_end(prefix)),
                ).fetchall()
            finally:
                self._db.execute("COMMIT")
        return [Event(t, k, json.loads(v) if v else None, r) for r, k, t, v in rows]

    def compact(self, revision: int) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM log WHERE rev <= ?", (revision,))
            self._db.execute("UPDATE meta SET value = max(value, ?) WHERE name = 'compacted'", (revision,))
            self._db.execute("COMMIT")
