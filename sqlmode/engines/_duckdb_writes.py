"""DuckDB writes: the configured file opened read-write, shared in-process with the read executor
(which then reads inside read-only transactions, see _duckdb_exec.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import duckdb

from ..config import Settings
from ..errors import ExecutionError, NotAQueryError
from ..execute.convert import convert_rows
from ..execute.writes import WriteResult, check_verb, check_write_text, over_cap, write_limits
from ..models import ColumnMeta
from ._duckdb_convert import duckdb_plan
from ._duckdb_exec import DuckDBExecutor, scrubbed_error

__all__ = ["DuckDBWriteExecutor"]


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


class DuckDBWriteExecutor(DuckDBExecutor):
    """Capped single-statement writes on the DuckDB file, opened read-write."""

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self._read_only = False

    async def start(self) -> None:
        from ._duckdb_exec import open_duckdb

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
            check_verb(self.settings, verb)
            returning = _duck_has_returning(sql)
            cur.execute("BEGIN TRANSACTION")
            try:
                try:
                    cur.execute(st)
                except duckdb.InterruptException:
                    raise  # a timeout or cancel: _call maps it knowing which
                except duckdb.Error as e:
                    raise scrubbed_error(e, sql) from e
                desc = cur.description or []
                records, affected = _duck_affected(cur, desc, returning, cap)
                if not returning:
                    records, desc = [], []
                if affected > cap:
                    raise over_cap(verb, affected, cap)
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
        cap, ms = write_limits(self.settings, max_affected, timeout_ms)
        check_write_text(self.settings, sql)
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
