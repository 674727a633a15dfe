"""PostgreSQL writes: a separate small pool on ``database.write_url`` (required; typically a role
with exactly the write grants you mean to allow), with the same timeouts as the reader. The write
role is proven at start-up like the reader (_postgres_writer_role.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg
import asyncpg.exceptions as pgerr

from ..config import Settings
from ..errors import ConfigError, QueryTimeoutError, SqlmodeError
from ..execute.convert import convert_rows
from ..execute.writes import WriteResult, check_verb, check_write_text, over_cap, write_limits
from ..models import ColumnMeta
from ._postgres_convert import postgres_plan
from ._postgres_exec import CLIENT_CHECK_INTERVAL_MS, asyncpg_dsn, describe_target, map_pg_error

__all__ = ["PostgresWriteExecutor"]

log = logging.getLogger("sqlmode.execute.writes")


# Rows inserted, updated or deleted so far in this transaction, by the engine's own counters
# (pending statistics are not flushed inside a transaction block, so the difference is exact).
_PG_ROWS_CHANGED = (
    "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint "
    "FROM pg_catalog.pg_stat_xact_all_tables"
)


class PostgresWriteExecutor:
    """Capped single-statement writes on a separate PostgreSQL connection."""

    dialect = "postgres"

    def __init__(self, settings: Settings):
        db = settings.database
        if not db.write_url:
            raise ConfigError(
                "writes on PostgreSQL need a separate connection URL",
                key="database.write_url",
                hint="Set database.write_url to a role that may write the allowed tables.",
            )
        self.settings = settings
        self._dsn = asyncpg_dsn(db.write_url)
        self._target = describe_target(db.write_url)
        self._pool: asyncpg.Pool | None = None
        # What the connected role may do beyond the configuration (writer_role.writer_problems).
        self.warnings: list[str] = []

    async def start(self) -> None:
        db = self.settings.database
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=0,
                max_size=min(2, db.pool_max_size),
                timeout=db.connect_timeout_ms / 1000,
                command_timeout=None,
                init=_init_writer,
                server_settings={
                    "application_name": "sqlmode-writer",
                    "statement_timeout": str(self.settings.code_mode.query_timeout_ms),
                    "lock_timeout": str(db.lock_timeout_ms),
                    "idle_in_transaction_session_timeout": str(db.idle_in_transaction_timeout_ms),
                    "client_connection_check_interval": str(CLIENT_CHECK_INTERVAL_MS),
                },
            )
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                raise
            raise map_pg_error(e, target=self._target) from e
        from ._postgres_writer_role import writer_problems

        try:
            async with self._pool.acquire() as conn:
                problems = await writer_problems(conn, self.settings)
        except BaseException as e:
            await self.close()
            if isinstance(e, asyncio.CancelledError | SqlmodeError):
                raise
            raise map_pg_error(e, target=self._target) from e
        if problems and not db.allow_privileged_role:
            # Proven like the reader: a write role that can change or read more than the config says
            # leaves only sqlmode's own checks between a fooled analyzer and the data.
            await self.close()
            fix = "run `sqlmode db grants --apply` and put the writer role's URL in database.write_url"
            raise ConfigError(
                "the write role may do more than the configuration allows: " + "; ".join(problems),
                key="database.write_url",
                code="WRITER_ROLE_UNSAFE",
                hint=f"{fix}; database.allow_privileged_role = true skips this check (development only)",
            )
        self.warnings = problems
        for w in self.warnings:
            log.warning("sqlmode writer (database.allow_privileged_role is on): %s", w)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def run_write(
        self, sql: str, max_affected: int | None = None, timeout_ms: int | None = None
    ) -> WriteResult:
        """Run one write in a transaction; commit only within the row cap."""
        cap, ms = write_limits(self.settings, max_affected, timeout_ms)
        check_write_text(self.settings, sql)
        assert self._pool is not None, "write executor is not started"
        t0 = time.perf_counter()
        try:
            conn = await self._pool.acquire()
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                raise
            raise map_pg_error(e, target=self._target) from e
        try:
            async with asyncio.timeout(ms / 1000):
                records, attrs, verb, affected = await self._in_transaction(conn, sql, cap, ms)
        except TimeoutError as e:
            conn.terminate()  # the server rolls back what the dropped session started
            raise QueryTimeoutError(
                f"The write ran longer than its {ms} ms limit; it was cancelled and rolled back."
            ) from e
        except asyncio.CancelledError:
            conn.terminate()
            raise
        finally:
            await self._pool.release(conn)
        plan = postgres_plan(tuple(a.type for a in attrs), self.settings.database.max_cell_bytes, False)
        rows = convert_rows(records, plan)
        return WriteResult(
            columns=[ColumnMeta(name=a.name, type=a.type.name) for a in attrs],
            rows=rows,
            row_count=len(rows),
            truncated=False,
            elapsed_ms=round((time.perf_counter() - t0) * 1000, 3),
            affected_rows=affected,
            statement=verb,
        )

    async def _in_transaction(
        self, conn: Any, sql: str, cap: int, ms: int
    ) -> tuple[list[Any], Any, str, int]:
        tr = conn.transaction()
        await tr.start()
        try:
            before = await conn.fetchval(_PG_ROWS_CHANGED)
            stmt = await conn._get_statement(sql, None)
            attrs = stmt._get_attributes()
            # Only cap + 1 RETURNING rows are fetched: the count comes from the engine, not from them.
            records, status, completed = await conn._protocol.bind_execute(stmt, [], "", cap + 1, True, None)
            changed = int(await conn.fetchval(_PG_ROWS_CHANGED)) - int(before)
            tag = (status or b"").decode() if isinstance(status, bytes | bytearray) else str(status or "")
            parts = tag.split()
            verb = parts[0].upper() if parts else "UNKNOWN"
            if not completed:  # more rows came back than the cap allows (RETURNING or a SELECT)
                raise over_cap("statement", changed if changed > cap else None, cap)
            tagged = int(parts[-1]) if parts and parts[-1].isdigit() else 0
            check_verb(self.settings, verb)
            # The tag counts the outer statement only; the engine's per-transaction counters also
            # see a data-modifying CTE and trigger writes. The larger of the two is the true bound.
            affected = max(changed, tagged)
            if affected > cap:
                raise over_cap(verb, affected, cap)
        except BaseException as e:
            if not conn.is_closed() and not isinstance(e, asyncio.CancelledError):
                await tr.rollback()
            if isinstance(e, SqlmodeError | asyncio.CancelledError):
                raise
            if isinstance(e, pgerr.PostgresError | OSError | pgerr.InterfaceError):
                raise map_pg_error(e, timeout_ms=ms, target=self._target, sql=sql) from e
            raise
        await tr.commit()
        return records, attrs, verb, affected


async def _init_writer(conn: Any) -> None:
    # The writer role cannot execute set_config once the reader's grants ran (they revoke it from
    # PUBLIC): the writer's first RETURNING of a type asyncpg must introspect failed without this.
    from ._postgres_exec import introspect_without_set_config

    introspect_without_set_config(conn)
