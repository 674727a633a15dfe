"""What an LLM actually sends: a query never seen before, beside the floors, in one run.

Every call gets a fresh literal (``... AND o.total > -<n>``), so nothing keyed by the SQL text
helps: not the analyzer's caches, not the engine-confirmation cache, not a policy cache. The same
query sent again ("repeated SQL") is measured beside it and labelled as such. Per dialect, on the
sample warehouse (PostgreSQL as the least-privilege reader), each group of layers runs in
rotation, one call of each per round, so floor and figure see the same machine load:

- validate: ``CodeModeService.validate`` (analysis, engine confirmation, Cedar, token, audit record)
  novel and repeated, beside the floor: sqlglot's parse plus the engine's bound plan of the same
  text (DuckDB ``json_serialize_plan``, PostgreSQL ``EXPLAIN (VERBOSE, FORMAT JSON)``, what the
  engine confirmation asks) on a raw connection. Also TPC-H Q5 (six tables) on DuckDB.
- execute: ``executor.run`` and ``CodeModeService.execute`` (token minted outside the timed region)
  on novel SQL, beside the raw driver on novel SQL (duckdb ``fetchall`` / asyncpg ``fetch``), for
  10 and 1,000 rows.
- a profile (cProfile, every thread) of the novel validate path, attached to the figure.

The stdio and spawn figures beside the trivial MCP server are bench_startup.py's.

    python benchmarks/bench_novel.py [--quick] [--no-postgres]
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import functools
import io
import itertools
import os
import pstats
import threading
from collections.abc import Callable
from typing import Any

import sqlglot
from bench_stack import RawDriver
from common import Results, Target, ainterleaved
from env import BenchEnv
from queries import TPCH, TYPICAL
from queries import TYPICAL_NAME as _TYPICAL_NAME

from sqlmode.service import CodeModeService

GROUP = "novel queries"
# The design targets: ratios to floors measured in the same run (medians).
T_VALIDATE = Target("<=", 2.0, "x floor", "design target", ratio=True)
T_EXEC = {10: Target("<=", 1.25, "x floor", "design target", ratio=True)}
T_EXEC[1000] = Target("<=", 1.5, "x floor", "design target", ratio=True)

assert TYPICAL[0][0] == _TYPICAL_NAME
# The typical query (one join, a filter, a group, an order) with one more predicate whose literal
# changes on every call; ``{n}`` is a fresh integer, and ``total > -n`` keeps every row.
NOVEL_TYPICAL = TYPICAL[0][1].replace(
    "WHERE o.status = 'completed'", "WHERE o.status = 'completed' AND o.total > -{n}"
)
NOVEL_Q5 = TPCH[0][1].replace("r_name = 'ASIA'", "r_name = 'ASIA' AND o_totalprice > -{n}")
NOVEL_ROWS = (
    "SELECT id, customer_id, status, total, created_at FROM orders WHERE id > -{n} ORDER BY id LIMIT {rows}"
)
assert "{n}" in NOVEL_TYPICAL and "{n}" in NOVEL_Q5

_counter = itertools.count(1_000_001)


def fresh(template: str, **kw: Any) -> str:
    """The template with a literal no earlier call used (in this process)."""
    return template.format(n=next(_counter), **kw)


# -- floors --------------------------------------------------------------------------------------


class PlanFloor:
    """sqlglot's parse plus the engine's own plan of the same text, on a raw driver connection."""

    def __init__(self, raw: RawDriver):
        self.raw = raw
        self.dialect = raw.dialect

    async def __call__(self, sql: str) -> Any:
        sqlglot.parse_one(sql, read=self.dialect)
        con = self.raw._con
        if self.dialect == "duckdb":
            # json_serialize_plan: the unoptimized bound plan, what the engine confirmation reads.
            return con.execute("SELECT json_serialize_plan(?::VARCHAR)", [sql]).fetchall()
        return await con.fetchval("EXPLAIN (VERBOSE, FORMAT JSON) " + sql)


async def _validate(service: CodeModeService, sql: str) -> Any:
    v = await service.validate(sql, user=None, session="bench")
    if not v.is_valid:
        raise RuntimeError(f"refused: {[x.code for x in v.violations]}: {sql!r}")
    return v


def _fresh_arg(template: str, **kw: Any) -> Callable[[], Any]:
    async def setup() -> str:
        return fresh(template, **kw)

    return setup


# -- validate ------------------------------------------------------------------------------------


async def validate_figures(
    results: Results, d: str, service: CodeModeService, raw: RawDriver, name: str, template: str
) -> None:
    """Novel validate, repeated validate and the floor, in rotation."""
    floor = PlanFloor(raw)
    same = fresh(template)
    await _validate(service, same)
    st = await ainterleaved(
        [
            ("floor", floor, _fresh_arg(template)),
            ("novel", lambda sql: _validate(service, sql), _fresh_arg(template)),
            ("repeated", lambda: _validate(service, same), None),
        ],
        results.budget,
    )
    p = f"novel.{d}.{name}"
    what = "typical query" if name == "typical" else "TPC-H Q5 (6 tables)"
    plan = "json_serialize_plan" if d == "duckdb" else "EXPLAIN (VERBOSE, FORMAT JSON)"
    results.add(f"{p}.floor", GROUP, f"{d}: floor: sqlglot parse + {plan}, {what}", st["floor"])
    results.add(
        f"{p}.validate",
        GROUP,
        f"{d}: validate_code in process, novel {what}",
        st["novel"],
        floor=f"{p}.floor",
        target=T_VALIDATE if name == "typical" else None,
        headline=True,
        note="a fresh literal per call: analysis, engine confirmation, Cedar, token, audit record",
    )
    results.add(
        f"{p}.validate_repeated",
        GROUP,
        f"{d}: validate_code in process, repeated SQL (caches warm), {what}",
        st["repeated"],
        floor=f"{p}.floor",
        headline=name == "typical",
    )


# -- execute -------------------------------------------------------------------------------------


class DurableRecord:
    """The floor of the audit intent: one record-sized line appended and ``fdatasync``ed on a worker
    thread, in the audit log's folder (the same disk), as the file sink does before a query runs."""

    def __init__(self, audit_path: str):
        folder = os.path.dirname(os.path.abspath(audit_path))
        self.path = os.path.join(folder, f"fsync-floor-{os.getpid()}.jsonl")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._line = b"x" * 400 + b"\n"

    def _sync(self) -> None:
        os.write(self._fd, self._line)
        os.fdatasync(self._fd)

    async def __call__(self) -> None:
        await asyncio.to_thread(self._sync)

    def close(self) -> None:
        os.close(self._fd)
        with contextlib.suppress(OSError):
            os.remove(self.path)


async def execute_figures(results: Results, d: str, service: CodeModeService, raw: RawDriver) -> None:
    """executor.run and service.execute on novel SQL beside the raw driver on novel SQL (and what a
    durable record alone costs, in the same rounds)."""

    async def token(rows: int) -> tuple[str, str]:
        v = await _validate(service, fresh(NOVEL_ROWS, rows=rows))
        return v.normalized_code, v.approval_token or ""

    async def execute(code: str, tok: str) -> Any:
        return await service.execute(code, tok, user=None, session="bench")

    audit_path = service.settings.audit.path
    durable = DurableRecord(audit_path) if audit_path else None
    try:
        for rows in (10, 1000):
            await _execute_rows(results, d, service, raw, rows, execute, token, durable)
    finally:
        if durable is not None:
            durable.close()


async def _execute_rows(
    results: Results,
    d: str,
    service: CodeModeService,
    raw: RawDriver,
    rows: int,
    execute: Callable[..., Any],
    token: Callable[[int], Any],
    durable: DurableRecord | None,
) -> None:
    layers: list[Any] = [
        ("raw", raw.fetch, _fresh_arg(NOVEL_ROWS, rows=rows)),
        ("executor", lambda sql: service.executor.run(sql), _fresh_arg(NOVEL_ROWS, rows=rows)),
        ("service", execute, functools.partial(token, rows)),
    ]
    if durable is not None:
        layers.append(("fsync", durable, None))
    st = await ainterleaved(layers, results.budget)
    p = f"novel.{d}.rows{rows}"
    if "fsync" in st:
        results.add(
            f"{p}.fsync",
            GROUP,
            f"{d}: floor of the audit intent: one record appended + fdatasync on a worker thread "
            f"(in the {rows:,}-row rounds)",
            st["fsync"],
        )
    driver = "duckdb fetchall" if d == "duckdb" else "asyncpg fetch"
    results.add(f"{p}.raw", GROUP, f"{d}: floor: raw driver ({driver}), {rows:,} rows, novel SQL", st["raw"])
    results.add(
        f"{p}.executor",
        GROUP,
        f"{d}: execute (executor.run), {rows:,} rows, novel SQL",
        st["executor"],
        floor=f"{p}.raw",
        target=T_EXEC[rows],
        note="limits, read-only session, deadline, JSON-safe values",
    )
    results.add(
        f"{p}.service",
        GROUP,
        f"{d}: execute_code in process (service.execute), {rows:,} rows, novel SQL",
        st["service"],
        floor=f"{p}.raw",
        target=T_EXEC[rows],
        note="token check, re-analysis or its cache, Cedar, audit intent + outcome, the rows",
    )


# -- profile -------------------------------------------------------------------------------------


# Waiting, not work: the event loop's poll, idle worker threads, lock waits.
IDLE = ("select.epoll", "SimpleQueue", "_thread.lock", "_thread.RLock")


class ThreadProfiles:
    """cProfile on the calling thread and on every thread started while active.

    The service analyzes on worker threads and the DuckDB executor calls on its own threads; a
    profile of the event loop alone would show them as waiting.
    """

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        p = cProfile.Profile()
        with self._lock:
            self.profiles.append(p)
        p.enable()  # replaces this hook on the new thread

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._hook)
        main = cProfile.Profile()
        self.profiles.append(main)
        main.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        self.profiles[0].disable()
        threading.setprofile(None)

    def clear(self) -> None:
        for p in self.profiles:
            p.clear()

    def top(self, n: int = 20) -> dict[str, list[dict[str, Any]]]:
        stats: pstats.Stats | None = None
        for p in self.profiles:
            p.create_stats()
            if not getattr(p, "stats", None):
                continue
            if stats is None:
                stats = pstats.Stats(p, stream=io.StringIO())
            else:
                stats.add(p)
        if stats is None:
            return {}
        # typeshed's pstats.Stats does not declare .stats, the per-function table print_stats reads
        raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
        rows = []
        for (file, line, fn), (_, ncalls, tt, ct, _) in raw.items():
            if any(idle in fn for idle in IDLE):
                continue
            short = file.split("site-packages/")[-1].split("/sqlmode/")[-1] if file != "~" else ""
            name = f"{short}:{line}({fn})" if short else fn
            ours = "/sqlmode/" in file
            rows.append({"function": name, "calls": ncalls, "tottime": tt, "cumtime": ct, "ours": ours})

        def out(r: dict[str, Any]) -> dict[str, Any]:
            return {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items() if k != "ours"}

        by_own = sorted(rows, key=lambda r: -r["tottime"])[:n]
        # sqlmode's own functions by inclusive time: which stage of the path the time goes to.
        by_cum = sorted((r for r in rows if r["ours"]), key=lambda r: -r["cumtime"])[:n]
        return {"own": [out(r) for r in by_own], "cumulative_sqlmode": [out(r) for r in by_cum]}


async def profile_validate(results: Results, settings: Any, figure_id: str) -> None:
    """Top functions (own time, all threads) of novel validates, attached to ``figure_id``."""
    fig = results.figures.get(figure_id)
    if fig is None:
        return
    calls = 5 if results.tiny else 60 if results.quick else 300
    with ThreadProfiles() as prof:
        # The service opens inside the profile so that its worker threads are profiled too.
        async with CodeModeService(settings) as service:
            for _ in range(3):
                await _validate(service, fresh(NOVEL_TYPICAL))
            prof.clear()  # opening the service and first calls are not the path under test
            for _ in range(calls):
                await _validate(service, fresh(NOVEL_TYPICAL))
            top = prof.top()  # before the service closes: closing is not the path either
    fig.extra["profile"] = {"calls": calls, "tool": "cProfile, all threads, seconds", **top}


# -- run -----------------------------------------------------------------------------------------


async def dialect(env: BenchEnv, results: Results, d: str, settings: Any) -> None:
    async with CodeModeService(settings) as service, RawDriver(settings) as raw:
        await validate_figures(results, d, service, raw, "typical", NOVEL_TYPICAL)
        await execute_figures(results, d, service, raw)


async def tpch_q5(env: BenchEnv, results: Results) -> None:
    """Novel TPC-H Q5 on DuckDB over the (empty) TPC-H schema bench_validate builds."""
    from bench_validate import open_policy, tpch_schema_path

    path = tpch_schema_path(env)
    settings = env.settings("duckdb", overrides=open_policy(f"duckdb:///{path}"))
    async with CodeModeService(settings) as service, RawDriver(settings) as raw:
        await validate_figures(results, "duckdb", service, raw, "tpch_q5", NOVEL_Q5)


async def run(env: BenchEnv, results: Results) -> None:
    settings = env.settings("duckdb")
    await dialect(env, results, "duckdb", settings)
    await tpch_q5(env, results)
    pg = await env.postgres_reader_url()
    if pg is None:
        results.error("bench_novel", env.postgres_error or "no PostgreSQL: postgres figures skipped")
    else:
        await dialect(env, results, "postgres", env.settings("postgres", url=pg))
    # After the timings: the profiler slows every call.
    await profile_validate(results, settings, "novel.duckdb.typical.validate")
    if pg is not None:
        await profile_validate(results, env.settings("postgres", url=pg), "novel.postgres.typical.validate")


if __name__ == "__main__":
    from env import standalone

    standalone(run, __doc__)
