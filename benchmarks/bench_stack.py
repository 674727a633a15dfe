"""Execution through every layer, on the same SQL and data, side by side in one run.

For 10, 1,000 and max_rows rows (max_rows raised to 10,000 for this benchmark) on DuckDB and on
PostgreSQL:
- floor: the raw driver on the same normalized SQL (DuckDB ``execute().fetchall()`` on a
  connection with sqlmode's config; asyncpg ``fetch`` on one connection as the same reader role);
- ``executor.run`` (limits, read-only session, JSON-safe values; the target verdict for it is
  bench_execute.py's, which alternates it with the raw driver call by call);
- ``CodeModeService.execute`` (re-analysis, token verification, Cedar, two audit records);
- the MCP ``execute_code`` tool call through an in-process client (a fresh token per call,
  minted outside the timed region);
- peak Python memory (tracemalloc) of one max_rows result, raw vs executor vs service.
The four layers run in rotation, one call each per round, so they see the same machine load.

    python benchmarks/bench_stack.py [--quick] [--no-postgres]
"""

from __future__ import annotations

from functools import partial
from typing import Any

from common import Results, abench, ainterleaved, peak_memory
from env import BenchEnv
from mcp import Client

from sqlmode.engines import engine_for_url
from sqlmode.server import build_server
from sqlmode.service import CodeModeService

GROUP = "execution"
MAX_ROWS = 10_000
ROW_COUNTS = (10, 1000, MAX_ROWS)
COLUMNS = "id, customer_id, status, total, created_at"


def rows_sql(n: int) -> str:
    return f"SELECT {COLUMNS} FROM orders ORDER BY id LIMIT {n}"


class RawDriver:
    """The floor: the database driver alone, on one connection, as sqlmode's own role."""

    def __init__(self, settings: Any):
        self.settings = settings
        self.dialect = engine_for_url(settings.database.url).traits.name
        self._con: Any = None

    async def __aenter__(self) -> RawDriver:
        db = self.settings.database
        if self.dialect == "duckdb":
            import duckdb

            # Same file and config as the executor: DuckDB refuses a second config in one process.
            self._con = duckdb.connect(db.duckdb_path, read_only=True, config=dict(db.duckdb_config()))
        else:
            import asyncpg

            self._con = await asyncpg.connect(db.url.replace("postgresql+asyncpg://", "postgresql://"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.dialect == "duckdb":
            self._con.close()
        else:
            await self._con.close()

    async def fetch(self, sql: str) -> list[Any]:
        if self.dialect == "duckdb":
            return self._con.execute(sql).fetchall()
        return await self._con.fetch(sql)


async def _layers(env: BenchEnv, results: Results, dialect: str, settings: Any) -> None:
    budget = results.budget
    d = dialect
    async with (
        CodeModeService(settings) as service,
        RawDriver(settings) as raw,
        Client(build_server(service)) as client,
    ):

        async def svc_token(sql: str) -> tuple[str, str]:
            v = await service.validate(sql, user=None, session="bench")
            if not v.is_valid:
                raise RuntimeError(f"{sql!r} refused: {[x.code for x in v.violations]}")
            return v.normalized_code, v.approval_token or ""

        async def mcp_token(sql: str) -> tuple[str, str]:
            r = await client.call_tool("validate_code", {"code": sql})
            s = r.structured_content or {}
            if r.is_error or not s.get("approval_token"):
                raise RuntimeError(f"{sql!r} refused through MCP: {r.content}")
            return s["normalized_code"], s["approval_token"]

        async def mcp_execute(code: str, token: str) -> Any:
            r = await client.call_tool("execute_code", {"code": code, "approval_token": token})
            if r.is_error:
                raise RuntimeError(f"execute_code failed: {r.content}")
            return r

        for n in (10,) if results.tiny else (10, 1000) if results.quick else ROW_COUNTS:
            b = budget if n <= 1000 else budget.scaled(0.3)
            sql = rows_sql(n)
            normalized, _ = await svc_token(sql)
            p = f"exec.{d}.rows{n}"
            got = len(await raw.fetch(normalized))
            st = await ainterleaved(
                [
                    ("raw", lambda q=normalized: raw.fetch(q), None),
                    ("executor", lambda q=normalized: service.executor.run(q, max_rows=MAX_ROWS), None),
                    (
                        "service",
                        lambda code, tok: service.execute(code, tok, user=None, session="bench"),
                        partial(svc_token, sql),
                    ),
                    ("mcp", mcp_execute, partial(mcp_token, sql)),
                ],
                b,
            )
            results.add(f"{p}.raw", GROUP, f"{d}: raw driver, {got:,} rows, repeated SQL", st["raw"])
            results.add(
                f"{p}.executor",
                GROUP,
                f"{d}: executor.run, {got:,} rows, repeated SQL",
                st["executor"],
                floor=f"{p}.raw",
                note="context: the target verdict is bench_execute.py's figure",
            )
            results.add(
                f"{p}.service",
                GROUP,
                f"{d}: service.execute, {got:,} rows, repeated SQL",
                st["service"],
                floor=f"{p}.raw",
                headline=n <= 1000,
                note="re-analysis, token check, Cedar, two audit records",
            )
            results.add(
                f"{p}.mcp",
                GROUP,
                f"{d}: MCP execute_code (in process), {got:,} rows, repeated SQL",
                st["mcp"],
                floor=f"{p}.raw",
                headline=n <= 1000,
            )
            # The SDK client re-validates structured content against the tool's output schema
            # (jsonschema): a client-side cost inside the figure above, shown on its own.
            sample = await mcp_execute(*(await mcp_token(sql)))
            s_val = await abench(
                lambda r=sample: client.session.validate_tool_result("execute_code", r), b.scaled(0.5)
            )
            results.add(
                f"{p}.mcp_client_validation",
                GROUP,
                f"{d}: of which the SDK client's output-schema check, {got:,} rows",
                s_val,
                note="mcp.ClientSession.validate_tool_result (jsonschema) on the same result",
            )
        # Peak memory of the largest result, per layer (one call each, tracemalloc on).
        n = 10 if results.tiny else 1000 if results.quick else MAX_ROWS
        sql = rows_sql(n)
        normalized, _ = await svc_token(sql)
        m_raw = await peak_memory(lambda: raw.fetch(normalized))
        m_exec = await peak_memory(lambda: service.executor.run(normalized, max_rows=MAX_ROWS))
        code, tok = await svc_token(sql)
        m_svc = await peak_memory(lambda: service.execute(code, tok, user=None, session="bench"))
        mib = 1024 * 1024
        results.add(
            f"mem.{d}.raw",
            "memory",
            f"{d}: peak Python heap, raw driver, {n:,} rows",
            value=m_raw.peak_bytes / mib,
            unit="MiB",
        )
        results.add(
            f"mem.{d}.executor",
            "memory",
            f"{d}: peak Python heap, executor.run, {n:,} rows",
            value=m_exec.peak_bytes / mib,
            unit="MiB",
            floor=f"mem.{d}.raw",
            headline=True,
            rss_peak_mib=round(m_exec.rss_peak_bytes / mib, 1),
        )
        results.add(
            f"mem.{d}.service",
            "memory",
            f"{d}: peak Python heap, service.execute, {n:,} rows",
            value=m_svc.peak_bytes / mib,
            unit="MiB",
            floor=f"mem.{d}.raw",
        )


async def run(env: BenchEnv, results: Results) -> None:
    overrides = {"code_mode": {"max_rows": MAX_ROWS}}
    await _layers(env, results, "duckdb", env.settings("duckdb", overrides=overrides))
    pg = await env.postgres_reader_url()
    if pg is None:
        results.error("bench_stack", env.postgres_error or "no PostgreSQL: postgres figures skipped")
        return
    await _layers(env, results, "postgres", env.settings("postgres", url=pg, overrides=overrides))


if __name__ == "__main__":
    from env import standalone

    standalone(run, __doc__)
