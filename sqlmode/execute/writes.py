"""The write connection: one INSERT/UPDATE (or, when allowed, DELETE/MERGE) per transaction, capped.

Used only when ``code_mode.allow_writes`` is true (opening it otherwise is a ConfigError), and
never through the read pool:

- PostgreSQL: a separate small pool on ``database.write_url`` (required; typically a role with
  exactly the write grants you mean to allow), with the same timeouts as the reader.
- DuckDB: the configured file opened read-write, shared in-process with the read executor
  (which then reads inside read-only transactions, see duckdb.py).

Each call runs exactly one statement inside a transaction. It is rolled back, and nothing
changes, when the statement is not an INSERT/UPDATE (DELETE and MERGE need
``code_mode.allow_deletes``), when it fails or runs out of time, or when it affects more rows
than the cap (``code_mode.max_write_rows``, lowered per call): then WriteLimitExceededError.

    async with open_write_executor(settings) as writer:
        result = await writer.run_write("UPDATE orders SET status = 'void' WHERE id = 7", max_affected=1)
        result.affected_rows  # 1
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import asyncpg.exceptions as pgerr
import duckdb
from pydantic import Field

from ..config import Settings
from ..errors import (
    ConfigError,
    ExecutionError,
    NotAQueryError,
    PermissionDeniedError,
    QueryTimeoutError,
    SqlmodeError,
    WriteLimitExceededError,
)
from ..models import ColumnMeta, QueryResult
from .base import leading_keyword
from .convert import convert_rows, duckdb_plan, postgres_plan
from .duckdb import DuckDBExecutor, map_duckdb_error
from .errtext import duckdb_error_text
from .postgres import (
    CLIENT_CHECK_INTERVAL_MS,
    asyncpg_dsn,
    describe_target,
    map_pg_error,
)

__all__ = ["WriteResult", "open_write_executor"]

log = logging.getLogger("sqlmode.execute.writes")

_WRITE_WORDS = frozenset({"insert", "update", "delete", "merge", "with"})
_DELETE_WORDS = re.compile(r"\b(delete|merge|truncate)\b", re.I)


class WriteResult(QueryResult):
    """A write's outcome: rows changed, the statement kind, and RETURNING rows if any."""

    affected_rows: int = Field(description="Rows inserted, updated or deleted (committed).")
    statement: str = Field(description="INSERT, UPDATE, DELETE or MERGE.")


def _limits(settings: Settings, max_affected: int | None, timeout_ms: int | None) -> tuple[int, int]:
    cm = settings.code_mode
    cap = cm.max_write_rows if max_affected is None else max(0, min(int(max_affected), cm.max_write_rows))
    ms = cm.query_timeout_ms if timeout_ms is None else max(1, min(int(timeout_ms), cm.query_timeout_ms))
    return cap, ms


def _check_write_text(settings: Settings, sql: str) -> None:
    word = leading_keyword(sql)
    if word not in _WRITE_WORDS:
        raise NotAQueryError(
            f"Only INSERT, UPDATE, DELETE or MERGE can run on the write connection; this starts with "
            f"{word.upper() or repr(sql.strip()[:20])}.",
            hint="Send one data-changing statement; schema changes and other commands are not allowed.",
        )
    # The command tag names only the outer statement, so a DELETE inside a data-modifying CTE
    # would pass as INSERT/UPDATE. Without allow_deletes the words themselves are refused
    # (a string literal containing them is refused too: failing closed is the point).
    if not settings.code_mode.allow_deletes and _DELETE_WORDS.search(sql):
        raise PermissionDeniedError(
            "DELETE, MERGE and TRUNCATE are not allowed: code_mode.allow_deletes is false. "
            "Nothing was changed.",
            hint="Deleting rows is disabled in this server's configuration.",
        )


def _check_verb(settings: Settings, verb: str) -> None:
    if verb in ("INSERT", "UPDATE"):
        return
    if verb in ("DELETE", "MERGE"):
        if settings.code_mode.allow_deletes:
            return
        raise PermissionDeniedError(
            f"{verb} is not allowed: code_mode.allow_deletes is false. Nothing was changed.",
            hint="Deleting rows is disabled in this server's configuration.",
        )
    raise NotAQueryError(
        f"Only INSERT, UPDATE, DELETE or MERGE can run on the write connection; this was {verb}. "
        "Nothing was changed."
    )


def _over_cap(verb: str, affected: int | None, cap: int) -> WriteLimitExceededError:
    n = f"{affected}" if affected is not None else f"more than {cap}"
    return WriteLimitExceededError(
        f"The {verb} would change {n} rows, more than the {cap} allowed; "
        "it was rolled back and nothing changed."
    )


# -- PostgreSQL ------------------------------------------------------------------------------

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
        from .writer_role import writer_problems

        async with self._pool.acquire() as conn:
            problems = await writer_problems(conn, self.settings)
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
        cap, ms = _limits(self.settings, max_affected, timeout_ms)
        _check_write_text(self.settings, sql)
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
                raise _over_cap("statement", changed if changed > cap else None, cap)
            tagged = int(parts[-1]) if parts and parts[-1].isdigit() else 0
            _check_verb(self.settings, verb)
            # The tag counts the outer statement only; the engine's per-transaction counters also
            # see a data-modifying CTE and trigger writes. The larger of the two is the true bound.
            affected = max(changed, tagged)
            if affected > cap:
                raise _over_cap(verb, affected, cap)
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


# -- DuckDB ----------------------------------------------------------------------------------

_DUCK_VERBS = {
    duckdb.StatementType.INSERT: "INSERT",
    duckdb.StatementType.UPDATE: "UPDATE",
    duckdb.StatementType.DELETE: "DELETE",
}
_merge = getattr(duckdb.StatementType, "MERGE_INTO", None)
if _merge is not None:
    _DUCK_VERBS[_merge] = "MERGE"


def _duck_has_returning(sql: str) -> bool:
    """Whether the statement has a RETURNING clause, by DuckDB's own tokenizer (not the result shape).

    A keyword ``returning`` anywhere counts (e.g. ``AS returning``): a false "yes" is harmless, as
    :func:`_duck_affected` then still reads the engine's count when the result is that count.
    """
    tokens = duckdb.tokenize(sql)
    ends = [p for p, _ in tokens[1:]] + [len(sql)]
    return any(
        kind == duckdb.token_type.keyword and sql[pos:end].strip().lower() == "returning"
        for (pos, kind), end in zip(tokens, ends, strict=True)
    )


def _duck_affected(
    cur: duckdb.DuckDBPyConnection, desc: Any, returning: bool, cap: int
) -> tuple[list[Any], int]:
    """(RETURNING rows kept, rows changed) of the statement just executed.

    Without RETURNING DuckDB answers one row, a BIGINT column ``Count``: the engine's count. With
    RETURNING there is one row per changed row, whatever its columns are called (``RETURNING 0 AS
    "Count"`` is not a count): they are counted to the end, only cap + 1 are kept.
    """
    if not returning:
        records = cur.fetchall()
        if len(desc) != 1 or desc[0][0] != "Count" or len(records) != 1:
            raise ExecutionError("DuckDB did not report how many rows the write changed; it was rolled back.")
        return [], int(records[0][0])
    records = cur.fetchmany(cap + 1)
    affected = len(records)
    while chunk := cur.fetchmany(10_000):
        affected += len(chunk)
    engine_count = len(desc) == 1 and desc[0][0] == "Count" and str(desc[0][1]) == "BIGINT"
    if engine_count and affected == 1 and isinstance(records[0][0], int):
        # Ambiguous: one RETURNING row, or the engine's count under a keyword used as a name.
        affected = max(affected, records[0][0])
    return records, affected


def _scrubbed(e: duckdb.Error, sql: str) -> SqlmodeError:
    """The mapped error, its DuckDB text cut down to what the query itself said (see errtext.py)."""
    err = map_duckdb_error(e)
    err.message = err.message.replace(str(e), duckdb_error_text(e, sql))
    err.args = (err.message,)
    return err


class DuckDBWriteExecutor(DuckDBExecutor):
    """Capped single-statement writes on the DuckDB file, opened read-write."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self._read_only = False

    async def start(self) -> None:
        from .duckdb import open_duckdb

        self._db = await asyncio.to_thread(open_duckdb, self.settings, read_only=False)

    def _write_sync(
        self, cur: duckdb.DuckDBPyConnection, sql: str, cap: int
    ) -> tuple[list[Any], Any, str, int]:
        try:
            statements = cur.extract_statements(sql)
            if len(statements) != 1:
                raise NotAQueryError(
                    f"Exactly one statement can run at a time; this text has {len(statements)}."
                )
            st = statements[0]
            verb = _DUCK_VERBS.get(st.type)
            if verb is None:
                raise NotAQueryError(
                    f"Only INSERT, UPDATE, DELETE or MERGE can run on the write connection; this is "
                    f"{st.type.name}. Nothing was changed."
                )
            _check_verb(self.settings, verb)
            returning = _duck_has_returning(sql)
            cur.execute("BEGIN TRANSACTION")
            try:
                try:
                    cur.execute(st)
                except duckdb.InterruptException:
                    raise  # a timeout or cancel: _call maps it knowing which
                except duckdb.Error as e:
                    raise _scrubbed(e, sql) from e
                desc = cur.description or []
                records, affected = _duck_affected(cur, desc, returning, cap)
                if not returning:
                    records, desc = [], []
                if affected > cap:
                    raise _over_cap(verb, affected, cap)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            return records, desc, verb, affected
        finally:
            cur.close()

    async def run_write(
        self, sql: str, max_affected: int | None = None, timeout_ms: int | None = None
    ) -> WriteResult:
        """Run one write in a transaction; commit only within the row cap."""
        cap, ms = _limits(self.settings, max_affected, timeout_ms)
        _check_write_text(self.settings, sql)
        t0 = time.perf_counter()
        records, desc, verb, affected = await self._call(ms, self._write_sync, sql, cap)
        plan = duckdb_plan([d[1] for d in desc], self.settings.database.max_cell_bytes)
        rows = convert_rows(records, plan)
        return WriteResult(
            columns=[ColumnMeta(name=d[0], type=str(d[1])) for d in desc],
            rows=rows,
            row_count=len(rows),
            truncated=False,
            elapsed_ms=round((time.perf_counter() - t0) * 1000, 3),
            affected_rows=affected,
            statement=verb,
        )


@asynccontextmanager
async def open_write_executor(settings: Settings) -> AsyncIterator[Any]:
    """Open the write connection (only when ``code_mode.allow_writes`` is true)."""
    if not settings.code_mode.allow_writes:
        raise ConfigError(
            "writes are disabled",
            key="code_mode.allow_writes",
            hint="Set code_mode.allow_writes = true (and database.write_url on PostgreSQL) to allow writes.",
        )
    writer: Any
    if settings.database.dialect == "postgres":
        writer = PostgresWriteExecutor(settings)
    else:
        writer = DuckDBWriteExecutor(settings)
    await writer.start()
    try:
        yield writer
    finally:
        await writer.close()
