"""The audit log in PostgreSQL: one chain per replica, so no replica waits on another.

Tables in their own schema (``audit.schema_name``)::

    records(replica text, seq bigint, line text, PRIMARY KEY (replica, seq))
    heads(replica text PRIMARY KEY, seq bigint, line text)      -- the authenticated anchor

Each write inserts a batch of records and moves the replica's anchor in one statement (one round
trip, one commit): committed means durable, and a second live process claiming the same replica id
fails on the primary key (or the anchor's expected seq) instead of forking the chain. An intent and
a run's outcome are committed before their append returns; other records (validations, refusals,
approvals) wait up to ``audit.flush_window_ms`` in memory and go with the next write (group commit),
so a crash of the process loses at most that window of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ..errors import AuditError, StateError
from ..state.postgres import STORE_ERRORS, asyncpg_dsn, checked_identifier, redact_url
from .chain import GENESIS, AuditKeys, canonical, is_intent, make_record, parse_line
from .verify import AuditReport, ChainWalker

__all__ = ["PostgresAuditSink", "verify_postgres_audit"]

log = logging.getLogger("sqlmode.audit")


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
        flush_window_ms: float = 10.0,
    ):
        self.url = asyncpg_dsn(url)
        self.description = redact_url(self.url)
        self.keys = keys
        self.replica = replica
        self.schema = checked_identifier(schema, "audit.schema_name")
        self._max = pool_max_size
        self._timeout = timeout_seconds
        self._pool: asyncpg.Pool | None = None
        self._window = max(0.0, flush_window_ms) / 1000
        self._seq, self._prev = 0, GENESIS
        # (event, at, future of a caller waiting for the commit, or None once it went on)
        self._pending: list[tuple[dict[str, Any], str, asyncio.Future[dict[str, Any]] | None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._failing = False
        #: committed writes, and the seq of the last committed record
        self.batches = 0
        self.durable_seq = 0

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
            self.durable_seq = self._seq
        return self

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        raise AuditError("the PostgreSQL audit sink appends asynchronously only (append_async)")

    async def append_async(self, event: dict[str, Any], *, durable: bool | None = None) -> dict[str, Any]:
        """Queue one record; wait for its commit for an intent or a run's outcome (or ``durable=True``).

        Other records are committed within the flush window, with whatever is queued then (one
        statement, one commit). While the store is failing every append waits, so failures reach
        the caller as they do without a window. A record not yet committed has no seq or mac: the
        returned dict is then the event as queued.
        """
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        if durable is None:
            # Queued records live in this process's memory (the file sink's are in the OS already): a
            # run's outcome, which the caller returns rows after, is committed first so that a killed
            # process never leaves a run a client saw without its record.
            durable = is_intent(event) or event.get("event") == "executed"
        if durable or not self._window or self._failing:
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending.append((event, at, fut))
            self._kick()
            # Shielded: a cancelled caller must not cancel the batch other callers wait for.
            return await asyncio.shield(fut)
        self._pending.append((event, at, None))
        if self._timer is None and self._writer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self._kick)
        return dict(event)

    async def flush(self) -> None:
        """Wait until every record queued so far is committed (AuditError if the write failed)."""
        self._kick()
        while self._writer is not None:
            await asyncio.shield(self._writer)
        if self._pending:
            raise AuditError(
                f"cannot write to the audit store {self.description}: {len(self._pending)} records wait"
            )

    def _kick(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writer is None and self._pending:
            self._writer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                seq, prev = self._seq, self._prev
                records, written = [], []
                for item in batch:
                    event, at, fut = item
                    try:
                        rec = make_record(
                            self.keys, event, seq=seq + 1, at=at, replica=self.replica, prev=prev
                        )
                    except ValueError as e:  # not representable as canonical JSON (NaN): refused alone
                        self._fail(
                            fut, AuditError(f"cannot write to the audit store {self.description}: {e}")
                        )
                        continue
                    records.append(rec)
                    written.append(item)
                    seq, prev = rec["seq"], rec["mac"]
                if not records:
                    continue
                try:
                    await self._write(records, self._seq)
                except (AuditError, StateError) as e:
                    self._failing = True
                    for _, _, fut in written:
                        self._fail(fut, AuditError(str(e)))
                    # Records whose callers went on already are kept for the next write (their seq is
                    # assigned again then); the refused ones are dropped with their callers' calls.
                    kept = [item for item in written if item[2] is None]
                    if kept:
                        log.warning(
                            "audit store failing; %d records wait for the next write: %s", len(kept), e
                        )
                    self._pending = kept + self._pending
                    if not any(fut is not None for _, _, fut in self._pending):
                        break  # no caller waits: the next append retries (it waits, the store failing)
                    continue
                self._failing = False
                self._seq, self._prev = seq, prev
                self.durable_seq = seq
                self.batches += 1
                for (_, _, fut), rec in zip(written, records, strict=True):
                    if fut is not None and not fut.done():
                        fut.set_result(rec)
        finally:
            self._writer = None

    @staticmethod
    def _fail(fut: asyncio.Future[dict[str, Any]] | None, error: AuditError) -> None:
        if fut is None:
            log.error("audit record dropped: %s", error.message)
        elif not fut.done():
            fut.set_exception(error)

    async def _write(self, records: list[dict[str, Any]], from_seq: int) -> None:
        """Insert the records and move the anchor in one statement (one round trip, one commit).

        The anchor moves only from ``from_seq`` and the records go in only if it moved, so a second
        process claiming this replica id writes nothing (and the primary key stops it too).
        """
        if self._pool is None:
            raise AuditError(f"the audit store {self.description} is not open")
        last = records[-1]
        anchor = canonical(self.keys.anchor(self.replica, last["seq"], last["mac"])).decode()
        try:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                status = await conn.execute(
                    f"WITH h AS (INSERT INTO {self.schema}.heads AS h (replica, seq, line) "
                    "VALUES ($1, $2, $3) ON CONFLICT (replica) DO UPDATE SET seq = EXCLUDED.seq, "
                    "line = EXCLUDED.line WHERE h.seq = $4 RETURNING 1) "
                    f"INSERT INTO {self.schema}.records (replica, seq, line) "
                    "SELECT $1, r.seq, r.line FROM unnest($5::bigint[], $6::text[]) AS r(seq, line) "
                    "WHERE EXISTS (SELECT FROM h)",
                    self.replica,
                    last["seq"],
                    anchor,
                    from_seq,
                    [r["seq"] for r in records],
                    [canonical(r).decode() for r in records],
                )
        except asyncpg.UniqueViolationError as e:
            raise AuditError(
                f"another process appends to the audit chain of replica {self.replica!r}: {e}"
            ) from e
        except STORE_ERRORS as e:
            raise AuditError(f"cannot write to the audit store {self.description}: {e}") from e
        if status != f"INSERT 0 {len(records)}":
            raise AuditError(
                f"another process appends to the audit chain of replica {self.replica!r}; "
                "give every live process its own audit.replica_id"
            )

    async def aclose(self) -> None:
        """Commit what is queued (one last write), then close the pool."""
        if self._pending and self._pool is not None:
            self._failing = False  # one more attempt for the records still queued
            self._kick()
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._pending:
            log.error("audit store closed with %d records not written", len(self._pending))
            self._pending = []
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
            except STORE_ERRORS:
                pool.terminate()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            log.error("audit store closed with %d records not written", len(self._pending))
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
