"""Data scale: the long-tail question on the sample warehouse at scale 1 and 10.

Per dialect and scale: the raw driver running the normalized SQL (the floor: what the database
needs to answer), ``executor.run`` on it, and sqlmode's whole path (``service.validate`` then
``service.execute``). Scale 10 is about 300k orders and 800k order items.

    python benchmarks/bench_scale.py [--quick] [--no-postgres]
"""

from __future__ import annotations

import time
from typing import Any

from bench_stack import RawDriver
from common import Results, abench
from env import BenchEnv

from sqlmode.sample import long_tail_sql
from sqlmode.service import CodeModeService

GROUP = "data scale"


async def _one(results: Results, dialect: str, scale: float, settings: Any) -> None:
    sql = long_tail_sql(dialect)
    b = results.budget.scaled(0.3 if scale <= 1 else 0.15)
    d = dialect
    p = f"scale.{d}.s{scale:g}"
    async with CodeModeService(settings) as service, RawDriver(settings) as raw:
        v = await service.validate(sql, user=None, session="bench")
        if not v.is_valid:
            results.error(
                "bench_scale", f"{d} scale {scale:g}: long-tail SQL refused: {[x.code for x in v.violations]}"
            )
            return
        code = v.normalized_code
        s_raw = await abench(lambda: raw.fetch(code), b)
        rows = len(await raw.fetch(code))
        results.add(
            f"{p}.raw",
            GROUP,
            f"{d}, scale {scale:g}: long-tail SQL, raw driver",
            s_raw,
            rows=rows,
        )
        s_exec = await abench(lambda: service.executor.run(code), b)
        results.add(f"{p}.executor", GROUP, f"{d}, scale {scale:g}: executor.run", s_exec, floor=f"{p}.raw")

        async def whole() -> None:
            vv = await service.validate(sql, user=None, session="bench")
            await service.execute(vv.normalized_code, vv.approval_token or "", user=None, session="bench")

        s_all = await abench(whole, b)
        results.add(
            f"{p}.validate_execute",
            GROUP,
            f"{d}, scale {scale:g}: validate + execute (service)",
            s_all,
            floor=f"{p}.raw",
            headline=True,
            rows=rows,
        )


async def run(env: BenchEnv, results: Results) -> None:
    for scale in (1,) if results.quick else (1, 10):
        t0 = time.perf_counter()
        path = env.duckdb_path(scale)
        built = time.perf_counter() - t0
        if built > 0.5:
            results.add(
                f"scale.duckdb.s{scale}.build",
                GROUP,
                f"build the sample DuckDB, scale {scale}",
                value=built * 1000,
                note="one measurement",
            )
        await _one(results, "duckdb", scale, env.settings("duckdb", url=f"duckdb:///{path}"))
    if env.want_postgres:
        for scale in (1, 10) if not results.quick else (1,):
            t0 = time.perf_counter()
            url = await env.postgres_reader_url(scale)
            if url is None:
                results.error("bench_scale", env.postgres_error or "no PostgreSQL: postgres figures skipped")
                return
            if scale != 1:
                results.add(
                    f"scale.postgres.s{scale}.load",
                    GROUP,
                    f"load the sample into PostgreSQL, scale {scale}",
                    value=(time.perf_counter() - t0) * 1000,
                    note="one measurement, includes ANALYZE",
                )
            await _one(results, "postgres", scale, env.settings("postgres", url=url))


if __name__ == "__main__":
    from env import standalone

    standalone(run, __doc__)
