"""State in this process's memory: for one process (stdio, tests). Not durable."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

from .base import NONCE_NAMESPACE, StateRecord

__all__ = ["MemoryStateStore"]


class MemoryStateStore:
    """Every record in a dict under a lock; expired entries are swept as new ones arrive.

    Implements both :class:`~sqlmode.state.StateStore` (async) and the synchronous
    :class:`~sqlmode.state.NonceStore` ``consume``.
    """

    durable = False
    description = "memory"

    def __init__(self, clock: Callable[[], float] = time.time, sweep_every: int = 1024):
        self._data: dict[tuple[str, str], tuple[dict[str, Any], int, float | None]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._sweep_every = sweep_every
        self._since_sweep = 0

    # -- internals (callers hold the lock) --

    def _live(self, k: tuple[str, str]) -> tuple[dict[str, Any], int, float | None] | None:
        entry = self._data.get(k)
        if entry is None:
            return None
        if entry[2] is not None and entry[2] < self._clock():
            del self._data[k]
            return None
        return entry

    def _tick(self) -> None:
        self._since_sweep += 1
        if self._since_sweep >= self._sweep_every:
            now = self._clock()
            self._data = {k: e for k, e in self._data.items() if e[2] is None or e[2] >= now}
            self._since_sweep = 0

    def _create(self, k: tuple[str, str], value: dict[str, Any], expires_at: float | None) -> bool:
        with self._lock:
            self._tick()
            if self._live(k) is not None:
                return False
            self._data[k] = (copy.deepcopy(value), 1, expires_at)
            return True

    # -- NonceStore --

    def consume(self, nonce: str, expires_at: float) -> bool:
        return self._create((NONCE_NAMESPACE, nonce), {}, expires_at)

    # -- StateStore --

    async def consume_nonce(self, nonce: str, expires_at: float) -> bool:
        return self.consume(nonce, expires_at)

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
            self._tick()
            entry = self._live((namespace, key))
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
            return len(self._data)
