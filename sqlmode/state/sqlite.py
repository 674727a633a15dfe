"""State in a SQLite file: several processes on one host share it (WAL, one atomic statement per call)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StateError
from .base import NONCE_NAMESPACE, StateRecord

__all__ = ["SqliteStateStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sqlmode_state (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    version INTEGER NOT NULL,
    expires_at REAL,
    PRIMARY KEY (ns, key)
)
"""
# An entry whose expiry passed is replaced as if it were absent.
_CREATE = (
    "INSERT INTO sqlmode_state (ns, key, value, version, expires_at) VALUES (?, ?, ?, 1, ?) "
    "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, version = 1, "
    "expires_at = excluded.expires_at "
    "WHERE sqlmode_state.expires_at IS NOT NULL AND sqlmode_state.expires_at < ?"
)
_LIVE = "ns = ? AND key = ? AND (expires_at IS NULL OR expires_at >= ?)"


class SqliteStateStore:
    """Records in one table of a SQLite file. Implements StateStore and the synchronous NonceStore."""

    durable = True

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time, sweep_every: int = 1024):
        self.path = str(path)
        self.description = f"sqlite:///{self.path}"
        self._clock = clock
        self._sweep_every = sweep_every
        self._since_sweep = 0
        self._lock = threading.Lock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=5, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # A committed nonce must survive a power cut as well as a crash: a spent token stays spent.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise StateError(f"cannot open the state store {self.description}: {e}") from e

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return fn(self._db)
            except sqlite3.Error as e:
                raise StateError(f"the state store {self.description} failed: {e}") from e

    def _create(self, ns: str, key: str, value: dict[str, Any], expires_at: float | None) -> bool:
        now = self._clock()

        def go(db: sqlite3.Connection) -> bool:
            self._since_sweep += 1
            if self._since_sweep >= self._sweep_every:
                db.execute("DELETE FROM sqlmode_state WHERE expires_at < ?", (now,))
                self._since_sweep = 0
            cur = db.execute(_CREATE, (ns, key, json.dumps(value), expires_at, now))
            return cur.rowcount == 1

        return self._run(go)

    # -- NonceStore --

    def consume(self, nonce: str, expires_at: float) -> bool:
        return self._create(NONCE_NAMESPACE, nonce, {}, expires_at)

    # -- StateStore (a worker thread: another process may hold the write lock for a moment) --

    async def consume_nonce(self, nonce: str, expires_at: float) -> bool:
        return await asyncio.to_thread(self.consume, nonce, expires_at)

    async def nonce_used(self, nonce: str) -> bool:
        return await self.get(NONCE_NAMESPACE, nonce) is not None

    async def create(
        self, namespace: str, key: str, value: dict[str, Any], *, expires_at: float | None = None
    ) -> bool:
        return await asyncio.to_thread(self._create, namespace, key, value, expires_at)

    async def get(self, namespace: str, key: str) -> StateRecord | None:
        def go(db: sqlite3.Connection) -> StateRecord | None:
            row = db.execute(
                f"SELECT value, version, expires_at FROM sqlmode_state WHERE {_LIVE}",
                (namespace, key, self._clock()),
            ).fetchone()
            return None if row is None else StateRecord(json.loads(row[0]), row[1], row[2])

        return await asyncio.to_thread(self._run, go)

    async def update(
        self,
        namespace: str,
        key: str,
        value: dict[str, Any],
        *,
        version: int,
        expires_at: float | None = None,
    ) -> StateRecord | None:
        def go(db: sqlite3.Connection) -> StateRecord | None:
            row = db.execute(
                "UPDATE sqlmode_state SET value = ?, version = version + 1, "
                f"expires_at = coalesce(?, expires_at) WHERE {_LIVE} AND version = ? "
                "RETURNING value, version, expires_at",
                (json.dumps(value), expires_at, namespace, key, self._clock(), version),
            ).fetchone()
            return None if row is None else StateRecord(json.loads(row[0]), row[1], row[2])

        return await asyncio.to_thread(self._run, go)

    async def take(self, namespace: str, key: str) -> StateRecord | None:
        def go(db: sqlite3.Connection) -> StateRecord | None:
            row = db.execute(
                f"DELETE FROM sqlmode_state WHERE {_LIVE} RETURNING value, version, expires_at",
                (namespace, key, self._clock()),
            ).fetchone()
            return None if row is None else StateRecord(json.loads(row[0]), row[1], row[2])

        return await asyncio.to_thread(self._run, go)

    async def incr(self, namespace: str, key: str, amount: int = 1, *, expires_at: float) -> int:
        def go(db: sqlite3.Connection) -> int:
            now = self._clock()
            row = db.execute(
                "INSERT INTO sqlmode_state (ns, key, value, version, expires_at) "
                "VALUES (?, ?, json_object('n', ?), 1, ?) "
                "ON CONFLICT (ns, key) DO UPDATE SET "
                "value = CASE WHEN sqlmode_state.expires_at < ? THEN excluded.value ELSE "
                "json_object('n', coalesce(json_extract(sqlmode_state.value, '$.n'), 0) + ?) END, "
                "expires_at = CASE WHEN sqlmode_state.expires_at < ? THEN excluded.expires_at "
                "ELSE sqlmode_state.expires_at END, version = sqlmode_state.version + 1 "
                "RETURNING json_extract(value, '$.n')",
                (namespace, key, amount, expires_at, now, amount, now),
            ).fetchone()
            return int(row[0])

        return await asyncio.to_thread(self._run, go)

    async def ping(self) -> None:
        await asyncio.to_thread(self._run, lambda db: db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        self.close_sync()

    def close_sync(self) -> None:
        with self._lock:
            self._db.close()
