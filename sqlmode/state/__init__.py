"""Shared state behind one protocol: spent approval tokens (nonces), and records for what comes next.

``[state] url`` picks the backend:

- none (or ``memory://``): this process only. Approval tokens then carry a random per-process boot
  id inside their MAC, so a restart voids every outstanding token (nothing to replay).
- ``sqlite:///path``: one file, shared by every process on one host.
- ``postgresql://...``: a table in its own schema (``state.schema_name``), shared by every replica.

The store is opened once per service (pooled for Postgres) and checked at start-up; when it fails
later the operation that needed it is refused with ``STATE_UNAVAILABLE``: never a silent fallback
to memory. Bring your own by implementing :class:`StateStore` and passing it to ``CodeModeService``.
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..errors import ConfigError
from .base import NONCE_NAMESPACE, NonceStore, StateRecord, StateStore
from .memory import MemoryStateStore
from .sqlite import SqliteStateStore

__all__ = [
    "NONCE_NAMESPACE",
    "MemoryStateStore",
    "NonceStore",
    "SqliteStateStore",
    "StateRecord",
    "StateStore",
    "durable_state_url",
    "open_state_store",
]


def durable_state_url(url: str | None) -> bool:
    """Whether ``state.url`` names a store shared across restarts and processes."""
    return bool(url and url.strip() and url.strip() != "memory://")


async def open_state_store(settings: Settings) -> Any:
    """The store ``state.url`` names, opened and checked; ConfigError for an unknown scheme."""
    cfg = settings.state
    url = (cfg.url or "").strip()
    if not url or url == "memory://":
        return MemoryStateStore()
    if url.startswith("sqlite:///"):
        store = SqliteStateStore(settings.resolve_path(url[len("sqlite:///") :]))
        await store.ping()
        return store
    if url.startswith(("postgresql://", "postgres://", "postgresql+")):
        from .postgres import PostgresStateStore

        return await PostgresStateStore(
            url,
            schema=cfg.schema_name,
            pool_max_size=cfg.pool_max_size,
            timeout_seconds=cfg.timeout_ms / 1000,
        ).open()
    raise ConfigError(
        "must be sqlite:///path, postgresql://... or memory://",
        key="state.url",
        hint="Leave [state] url unset for one process; use a shared store for restarts and replicas.",
    )
