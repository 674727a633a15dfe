"""State in a PostgreSQL table that sqlmode creates in its own schema: shared by every replica.

One pooled connection per call, one atomic statement per operation: a nonce is consumed by
``INSERT ... ON CONFLICT DO UPDATE ... WHERE <expired>`` and counts as consumed when a row came
back; compare-and-swap updates and ``DELETE ... RETURNING`` take care of the record API.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from ..errors import ConfigError, StateError
from .base import NONCE_NAMESPACE, StateRecord

__all__ = ["PostgresStateStore", "redact_url"]

T = TypeVar("T")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Errors that mean "the store did not answer" (as opposed to a bug): refused, never retried blindly.
STORE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


def redact_url(url: str) -> str:
    """``url`` without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def asyncpg_dsn(url: str) -> str:
    """``postgresql+driver://`` -> ``postgresql://`` (asyncpg reads the plain scheme only)."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def checked_identifier(name: str, key: str) -> str:
    if not _IDENT.match(name):
        raise ConfigError(f"{name!r} is not a plain lower-case SQL identifier", key=key)
    return name


class PostgresStateStore:
    """Records in ``<schema>.entries``; open with :meth:`open` (creates the schema and table once)."""

    durable = True

    def __init__(
        self,
        url: str,
        *,
        schema: str = "sqlmode_state",
        pool_max_size: int = 4,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
        sweep_every: int = 1024,
    ):
        self.url = asyncpg_dsn(url)
        self.description = redact_url(self.url)
        self.schema = checked_identifier(schema, "state.schema_name")
        self._table = f"{self.schema}.entries"
        self._max = pool_max_size
        self._timeout = timeout_seconds
        self._clock = clock
        self._sweep_every = sweep_every
        self._since_sweep = 0
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> PostgresStateStore:
        """Connect the pool, create the schema and table if missing, and check they answer."""
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self._max,
                timeout=self._timeout,
                command_timeout=self._timeout,
            )
            async with self._pool.acquire() as conn, conn.transaction():
                # Replicas start together: one creates, the others wait on the lock, then see it.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", zlib.crc32(self.schema.encode()))
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._table} ("
                    "ns text NOT NULL, key text NOT NULL, value jsonb NOT NULL, "
                    "version bigint NOT NULL, expires_at double precision, PRIMARY KEY (ns, key))"
                )
        except STORE_ERRORS as e:
            await self.close()
            raise StateError(f"cannot open the state store {self.description}: {_why(e)}") from e
        return self

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        if self._pool is None:
            raise StateError(f"the state store {self.description} is not open")
        try:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                return await fn(conn)
        except STORE_ERRORS as e:
            raise StateError(f"the state store {self.description} failed: {_why(e)}") from e

    async def create(
        self, namespace: str, key: str, value: dict[str, Any], *, expires_at: float | None = None
    ) -> bool:
        now = self._clock()
        self._since_sweep += 1
        sweep = self._since_sweep >= self._sweep_every
        if sweep:
            self._since_sweep = 0

        async def go(conn: asyncpg.Connection) -> bool:
            if sweep:
                await conn.execute(f"DELETE FROM {self._table} WHERE expires_at < $1", now)
            row = await conn.fetchrow(
                f"INSERT INTO {self._table} AS e (ns, key, value, version, expires_at) "
                "VALUES ($1, $2, $3::jsonb, 1, $4) "
                "ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value, version = 1, "
                "expires_at = EXCLUDED.expires_at WHERE e.expires_at < $5 RETURNING 1",
                namespace,
                key,
                json.dumps(value),
                expires_at,
                now,
            )
            return row is not None

        return await self._run(go)

    async def consume_nonce(self, nonce: str, expires_at: float) -> bool:
        return await self.create(NONCE_NAMESPACE, nonce, {}, expires_at=expires_at)

    async def nonce_used(self, nonce: str) -> bool:
        return await self.get(NONCE_NAMESPACE, nonce) is not None

    async def get(self, namespace: str, key: str) -> StateRecord | None:
        row = await self._run(
            lambda c: c.fetchrow(
                f"SELECT value::text, version, expires_at FROM {self._table} "
                "WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at >= $3)",
                namespace,
                key,
                self._clock(),
            )
        )
        return _record(row)

    async def update(
        self,
        namespace: str,
        key: str,
        value: dict[str, Any],
        *,
        version: int,
        expires_at: float | None = None,
    ) -> StateRecord | None:
        row = await self._run(
            lambda c: c.fetchrow(
                f"UPDATE {self._table} SET value = $3::jsonb, version = version + 1, "
                "expires_at = coalesce($4, expires_at) WHERE ns = $1 AND key = $2 AND version = $5 "
                "AND (expires_at IS NULL OR expires_at >= $6) RETURNING value::text, version, expires_at",
                namespace,
                key,
                json.dumps(value),
                expires_at,
                version,
                self._clock(),
            )
        )
        return _record(row)

    async def take(self, namespace: str, key: str) -> StateRecord | None:
        row = await self._run(
            lambda c: c.fetchrow(
                f"DELETE FROM {self._table} WHERE ns = $1 AND key = $2 "
                "AND (expires_at IS NULL OR expires_at >= $3) RETURNING value::text, version, expires_at",
                namespace,
                key,
                self._clock(),
            )
        )
        return _record(row)

    async def incr(self, namespace: str, key: str, amount: int = 1, *, expires_at: float) -> int:
        value = await self._run(
            lambda c: c.fetchval(
                f"INSERT INTO {self._table} AS e (ns, key, value, version, expires_at) "
                "VALUES ($1, $2, jsonb_build_object('n', $3::bigint), 1, $4) "
                "ON CONFLICT (ns, key) DO UPDATE SET "
                "value = CASE WHEN e.expires_at < $5 THEN EXCLUDED.value "
                "ELSE jsonb_build_object('n', coalesce((e.value->>'n')::bigint, 0) + $3::bigint) END, "
                "expires_at = CASE WHEN e.expires_at < $5 THEN EXCLUDED.expires_at ELSE e.expires_at END, "
                "version = e.version + 1 RETURNING (value->>'n')::bigint",
                namespace,
                key,
                amount,
                expires_at,
                self._clock(),
            )
        )
        return int(value)

    async def ping(self) -> None:
        await self._run(lambda c: c.fetchval(f"SELECT count(*) FROM {self._table} WHERE false"))

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
            except STORE_ERRORS:
                pool.terminate()


def _record(row: Any) -> StateRecord | None:
    return None if row is None else StateRecord(json.loads(row[0]), int(row[1]), row[2])


def _why(e: BaseException) -> str:
    return str(e) or type(e).__name__
