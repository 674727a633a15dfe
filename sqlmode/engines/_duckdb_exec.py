"""DuckDB executor: one locked-down instance, a cursor per call, a deadline that interrupts.

The instance is opened with ``read_only=True``, ``enable_external_access=false`` (no file, URL or
Python-object scans, no COPY, no ATTACH of files, no extension loading), extension
autoload/autoinstall and community extensions off, ``memory_limit``, ``threads`` and
``max_temp_directory_size`` from config, and then ``lock_configuration=true`` so no query can
change any of it.

Each call gets its own cursor (a DuckDB connection to the shared instance, so temporary objects
and variables die with it) on a bounded thread pool (``database.pool_max_size`` workers: calls
beyond that wait). The text must be exactly one statement of type SELECT (DuckDB's own parser
decides); only ``max_rows + 1`` rows are fetched from the streaming result. At the deadline the
event loop calls ``cursor.interrupt()`` and repeats it until the worker returns.

When ``code_mode.allow_writes`` is on, the instance is opened read-write so that the write
connection (writes.py) can share it (DuckDB allows one configuration per file and process); reads
then run inside ``BEGIN TRANSACTION READ ONLY`` ... ``ROLLBACK``, and a warning says so.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ..config import Settings
from ..errors import (
    DatabaseUnavailableError,
    ExecutionError,
    NotAQueryError,
    PermissionDeniedError,
    QueryCancelledError,
    QueryTimeoutError,
    SqlmodeError,
)
from ..execute.base import effective_limits
from ..execute.convert import CHUNK_ROWS, convert_rows
from ..models import ColumnMeta, QueryResult
from ..schema.snapshot import SchemaSnapshot
from ._duckdb_convert import duckdb_plan
from ._duckdb_errtext import duckdb_error_text, duckdb_text
from ._duckdb_parse import QUERY_KEYWORDS, lexed_first_word
from ._duckdb_plan import BOUND_PLAN_SQL, MAX_PLAN_CHARS

__all__ = [
    "BoundPlanReply",
    "DuckDBExecutor",
    "EarlyBoundPlan",
    "duckdb_config",
    "map_duckdb_error",
    "open_duckdb",
    "scrubbed_error",
]

log = logging.getLogger("sqlmode.execute")

# How often the interrupt is repeated after the deadline until the worker gives up.
INTERRUPT_REPEAT_S = 0.05
# How long after the deadline the caller waits for the worker before answering "timed out".
DEADLINE_GRACE_S = 2.0
# A statement starting with one of these is a SELECT (WITH may lead to a write, PIVOT without IN list
# to two statements: the parser decides those).
_LEXED_QUERY_WORDS = QUERY_KEYWORDS - {"with", "pivot", "unpivot"}

_open_lock = threading.Lock()


def duckdb_config(settings: Settings) -> dict[str, Any]:
    """The locked-down DuckDB configuration (``lock_configuration`` is set after opening).

    One definition, in config: reflection opens the same file in this process and DuckDB
    refuses a second connection with a different configuration.
    """
    return dict(settings.database.duckdb_config())


def open_duckdb(settings: Settings, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open (or join, in this process) the configured DuckDB instance, then lock its configuration."""
    path = settings.database.duckdb_path
    if path != ":memory:" and read_only and not Path(path).exists():
        raise DatabaseUnavailableError(
            f"The DuckDB database file {path} does not exist.",
            hint="Check database.url, or build the sample with `sqlmode sample-db`.",
        )
    try:
        # DuckDB shares one instance per file and configuration within a process; the lock keeps
        # two executors opening the same file at once from racing in that cache.
        with _open_lock:
            con = duckdb.connect(path, read_only=read_only, config=duckdb_config(settings))
            # Joining an instance this process opened before: it is locked already.
            locked = con.execute("SELECT current_setting('lock_configuration')").fetchone()
            if not (locked and locked[0] in (True, "true")):
                con.execute("SET lock_configuration = true")
    except duckdb.Error as e:
        raise DatabaseUnavailableError(f"Could not open the DuckDB database {path}: {e}") from e
    return con


def map_duckdb_error(
    e: BaseException, *, timed_out: bool = False, timeout_ms: int | None = None
) -> SqlmodeError:
    """A DuckDB failure as the matching SqlmodeError, keeping DuckDB's message."""
    if isinstance(e, SqlmodeError):
        return e
    msg = str(e)
    if isinstance(e, duckdb.InterruptException):
        if timed_out:
            return QueryTimeoutError(
                f"The query ran longer than its {timeout_ms} ms limit and was interrupted."
            )
        return QueryCancelledError("The query was interrupted before it finished.")
    if isinstance(e, duckdb.PermissionException):
        return PermissionDeniedError(f"DuckDB refused: {msg}")
    if isinstance(e, duckdb.Error) and ("read-only" in msg or "read only" in msg):
        return PermissionDeniedError(f"The read-only database refused to change anything: {msg}")
    if isinstance(e, duckdb.ConnectionException):
        return DatabaseUnavailableError(f"The DuckDB connection is unusable: {msg}")
    if isinstance(e, duckdb.OutOfMemoryException):
        return ExecutionError(
            f"The query ran out of its memory limit: {msg}",
            hint="Aggregate or filter earlier so that less data is held at once.",
        )
    if isinstance(e, duckdb.Error):
        return ExecutionError(f"DuckDB rejected the query: {msg}")
    return ExecutionError(f"The query failed: {e.__class__.__name__}: {msg}")


@dataclass(frozen=True, slots=True)
class BoundPlanReply:
    """What one engine-check call brings back (see :meth:`DuckDBExecutor.bound_plan`)."""

    bound: dict[str, Any] | None  # the decoded json_serialize_plan document; None: too large
    size: int  # its length in characters
    physical: dict[str, Any] | None = None  # EXPLAIN (FORMAT JSON) as {"Plan": root}, when asked


def _physical(rows: list[Any]) -> dict[str, Any]:
    nodes = json.loads(rows[0][1]) if rows else []
    if isinstance(nodes, list) and len(nodes) == 1:
        return {"Plan": nodes[0]}
    return {"Plan": {"name": "ROOTS", "children": nodes}}


@dataclass(eq=False, slots=True)
class EarlyBoundPlan:
    """:meth:`DuckDBExecutor.bound_plan`'s work, run by another thread (:meth:`prepare_bound_plan`).

    Nothing reads it but :meth:`DuckDBExecutor.bound_plan` given the very same text and estimates
    flag; every other path calls :meth:`discard`.
    """

    owner: DuckDBExecutor
    sql: str
    estimates: bool
    cursor: duckdb.DuckDBPyConnection
    future: concurrent.futures.Future[BoundPlanReply]
    prepared: float  # time.monotonic(): the deadline runs from here

    def run(self) -> None:
        """Do the work on the calling thread; the outcome (or the exception) goes to ``future``."""
        if not self.future.set_running_or_notify_cancel():  # discarded before it started
            with contextlib.suppress(duckdb.Error):
                self.cursor.close()
            return
        try:
            reply = self.owner._bound_plan_sync(self.cursor, self.sql, self.estimates)
        except BaseException as e:
            self.future.set_exception(e)
            if not isinstance(e, Exception):
                raise
        else:
            self.future.set_result(reply)

    def discard(self) -> None:
        """Forget it: work not started never runs, running work is interrupted (idempotent)."""
        if self.future.cancel():
            return
        if not self.future.done():
            self.future.add_done_callback(_consume)
            _interrupt_until_done(self.cursor, self.future)


def _interrupt_until_done(cur: duckdb.DuckDBPyConnection, fut: concurrent.futures.Future[Any]) -> None:
    """Interrupt ``cur`` now and, from the running event loop if any, again until ``fut`` is done:
    the first interrupt may land before the query has started."""
    if fut.done():
        return
    with contextlib.suppress(duckdb.Error):  # closed already: the worker is finishing
        cur.interrupt()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop.call_later(INTERRUPT_REPEAT_S, _interrupt_until_done, cur, fut)


def _abandon(fut: concurrent.futures.Future[Any], cur: duckdb.DuckDBPyConnection) -> None:
    """Stop waiting for ``fut``: not started yet, it never will; running, it is interrupted until done."""
    if fut.cancel():
        with contextlib.suppress(duckdb.Error):
            cur.close()
        return
    fut.add_done_callback(_consume)
    _interrupt_until_done(cur, fut)


def scrubbed_error(e: BaseException, sql: str) -> SqlmodeError:
    """The mapped error, DuckDB's text cut down to what the query itself said (execute/errtext.py)."""
    err = map_duckdb_error(e)
    err.message = err.message.replace(str(e), duckdb_error_text(e, sql))
    err.args = (err.message,)
    return err


class DuckDBExecutor:
    """Read-only query execution on DuckDB."""

    dialect = "duckdb"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.warnings: list[str] = []
        self._db: duckdb.DuckDBPyConnection | None = None
        # DuckDB opens no in-memory database read-only: that one is read in read-only transactions.
        self._read_only = not settings.code_mode.allow_writes and settings.database.duckdb_path != ":memory:"
        # The one-SELECT statement check; defence tests switch it off to show that the locked-down
        # instance alone holds. Never switched off in production code.
        self._check_text = True
        # The column list of each result shape (name, type), built once: results share its items.
        self._columns: dict[tuple[tuple[str, str], ...], list[ColumnMeta]] = {}
        self._threads = ThreadPoolExecutor(
            max_workers=settings.database.pool_max_size, thread_name_prefix="sqlmode-duckdb"
        )

    async def start(self) -> None:
        self._db = await asyncio.to_thread(open_duckdb, self.settings, read_only=self._read_only)
        if self.settings.code_mode.allow_writes:
            self.warnings.append(
                "code_mode.allow_writes is on: DuckDB is opened read-write (shared with the write "
                "connection); reads run in read-only transactions"
            )
            for w in self.warnings:
                log.warning("sqlmode executor: %s", w)

    async def close(self) -> None:
        # Abandoned workers (a computation DuckDB could not interrupt) are not waited for: the
        # instance is closed by a background thread once they finish.
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._db is not None:
            db, self._db = self._db, None
            try:
                db.close()
            except duckdb.Error:  # a worker still holds a cursor of it

                def close_later() -> None:
                    self._threads.shutdown(wait=True)
                    db.close()

                threading.Thread(target=close_later, name="sqlmode-duckdb-close", daemon=True).start()

    # -- the worker side -----------------------------------------------------------------

    def _statement(self, cur: duckdb.DuckDBPyConnection, sql: str) -> Any:
        try:
            statements = cur.extract_statements(sql)
        except duckdb.Error as e:
            raise ExecutionError(f"DuckDB could not parse the query: {e}") from e
        if len(statements) != 1:
            raise NotAQueryError(f"Exactly one statement can run at a time; this text has {len(statements)}.")
        st = statements[0]
        if st.type != duckdb.StatementType.SELECT:
            raise NotAQueryError(
                f"Only a read query (SELECT) can run here; this is a {st.type.name} statement."
            )
        return st

    def _fetch(self, cur: duckdb.DuckDBPyConnection, sql: str, limit: int) -> tuple[list[Any], list[Any]]:
        """Up to ``limit`` rows, JSON-safe, converted as they are fetched; and the description.

        A chunk of driver rows at a time (``CHUNK_ROWS``), each freed once converted: a large result
        is held once (its JSON-safe form), not twice.
        """
        try:
            st = self._statement(cur, sql) if self._check_text else sql
            if not self._read_only:
                cur.execute("BEGIN TRANSACTION READ ONLY")
            cur.execute(st)
            desc = cur.description or []
            plan = duckdb_plan([d[1] for d in desc], self.settings.database.max_cell_bytes)
            rows: list[Any] = []
            while len(rows) < limit:
                want = min(CHUNK_ROWS, limit - len(rows))
                chunk = cur.fetchmany(want)
                rows += convert_rows(chunk, plan)
                if len(chunk) < want:
                    break
            return rows, desc
        finally:
            cur.close()

    def _run_sync(
        self, cur: duckdb.DuckDBPyConnection, sql: str, limit: int
    ) -> tuple[list[Any], Any, list[Any]]:
        rows, desc = self._fetch(cur, sql, limit)
        rows_cap = limit - 1
        truncated = len(rows) > rows_cap
        if truncated:
            del rows[rows_cap:]
        return rows, truncated, desc

    # -- the event-loop side -------------------------------------------------------------

    async def _call(self, ms: int, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(cursor, *args)`` on a worker with a fresh cursor, interrupting it at the deadline."""
        if self._db is None:
            raise DatabaseUnavailableError("The DuckDB executor is closed.")
        cur = self._db.cursor()
        try:
            fut = self._threads.submit(fn, cur, *args)
        except RuntimeError as e:  # shut down meanwhile
            cur.close()
            raise DatabaseUnavailableError("The DuckDB executor is closed.") from e
        return await self._outcome(fut, cur, ms, ms / 1000)

    async def _outcome(
        self, fut: concurrent.futures.Future[Any], cur: duckdb.DuckDBPyConnection, ms: int, left: float
    ) -> Any:
        """``fut``'s result, its cursor interrupted ``left`` seconds from now (the deadline of ``ms``).

        One timer does the whole deadline: at the deadline it interrupts the cursor, then again every
        ``INTERRUPT_REPEAT_S`` (the first interrupt may land before the worker has started the
        query), and ``DEADLINE_GRACE_S`` after the deadline it stops waiting and abandons the
        worker. The worker's completion wakes the caller directly: no ``asyncio.wait``, no second
        future chained to the worker's (each costs a trip through the event loop per query).
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        deadline = loop.time() + max(left, 0.0)
        timed_out = False
        handle: asyncio.TimerHandle

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        def done(_: concurrent.futures.Future[Any]) -> None:  # on the worker (or here, if done already)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(wake)

        def tick() -> None:
            nonlocal handle, timed_out
            if fut.done():
                return
            timed_out = True
            if loop.time() >= deadline + DEADLINE_GRACE_S:
                wake()  # abandoned: the caller answers "timed out" without it
                return
            with contextlib.suppress(duckdb.Error):  # already closed: the worker is finishing
                cur.interrupt()
            handle = loop.call_at(min(loop.time() + INTERRUPT_REPEAT_S, deadline + DEADLINE_GRACE_S), tick)

        handle = loop.call_at(deadline, tick)
        fut.add_done_callback(done)
        try:
            await waiter
        except asyncio.CancelledError:
            handle.cancel()
            _abandon(fut, cur)
            raise
        handle.cancel()
        if not fut.done():
            _abandon(fut, cur)
            raise QueryTimeoutError(
                f"The query ran longer than its {ms} ms limit; it was interrupted and abandoned."
            )
        try:
            return fut.result()
        except BaseException as e:
            raise map_duckdb_error(e, timed_out=timed_out, timeout_ms=ms) from e

    async def run(self, sql: str, max_rows: int | None = None, timeout_ms: int | None = None) -> QueryResult:
        """Run one read query under the row and time limits."""
        rows_cap, ms = effective_limits(self.settings, max_rows, timeout_ms)
        t0 = time.perf_counter()
        rows, truncated, desc = await self._call(ms, self._run_sync, sql, rows_cap + 1)
        key = tuple((d[0], str(d[1])) for d in desc)
        columns = self._columns.get(key)
        if columns is None:
            if len(self._columns) > 512:
                self._columns.clear()
            columns = self._columns[key] = [ColumnMeta.model_construct(name=n, type=t) for n, t in key]
        # Built without re-validating every cell: the rows were just made JSON-safe.
        return QueryResult.model_construct(
            columns=list(columns),
            rows=rows,
            row_count=len(rows),
            truncated=truncated,
            elapsed_ms=round((time.perf_counter() - t0) * 1000, 3),
            code_hash="",
        )

    def _explain_sync(self, cur: duckdb.DuckDBPyConnection, sql: str) -> Any:
        try:
            self._statement(cur, sql)  # refuse anything but one SELECT before explaining it
            if not self._read_only:
                cur.execute("BEGIN TRANSACTION READ ONLY")
            return cur.execute("EXPLAIN (FORMAT JSON) " + sql).fetchall()
        finally:
            cur.close()

    async def explain(self, sql: str) -> dict[str, Any]:
        """DuckDB's physical plan as JSON: ``{"Plan": <root node>}`` (not executed)."""
        rows = await self._call(self.settings.code_mode.query_timeout_ms, self._explain_sync, sql)
        return _physical(rows)

    def _bound_plan_sync(self, cur: duckdb.DuckDBPyConnection, sql: str, estimates: bool) -> BoundPlanReply:
        try:
            try:
                # One SELECT to DuckDB, before anything else: its lexer where that is plain (one
                # statement, a SELECT, FROM, VALUES, TABLE or parenthesis first), else its parser.
                first = lexed_first_word(sql)
                if first is None or not (first.startswith("(") or first in _LEXED_QUERY_WORDS):
                    self._statement(cur, sql)
                if not self._read_only:
                    cur.execute("BEGIN TRANSACTION READ ONLY")
                row = cur.execute(BOUND_PLAN_SQL, [sql]).fetchone()
                text = str(row[0]) if row and row[0] is not None else ""
                if len(text) > MAX_PLAN_CHARS:
                    return BoundPlanReply(None, len(text))
                doc = json.loads(text)
                if isinstance(doc, dict) and doc.get("error"):
                    # What EXPLAIN would have raised (a binder or catalog error), as DuckDB words it.
                    kind = str(doc.get("error_type") or "unknown").replace("_", " ").title()
                    msg = f"{kind} Error: {doc.get('error_message', '')}"
                    raise ExecutionError(f"DuckDB rejected the query: {duckdb_text(msg, sql)}")
                physical = None
                if estimates:
                    physical = _physical(cur.execute("EXPLAIN (FORMAT JSON) " + sql).fetchall())
                return BoundPlanReply(doc, len(text), physical)
            except (duckdb.InterruptException, SqlmodeError):
                raise  # a timeout or cancel: _call maps it knowing which
            except duckdb.Error as e:
                raise scrubbed_error(e, sql) from e
        finally:
            cur.close()

    async def bound_plan(
        self, sql: str, *, estimates: bool, early: EarlyBoundPlan | None = None
    ) -> BoundPlanReply:
        """The engine check's one call: DuckDB's parser, its bound plan and, if asked, its estimates.

        One worker hop under the query deadline: the text must be one SELECT to DuckDB's parser,
        then ``json_serialize_plan`` (the unoptimized bound plan: what is read and called), then
        ``EXPLAIN (FORMAT JSON)`` only when ``estimates`` (the optimizer's row estimates: limits,
        risk, the explanation's figures). Nothing runs. A failure is a SqlmodeError whose DuckDB
        text is scrubbed (execute/errtext.py): the verdict never carries a name or value the query
        did not write (a binder's "Candidate bindings" may name a blocked column).

        ``early``: the same work, prepared by :meth:`prepare_bound_plan` and run by another thread;
        its outcome is taken when it is this executor's for this very text and estimates flag
        (else it is discarded), under the same deadline.
        """
        ms = self.settings.code_mode.query_timeout_ms
        if early is not None:
            if early.owner is self and early.sql == sql and early.estimates == estimates:
                if early.future.done() and not early.future.cancelled():
                    # Run by the analysis worker already (the usual case): no deadline left to keep.
                    try:
                        return early.future.result()
                    except BaseException as e:
                        raise map_duckdb_error(e, timeout_ms=ms) from e
                reply: BoundPlanReply = await self._outcome(
                    early.future, early.cursor, ms, ms / 1000 - (time.monotonic() - early.prepared)
                )
                return reply
            early.discard()
        reply = await self._call(ms, self._bound_plan_sync, sql, estimates)
        return reply

    def prepare_bound_plan(self, sql: str, *, estimates: bool) -> EarlyBoundPlan | None:
        """:meth:`bound_plan`'s work for another thread to run (``EarlyBoundPlan.run``); None if closed.

        For the analysis worker: once its analysis passed, it binds the normalized text itself,
        sparing a second trip through the event loop to this executor's workers. There it runs
        within the analysis deadline (``server.analysis_timeout_ms``: past it the analysis is
        refused and the work interrupted) and, once taken, the query deadline counted from here.
        The outcome is taken only through :meth:`bound_plan`; whoever does not take it discards it.
        """
        db = self._db
        if db is None:
            return None
        try:
            cur = db.cursor()
        except duckdb.Error:  # closed meanwhile
            return None
        return EarlyBoundPlan(self, sql, estimates, cur, concurrent.futures.Future(), time.monotonic())

    def _catalog_sync(
        self, cur: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        try:
            if not self._read_only:
                cur.execute("BEGIN TRANSACTION READ ONLY")
            return cur.execute(sql, list(params)).fetchall()
        finally:
            cur.close()

    async def catalog_query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A trusted catalog query with parameters on a fresh cursor; raw rows."""
        return await self._call(self.settings.code_mode.query_timeout_ms, self._catalog_sync, sql, params)

    def _reflect_sync(self, cur: duckdb.DuckDBPyConnection) -> list[Any]:
        from ._duckdb_reflect import read_catalog, schemas_of

        try:
            if not self._read_only:
                cur.execute("BEGIN TRANSACTION READ ONLY")
            return read_catalog(cur, schemas_of(self.settings))
        finally:
            cur.close()

    async def reflect(self) -> SchemaSnapshot:
        """The schema read again on a cursor of this instance (a refresh opens the file no second time).

        A second connection with another configuration (``read_only`` when writes are on) is
        refused by DuckDB while this instance is open; a read-only transaction, under the query
        deadline, like :meth:`catalog_query`.
        """
        from ..schema import reflect_schema
        from ._duckdb_reflect import database_name

        async def catalog() -> tuple[list[Any], str]:
            ms = self.settings.code_mode.query_timeout_ms
            return await self._call(ms, self._reflect_sync), database_name(self.settings)

        return await reflect_schema(self.settings, catalog)


def _consume(fut: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> None:
    # An abandoned worker's outcome is read so asyncio does not log "exception never retrieved".
    if not fut.cancelled():
        fut.exception()
