"""The state store protocol: nonces, and a small generic atomic record API beside them.

Everything that must hold across processes (a spent approval token, later human approvals and
rate-limit counters) goes through one :class:`StateStore`. Every method is one atomic step in
the backing engine, so several replicas may call them at once:

- ``consume_nonce``: insert-if-absent; True for exactly one caller per nonce. ``nonce_used`` looks
  without claiming (a spent token refused before any work is done for it).
- ``create`` / ``get`` / ``update`` (compare-and-swap on ``version``) / ``take`` (get-and-delete):
  records in a namespace, for approval requests and the like.
- ``incr``: a counter that restarts when it expires, for rate limits.

Expired entries behave as absent everywhere; stores sweep them now and then. A store that cannot
answer raises :class:`~sqlmode.errors.StateError`; callers refuse the operation (never fall back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["NONCE_NAMESPACE", "NonceStore", "StateRecord", "StateStore"]

NONCE_NAMESPACE = "nonce"


@dataclass(frozen=True, slots=True)
class StateRecord:
    """A stored record: its JSON value, a version that grows by one per update, its expiry."""

    value: dict[str, Any]
    version: int
    expires_at: float | None


@runtime_checkable
class NonceStore(Protocol):
    """The synchronous nonce interface :class:`~sqlmode.token.TokenService` can use on its own."""

    def consume(self, nonce: str, expires_at: float) -> bool:
        """Mark ``nonce`` used until ``expires_at`` (epoch seconds); False if it was already used."""
        ...


@runtime_checkable
class StateStore(Protocol):
    """Shared state behind one URL. Implement it to bring your own (Redis, DynamoDB, ...)."""

    #: True when the state survives a restart and is shared by every process using the same URL.
    durable: bool
    #: Where the state lives, for logs and errors (no password).
    description: str

    async def consume_nonce(self, nonce: str, expires_at: float) -> bool:
        """Atomically mark ``nonce`` used; True for the one caller that did, False once it was used."""
        ...

    async def nonce_used(self, nonce: str) -> bool:
        """Whether ``nonce`` is marked used (a look, not a claim: ``consume_nonce`` still decides)."""
        ...

    async def create(
        self, namespace: str, key: str, value: dict[str, Any], *, expires_at: float | None = None
    ) -> bool:
        """Insert a record at version 1 if no live one exists; False when one does."""
        ...

    async def get(self, namespace: str, key: str) -> StateRecord | None:
        """The live record, or None."""
        ...

    async def update(
        self,
        namespace: str,
        key: str,
        value: dict[str, Any],
        *,
        version: int,
        expires_at: float | None = None,
    ) -> StateRecord | None:
        """Replace the record if it is live and still at ``version``; the new record, or None.

        ``expires_at`` None keeps the current expiry.
        """
        ...

    async def take(self, namespace: str, key: str) -> StateRecord | None:
        """Atomically remove and return the live record: exactly one caller gets it."""
        ...

    async def incr(self, namespace: str, key: str, amount: int = 1, *, expires_at: float) -> int:
        """Add ``amount`` to a counter (a fresh one from 0 when absent or expired); the new value."""
        ...

    async def ping(self) -> None:
        """Raise StateError unless the store answers now."""
        ...

    async def close(self) -> None: ...
