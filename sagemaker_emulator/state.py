"""Durable state: resources, tags and log events in one SQLite file.

Resources are stored as the very dicts their Describe* operation returns
(timestamps as epoch seconds), keyed by kind and name, so a handler reads,
changes and writes one record and a daemon restart loses nothing. SQLite is
in the standard library, survives crashes, and a learner can open the file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL, name TEXT NOT NULL, arn TEXT NOT NULL, created REAL NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (kind, name));
CREATE INDEX IF NOT EXISTS resources_arn ON resources(arn);
CREATE TABLE IF NOT EXISTS tags (
    arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (arn, key));
CREATE TABLE IF NOT EXISTS log_groups (name TEXT PRIMARY KEY, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log_streams (
    grp TEXT NOT NULL, name TEXT NOT NULL, created INTEGER NOT NULL,
    first_ts INTEGER, last_ts INTEGER, last_ingest INTEGER, PRIMARY KEY (grp, name));
CREATE TABLE IF NOT EXISTS log_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, grp TEXT NOT NULL, stream TEXT NOT NULL,
    ts INTEGER NOT NULL, ingest INTEGER NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS log_events_stream ON log_events(grp, stream, id);
"""


class State:
    """Thread-safe access to the SQLite file (one connection, one lock: simple and fast enough)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row | tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------ resources
    def insert(self, kind: str, name: str, arn: str, created: float, data: dict[str, Any],
               tags: dict[str, str] | None = None) -> bool:
        """Insert a new resource and its tags in one transaction; False if one of that kind and name exists.

        One transaction: a create that fails half-way (a tag that cannot be stored) leaves no
        resource behind, so a failed Create* changes no state.
        """
        text = json.dumps(data)  # before the transaction: a value JSON cannot hold fails here, writing nothing
        with self.transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO resources(kind, name, arn, created, data) VALUES (?,?,?,?,?)",
                    (kind, name, arn, created, text),
                )
            except sqlite3.IntegrityError:
                return False
            if tags:
                conn.executemany("INSERT OR REPLACE INTO tags(arn, key, value) VALUES (?,?,?)",
                                 [(arn, k, v) for k, v in tags.items()])
        return True

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT data FROM resources WHERE kind=? AND name=?", (kind, name))
        return json.loads(rows[0][0]) if rows else None

    def modify(self, kind: str, name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any] | None:
        """Read a resource, let ``change`` edit it in place, write it back: one transaction; None if missing.

        Why a callback: the read and the write must not be split by another thread's write (a job's
        status change racing a Stop*), and the rules of a change belong to its caller, not to storage.
        """
        with self.transaction() as conn:
            row = conn.execute("SELECT data FROM resources WHERE kind=? AND name=?", (kind, name)).fetchone()
            if row is None:
                return None
            data = json.loads(row[0])
            change(data)
            conn.execute("UPDATE resources SET data=? WHERE kind=? AND name=?", (json.dumps(data), kind, name))
            return data

    def update(self, kind: str, name: str, **changes: Any) -> dict[str, Any] | None:
        """Atomically merge ``changes`` into a resource (a None value removes the field); the new record."""
        return self.modify(kind, name, lambda data: merge(data, changes))

    def delete(self, kind: str, name: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM resources WHERE kind=? AND name=?", (kind, name))

    def all(self, kind: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT data FROM resources WHERE kind=? ORDER BY created", (kind,))
        return [json.loads(r[0]) for r in rows]

    def kind_of_arn(self, arn: str) -> tuple[str, str] | None:
        rows = self.query("SELECT kind, name FROM resources WHERE arn=?", (arn,))
        return (rows[0][0], rows[0][1]) if rows else None

    # ------------------------------------------------------------ tags
    def add_tags(self, arn: str, tags: dict[str, str]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO tags(arn, key, value) VALUES (?,?,?)",
                [(arn, k, v) for k, v in tags.items()],
            )

    def remove_tags(self, arn: str, keys: list[str]) -> None:
        with self.transaction() as conn:
            conn.executemany("DELETE FROM tags WHERE arn=? AND key=?", [(arn, k) for k in keys])

    def tags(self, arn: str) -> dict[str, str]:
        return {k: v for k, v in self.query("SELECT key, value FROM tags WHERE arn=? ORDER BY rowid", (arn,))}


def merge(record: dict[str, Any], changes: dict[str, Any]) -> None:
    """Merge ``changes`` into ``record``; a None value removes the field (Describe omits unset fields)."""
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
