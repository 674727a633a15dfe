"""Engine confirmation (confirmation target): what asking the database adds to validate_code.

Per dialect, on the sample warehouse (PostgreSQL as the least-privilege reader), for the typical
query, measured side by side (interleaved call by call, so both see the same machine load):

- validate_code with ``code_mode.engine_confirmation`` off, on with the plan cache warm (the same
  query validated again: the case the cache is for, e.g. validate then execute), and on with the
  cache cleared before every call (a query never seen: the database plans it every time);
- the increments on - off, warm and cold (targets: +3 ms DuckDB, +5 ms PostgreSQL, median);
- the parts of a cold confirmation: pglast on the normalized code (Postgres),
  the plan (``EXPLAIN (VERBOSE, FORMAT JSON)`` / DuckDB's JSON plan, through the executor), DuckDB's
  bound plan (``json_serialize_plan``), the round-trip re-parse of the normalized code (sqlglot,
  uncached), and the function catalog load (once per schema snapshot, not per query).

    python benchmarks/bench_confirm.py [--quick] [--no-postgres]
"""

from __future__ import annotations

from typing import Any

import sqlglot
from common import Results, Target, abench, ainterleaved, bench
from env import BenchEnv, standalone
from queries import TYPICAL

from sqlmode.analyze import roundtrip
from sqlmode.engines import engine_named
from sqlmode.engines._duckdb_plan import BOUND_PLAN_SQL
from sqlmode.service import CodeModeService

GROUP = "confirmation"
TARGET = {
    "duckdb": Target("<=", 3.0, "ms", "confirmation target"),
    "postgres": Target("<=", 5.0, "ms", "confirmation target"),
}
SQL = TYPICAL[0][1]


async def run(env: BenchEnv, results: Results) -> None:
    # The audit log is off on both sides: its fsync is the same with and without confirmation and
    # its spread (milliseconds on a busy disk) would drown the increment being measured.
    await dialect_figures(env, results, "duckdb", env.settings("duckdb", audit=False))
    reader = await env.postgres_reader_url()
    if reader is None:
        results.error("bench_confirm", env.postgres_error or "PostgreSQL unavailable: no Postgres figures")
        return
    await dialect_figures(env, results, "postgres", env.settings("postgres", url=reader, audit=False))


async def dialect_figures(env: BenchEnv, results: Results, d: str, settings: Any) -> None:
    off_settings = settings.model_copy(deep=True)
    off_settings.code_mode.engine_confirmation = False
    p = f"confirm.{d}.typical"
    b = results.budget
    async with CodeModeService(settings) as on, CodeModeService(off_settings) as off:
        first = await on.validate(SQL, session="bench")
        if not first.is_valid:
            results.error("bench_confirm", f"{d}: the typical query was refused: {first.violations}")
            return
        confirmer = on.confirmer
        assert confirmer is not None

        async def clear() -> tuple[()]:
            confirmer.clear()
            return ()

        stats = await ainterleaved(
            [
                ("off", lambda: off.validate(SQL, session="bench"), None),
                ("warm", lambda: on.validate(SQL, session="bench"), None),
                ("cold", lambda: on.validate(SQL, session="bench"), clear),
            ],
            b,
        )
        results.add(f"{p}.validate_off", GROUP, f"{d}: validate_code, confirmation off", stats["off"])
        results.add(
            f"{p}.validate_warm", GROUP, f"{d}: validate_code, confirmation on, plan cached", stats["warm"]
        )
        label = f"{d}: validate_code, confirmation on, plan not cached"
        results.add(f"{p}.validate_cold", GROUP, label, stats["cold"])
        results.add(
            f"{p}.increment_warm",
            GROUP,
            f"{d}: confirmation increment, plan cache warm",
            value=stats["warm"].median - stats["off"].median,
            target=TARGET[d],
            note="median on (cached) minus median off, interleaved",
        )
        results.add(
            f"{p}.increment_cold",
            GROUP,
            f"{d}: confirmation increment, plan cache cold",
            value=stats["cold"].median - stats["off"].median,
            target=TARGET[d],
            headline=True,
            note="median on (cache cleared before each call) minus median off, interleaved",
        )

        # -- parts of a cold confirmation ------------------------------------------------------
        normalized = first.normalized_code
        small = b.scaled(0.5)
        if d == "postgres":  # DuckDB's check is extract_statements inside the executor's explain
            s = bench(lambda: engine_named(d).native_calls(normalized), small)
            results.add(f"{p}.engine_parse", GROUP, f"{d}: pglast on the normalized code", s)
        s = await abench(lambda: on.executor.explain(normalized), small)
        results.add(f"{p}.explain", GROUP, f"{d}: the plan through the executor (not run)", s)
        if d == "duckdb":
            args = [normalized]
            s = await abench(lambda: on.executor.catalog_query(BOUND_PLAN_SQL, args), small)
            results.add(f"{p}.bound_plan", GROUP, f"{d}: the bound plan (json_serialize_plan)", s)
        tree = sqlglot.parse_one(normalized, read=d)
        uncached = roundtrip._reparse.__wrapped__
        s = bench(lambda: uncached(normalized, d).tree == tree, small)
        results.add(f"{p}.round_trip", GROUP, f"{d}: round-trip re-parse and compare, uncached", s)
        s = await abench(lambda: engine_named(d).function_catalog(on.executor), b.scaled(0.2))
        results.add(
            f"{p}.function_catalog",
            GROUP,
            f"{d}: function catalog load (once per schema snapshot)",
            s,
            note="not paid per query",
        )


if __name__ == "__main__":
    standalone(run, __doc__)
