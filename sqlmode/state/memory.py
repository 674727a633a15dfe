"""State in this process's memory: for one process (stdio, tests). Not durable.

Bounded by count as well as by time: at most ``max_entries`` live records (spent nonces included).
A spent nonce must never be forgotten while its token could still verify (that would let the token
run twice), so a full store first drops what has expired and, when everything in it is still
live, refuses the new record with ``STATE_FULL`` (the execution is refused, the token stays
unspent) rather than evicting anything.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import StateError
from .base import StateRecord

__all__ = ["MAX_ENTRIES", "MemoryStateStore"]

# About 150 bytes a spent nonce: 100,000 live records are about 15 MiB. Reached only by more than
# 100,000 executions within one token TTL (``code_mode.token_ttl_seconds``) in one process.
MAX_ENTRIES = 100_000


class MemoryStateStore:
    """Spent nonces (nonce -> expiry) and records in dicts under a lock; expired entries are swept.

    Implements both :class:`~sqlmode.state.StateStore` (async) and the synchronous
    :class:`~sqlmode.state.NonceStore` ``consume``.
    """

    durable = False
    description = "memory"

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        sweep_every: int = 1024,
        max_entries: int = MAX_ENTRIES,
    ):
        # Nonces apart from records: a spent nonce needs only its expiry (no value, no version).
        self._nonces: dict[str, float] = {}
        self._data: dict[tuple[str, str], tuple[dict[str, Any], int, float | None]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._sweep_every = sweep_every
        self._since_sweep = 0
        self.max_entries = max_entries
        # No entry expires before this (kept at or below every entry's expiry): a full store skips
        # sweeping until then, so a caller retrying at the bound costs no pass over every entry.
        self._full_until = 0.0

    # -- internals (callers hold the lock) --

    def _live(self, k: tuple[str, str]) -> tuple[dict[str, Any], int, float | None] | None:
        entry = self._data.get(k)
        if entry is None:
            return None
        if entry[2] is not None and entry[2] < self._clock():
            del self._data[k]
            return None
        return entry

    def _sweep(self) -> None:
        now = self._clock()
        self._nonces = {n: exp for n, exp in self._nonces.items() if exp >= now}
        self._data = {k: e for k, e in self._data.items() if e[2] is None or e[2] >= now}
        self._since_sweep = 0

    def _tick(self) -> None:
        """Before adding an entry: sweep now and then, and refuse the entry when the store is full."""
        self._since_sweep += 1
        if self._since_sweep >= self._sweep_every:
            self._sweep()
        if len(self._nonces) + len(self._data) >= self.max_entries:
            if self._clock() >= self._full_until:
                self._sweep()
                expiries = [*self._nonces.values(), *(e[2] for e in self._data.values() if e[2] is not None)]
                self._full_until = min(expiries, default=float("inf"))
            if len(self._nonces) + len(self._data) >= self.max_entries:
                raise StateError(
                    f"the in-memory state store holds {self.max_entries:,} live records (spent approval "
                    "tokens that could still verify, approvals), its bound; it forgets none of them "
                    "early, so nothing new is accepted until some expire",
                    code="STATE_FULL",
                    hint="Retry in a few minutes; an administrator can set state.url to a durable store "
                    "or lower code_mode.token_ttl_seconds.",
                )

    def _create(self, k: tuple[str, str], value: dict[str, Any], expires_at: float | None) -> bool:
        with self._lock:
            if self._live(k) is not None:
                return False
            self._tick()
            self._data[k] = (copy.deepcopy(value), 1, expires_at)
            if expires_at is not None:
                self._full_until = min(self._full_until, expires_at)
            return True

    # -- NonceStore --

    def consume(self, nonce: str, expires_at: float) -> bool:
        with self._lock:
            seen = self._nonces.get(nonce)
            if seen is not None and seen >= self._clock():
                return False
            self._tick()
            self._nonces[nonce] = expires_at
            self._full_until = min(self._full_until, expires_at)
            return True

    # -- StateStore --

    async def consume_nonce(self, nonce: str, expires_at: float) -> bool:
        return self.consume(nonce, expires_at)

    async def nonce_used(self, nonce: str) -> bool:
        with self._lock:
            seen = self._nonces.get(nonce)
            return seen is not None and seen >= self._clock()

    async def create(
        self, namespace: str, key: str, value: dict[str, Any], *, expires_at: float | None = None
    ) -> bool:
        return self._create((namespace, key), value, expires_at)

    async def get(self, namespace: str, key: str) -> StateRecord | None:
        with self._lock:
            entry = self._live((namespace, key))
            return None if entry is None else StateRecord(copy.deepcopy(entry[0]), entry[1], entry[2])

    async def update(
        self,
        namespace: str,
        key: str,
        value: dict[str, Any],
        *,
        version: int,
        expires_at: float | None = None,
    ) -> StateRecord | None:
        with self._lock:
            entry = self._live((namespace, key))
            if entry is None or entry[1] != version:
                return None
            new = (copy.deepcopy(value), version + 1, entry[2] if expires_at is None else expires_at)
            self._data[(namespace, key)] = new
            if expires_at is not None:
                self._full_until = min(self._full_until, expires_at)
            return StateRecord(copy.deepcopy(new[0]), new[1], new[2])

    async def take(self, namespace: str, key: str) -> StateRecord | None:
        with self._lock:
            entry = self._live((namespace, key))
            if entry is None:
                return None
            del self._data[(namespace, key)]
            return StateRecord(entry[0], entry[1], entry[2])

    async def incr(self, namespace: str, key: str, amount: int = 1, *, expires_at: float) -> int:
        with self._lock:
            entry = self._live((namespace, key))
            if entry is None:
                self._tick()
                self._full_until = min(self._full_until, expires_at)
            n = (int(entry[0].get("n", 0)) if entry else 0) + amount
            self._data[(namespace, key)] = (
                {"n": n},
                (entry[1] + 1) if entry else 1,
                entry[2] if entry else expires_at,
            )
            return n

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._nonces) + len(self._data)
