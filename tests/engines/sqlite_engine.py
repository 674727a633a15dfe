"""A small third engine for tests: SQLite through the Engine protocol (not shipped in sqlmode/).

Written the way docs/engines.md says a new engine is: one module, one class, registered by URL
scheme. Read-only (the file is opened ``mode=ro`` and ``PRAGMA query_only`` is set), no roles and
so no grants, no writes. SQLite cannot describe what a query binds without running it, so its
engine check refuses (fail closed): a config for it turns ``code_mode.engine_confirmation`` off.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from sqlmode.config import Settings
from sqlmode.engines import BoundAccess, EngineTraits, Executor, NativeSyntaxError, NativeView
from sqlmode.errors import (
    ConfigError,
    DatabaseUnavailableError,
    ExecutionError,
    QueryTimeoutError,
    SqlmodeError,
)
from sqlmode.execute import check_read_query, effective_limits
from sqlmode.execute.convert import json_safe
from sqlmode.models import ColumnMeta, QueryResult, Violation
from sqlmode.schema.functions import FunctionCatalog
from sqlmode.schema.snapshot import ColumnInfo, TableInfo

TRAITS = EngineTraits(
    name="sqlite",
    display_name="SQLite",
    url_example="sqlite:///file.db",
    sqlglot_dialect="sqlite",
    default_schema="main",
    system_schemas=frozenset({"temp"}),
    system_function_schemas=frozenset(),
    quoted_identifiers_case_sensitive=False,
    values_column_names=("column{n}",),
    driver_modules=("sqlite3",),
)

_KINDS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def file_of(url: str) -> str:
    """sqlite:///relative.db or sqlite:////abs.db -> the path."""
    rest = url.split("://", 1)[1]
    return rest[1:] if rest.startswith("/") else rest


def _statements(code: str) -> list[str]:
    """The statements of ``code`` as SQLite's own tokenizer splits them (``complete_statement``)."""
    out: list[str] = []
    current = ""
    for ch in code:
        current += ch
        if ch == ";" and sqlite3.complete_statement(current):
            out.append(current)
            current = ""
    if current.strip():
        if not sqlite3.complete_statement(current + ";"):
            raise NativeSyntaxError("SQLite rejects the syntax: an unterminated string, comment or block")
        out.append(current)
    return [s for s in out if s.strip().strip(";").strip()]


def _kind(statement: str) -> str:
    words = statement.replace("(", " ").split()
    first = words[0].upper() if words else ""
    return "SELECT" if first in ("WITH", "VALUES") else first if first in _KINDS else "OTHER"


class SQLiteExecutor:
    """Read-only queries on one SQLite file: ``mode=ro``, ``query_only``, a deadline per query."""

    dialect = TRAITS.name

    def __init__(self, settings: Settings):
        self.settings = settings
        self.warnings: list[str] = []
        path = Path(file_of(settings.database.url))
        if not path.exists():
            raise DatabaseUnavailableError(
                f"the SQLite file {path} does not exist", code="DATABASE_NOT_FOUND"
            )
        # One connection per call: sqlite3 connections belong to one thread.
        self._uri = f"file:{path}?mode=ro"

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
        con.execute("PRAGMA query_only = ON")
        return con

    def _run_sync(self, sql: str, params: Sequence[Any], limit: int, ms: int) -> tuple[list[Any], list[Any]]:
        con = self._connect()
        deadline = time.monotonic() + ms / 1000
        con.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
        try:
            cur = con.execute(sql, tuple(params))
            rows = cur.fetchmany(limit + 1)
            return rows, list(cur.description or [])
        except sqlite3.OperationalError as e:
            if "interrupted" in str(e):
                raise QueryTimeoutError(f"The query ran longer than its {ms} ms limit.") from e
            raise ExecutionError(f"SQLite rejected the query: {e}") from e
        except sqlite3.Error as e:
            raise ExecutionError(f"SQLite rejected the query: {e}") from e
        finally:
            con.close()

    async def run(self, sql: str, max_rows: int | None = None, timeout_ms: int | None = None) -> QueryResult:
        check_read_query(sql)
        rows_cap, ms = effective_limits(self.settings, max_rows, timeout_ms)
        t0 = time.perf_counter()
        records, desc = await asyncio.to_thread(self._run_sync, sql, (), rows_cap, ms)
        cap = self.settings.database.max_cell_bytes
        rows = [[json_safe(v, cap) for v in r] for r in records[:rows_cap]]
        return QueryResult(
            columns=[ColumnMeta(name=d[0], type="") for d in desc],
            rows=rows,
            row_count=len(rows),
            truncated=len(records) > rows_cap,
            elapsed_ms=round((time.perf_counter() - t0) * 1000, 3),
        )

    async def explain(self, sql: str) -> dict[str, Any]:
        check_read_query(sql)
        _, ms = effective_limits(self.settings, None, None)
        rows, _ = await asyncio.to_thread(self._run_sync, "EXPLAIN QUERY PLAN " + sql, (), 10_000, ms)
        return {"plan": [list(r) for r in rows]}

    async def catalog_query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        _, ms = effective_limits(self.settings, None, None)
        rows, _ = await asyncio.to_thread(self._run_sync, sql, params, 100_000, ms)
        return [tuple(r) for r in rows]

    async def close(self) -> None:
        return None


class SQLiteEngine:
    traits: EngineTraits = TRAITS
    schemes: tuple[str, ...] = ("sqlite",)
    dialect_notes: str = (
        "SQLite SQL: strftime('%Y-%m', ts), date('now', '-14 days'), no window frames by RANGE."
    )

    # -- the engine's own parser -----------------------------------------------------------

    def native_statements(self, code: str) -> NativeView:
        return NativeView(tuple(_kind(s) for s in _statements(code)))

    def native_refusals(self, view: NativeView, root_is_write: bool = False) -> list[str]:
        return []

    def confirms_rendered(self, sql: str, expected: str) -> bool:
        try:
            return self.native_statements(sql).types == (expected,)
        except NativeSyntaxError:
            return False

    def native_calls(self, sql: str) -> tuple[str | None, set[tuple[str, str]]]:
        kinds = self.native_statements(sql).types
        return (None if kinds == ("SELECT",) else f"SQLite reads {', '.join(kinds) or 'nothing'}"), set()

    # -- reflection -------------------------------------------------------------------------

    async def reflect_tables(self, settings: Settings) -> tuple[list[Any], str]:
        path = Path(file_of(settings.database.url))

        def read() -> list[TableInfo]:
            if not path.exists():
                raise DatabaseUnavailableError(f"no SQLite file {path}", code="DATABASE_NOT_FOUND")
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                out = []
                for name, kind in con.execute(
                    "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                ):
                    cols = tuple(
                        ColumnInfo(c[1], str(c[2]).upper(), not c[3], bool(c[5]))
                        for c in con.execute("SELECT * FROM pragma_table_info(?)", (name,))
                    )
                    out.append(TableInfo(name, cols, schema="main", kind=kind))
                return out
            finally:
                con.close()

        return await asyncio.to_thread(read), path.stem

    def connect_error(self, error: BaseException, url: str, doing: str) -> SqlmodeError:
        if isinstance(error, SqlmodeError):
            return error
        return DatabaseUnavailableError(f"could not {doing} {self.describe_target(url)}: {error}")

    def describe_target(self, url: str) -> str:
        return f"the SQLite file {file_of(url)}"

    # -- execution --------------------------------------------------------------------------

    async def open_executor(self, settings: Settings, snapshot: Any = None) -> Executor:
        return SQLiteExecutor(settings)

    async def open_write_executor(self, settings: Settings) -> Any:
        raise ConfigError("the SQLite engine is read-only", key="code_mode.allow_writes")

    # -- the engine check: not available, so refused -------------------------------------------

    async def function_catalog(self, executor: Executor) -> Any:
        return FunctionCatalog(TRAITS.name)

    async def bound_access(
        self,
        sql: str,
        executor: Executor,
        *,
        snapshot: Any,
        policy: Any,
        written_functions: Sequence[str],
        load_catalog: Callable[[], Awaitable[Any]],
        estimates: bool = True,
    ) -> BoundAccess:
        msg = "SQLite cannot describe what a query reads without running it."
        return BoundAccess(refusal=Violation(code="ENGINE_REFUSED", message=msg))

    # -- grants: none -------------------------------------------------------------------------

    def grant_script(self, settings: Settings, snapshot: Any, **options: Any) -> str:
        raise ConfigError("SQLite has no roles to grant", key="database.url")

    def writer_script(self, settings: Settings, snapshot: Any, *, role: str) -> str:
        raise ConfigError("SQLite has no roles to grant", key="database.url")

    async def apply_grants(self, admin_url: str, script: str) -> str:
        raise ConfigError("SQLite has no roles to grant", key="database.url")

    async def role_exists(self, admin_url: str, role: str) -> bool:
        return False
