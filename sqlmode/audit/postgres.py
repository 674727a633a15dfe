"""The audit log in PostgreSQL: one chain per replica, so no replica waits on another.

Tables in their own schema (``audit.schema_name``)::

    records(replica text, seq bigint, line text, PRIMARY KEY (replica, seq))
    heads(replica text PRIMARY KEY, seq bigint, line text)      -- the authenticated anchor

Each append inserts the record and moves the replica's anchor in one transaction: committed means
durable, and a second live process claiming the same replica id fails on the primary key (or the
anchor's expected seq) instead of forking the chain. Concurrent appends of one replica are written
in batches (one transaction per batch: group commit).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ..errors import AuditError, StateError
from ..state.postgres import STORE_ERRORS, asyncpg_dsn, checked_identifier, redact_url
from .chain import GENESIS, AuditKeys, canonical, make_record, parse_line
from .verify import AuditReport, ChainWalker

__all__ = ["PostgresAuditSink", "verify_postgres_audit"]


def _ddl(schema: str) -> list[str]:
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"CREATE TABLE IF NOT EXISTS {schema}.records (replica text NOT NULL, seq bigint NOT NULL, "
        "line text NOT NULL, PRIMARY KEY (replica, seq))",
        f"CREATE TABLE IF NOT EXISTS {schema}.heads (replica text PRIMARY KEY, seq bigint NOT NULL, "
        "line text NOT NULL)",
    ]


class PostgresAuditSink:
    """Appends this replica's records to the shared audit tables; open with :meth:`open`."""

    def __init__(
        self,
        url: str,
        keys: AuditKeys,
        *,
        replica: str,
        schema: str = "sqlmode_audit",
        pool_max_size: int = 2,
        timeout_seconds: float = 5.0,
    ):
        self.url = asyncpg_dsn(url)
        self.description = redact_url(self.url)
        self.keys = keys
        self.replica = replica
        self.schema = checked_identifier(schema, "audit.schema_name")
        self._max = pool_max_size
        self._timeout = timeout_seconds
        self._pool: asyncpg.Pool | None = None
        self._seq, self._prev = 0, GENESIS
        self._pending: list[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def open(self) -> PostgresAuditSink:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self._max, timeout=self._timeout, command_timeout=self._timeout
            )
            async with self._pool.acquire() as conn:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", zlib.crc32(self.schema.encode()))
                    for stmt in _ddl(self.schema):
                        await conn.execute(stmt)
                # A configured replica id continues its chain after a restart.
                row = await conn.fetchrow(
                    f"SELECT seq, line FROM {self.schema}.heads WHERE replica = $1", self.replica
                )
        except STORE_ERRORS as e:
            await self.aclose()
            raise AuditError(f"cannot open the audit store {self.description}: {e}") from e
        if row is not None:
            anchor = json.loads(row["line"])
            if not self.keys.check_anchor(anchor):
                await self.aclose()
                raise AuditError(
                    f"the audit anchor of replica {self.replica!r} in {self.description} does not verify; "
                    "run `sqlmode audit verify`"
                )
            self._seq, self._prev = int(anchor["seq"]), str(anchor["mac"])
        return self

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        raise AuditError("the PostgreSQL audit sink appends asynchronously only (append_async)")

    async def append_async(self, event: dict[str, Any]) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((event, fut))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())
        # Shielded: a cancelled caller must not cancel the batch other callers wait for.
        return await asyncio.shield(fut)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                seq, prev = self._seq, self._prev
                now = datetime.now(UTC).isoformat(timespec="microseconds")
                records = []
                for event, _ in batch:
                    rec = make_record(self.keys, event, seq=seq + 1, at=now, replica=self.replica, prev=prev)
                    records.append(rec)
                    seq, prev = rec["seq"], rec["mac"]
                try:
                    await self._write(records, self._seq)
                except (AuditError, StateError) as e:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(AuditError(str(e)))
                    continue
                self._seq, self._prev = seq, prev
                for (_, fut), rec in zip(batch, records, strict=True):
                    if not fut.done():
                        fut.set_result(rec)
        finally:
            self._writer = None

    async def _write(self, records: list[dict[str, Any]], from_seq: int) -> None:
        if self._pool is None:
            raise AuditError(f"the audit store {self.description} is not open")
        last = records[-1]
        anchor = canonical(self.keys.anchor(self.replica, last["seq"], last["mac"])).decode()
        try:
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                await conn.executemany(
                    f"INSERT INTO {self.schema}.records (replica, seq, line) VALUES ($1, $2, $3)",
                    [(self.replica, r["seq"], canonical(r).decode()) for r in records],
                )
                moved = await conn.fetchval(
                    f"INSERT INTO {self.schema}.heads AS h (replica, seq, line) VALUES ($1, $2, $3) "
                    "ON CONFLICT (replica) DO UPDATE SET seq = EXCLUDED.seq, line = EXCLUDED.line "
                    "WHERE h.seq = $4 RETURNING 1",
                    self.replica,
                    last["seq"],
                    anchor,
                    from_seq,
                )
                if moved is None:
                    raise AuditError(
                        f"another process appends to the audit chain of replica {self.replica!r}; "
                        "give every live process its own audit.replica_id"
                    )
        except asyncpg.UniqueViolationError as e:
            raise AuditError(
                f"another process appends to the audit chain of replica {self.replica!r}: {e}"
            ) from e
        except STORE_ERRORS as e:
            raise AuditError(f"cannot write to the audit store {self.description}: {e}") from e

    async def aclose(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
            except STORE_ERRORS:
                pool.terminate()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None


async def verify_postgres_audit(url: str, keys: AuditKeys, *, schema: str = "sqlmode_audit") -> AuditReport:
    """Walk every replica's chain in the audit tables at ``url``."""
    report = AuditReport(redact_url(asyncpg_dsn(url)) + f" ({schema})")
    schema = checked_identifier(schema, "audit.schema_name")
    try:
        conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    except STORE_ERRORS as e:
        report.unreadable = f"cannot connect: {e}"
        return report
    try:
        # One snapshot for anchors and records: replicas may be appending while we read.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            try:
                rows = await conn.fetch(f"SELECT replica, line FROM {schema}.heads")
                heads = {r["replica"]: r["line"] for r in rows}
                rows = await conn.fetch(f"SELECT DISTINCT replica FROM {schema}.records")
            except asyncpg.UndefinedTableError:
                report.unreadable = f"no audit tables in schema {schema}"
                return report
            for replica in sorted({r["replica"] for r in rows} | set(heads)):
                walker = ChainWalker(keys, report, replica, replica=replica)
                async for row in conn.cursor(
                    f"SELECT seq, line FROM {schema}.records WHERE replica = $1 ORDER BY seq", replica
                ):
                    walker.feed(f"replica {replica} record {row['seq']}", row["line"].encode("utf-8"))
                where = f"anchor of replica {replica}"
                line = heads.get(replica)
                if line is None:
                    walker.finish(None, where)
                    continue
                try:
                    walker.finish(parse_line(line.encode("utf-8")), where)
                except ValueError as e:
                    report.problems.append(f"{where}: not a canonical JSON record ({e})")
    except STORE_ERRORS as e:
        report.unreadable = f"cannot read: {e}"
    finally:
        await conn.close()
    return report
