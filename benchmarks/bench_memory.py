"""Memory: does the process plateau over many novel queries, and what does a large result cost?

- Round trips: ``CodeModeService.validate`` + ``execute`` in process on DuckDB (and PostgreSQL),
  20,000 novel queries (a fresh literal each, so every cache keyed by SQL text fills up and must
  evict; ``--quick`` does 2,000). The resident set size (RSS) and the interpreter's allocated
  blocks are sampled over time; the figure is the growth over the last half of the run and the
  slope there (MiB per 1,000 round trips): a plateau has a slope near zero. DuckDB's own memory
  grows with the distinct queries it plans and runs for about 20,000 of them: the raw driver
  alone does the same engine work (bound plan + run of the same novel queries) as a floor, and
  the DuckDB target is the growth beyond it.
- Caches: after the round trips, every cache in the process that belongs to sqlmode is listed with
  its size and bound: ``functools.lru_cache`` wrappers (found by walking the heap), module-level
  dicts, and the dict/set attributes of the service's parts. An unbounded one shows as a size that
  grew with the number of queries.
- Peak heap (tracemalloc) of a 100,000-row result with ``code_mode.max_rows`` raised to 100,000:
  the raw driver, ``executor.run``, ``service.execute`` and the MCP ``execute_code`` tool call (in
  process), one call each. Their ratios to the raw driver say how many copies of the rows are
  alive at once (the driver's tuples, the JSON-safe rows, the tool result's JSON text).

    python benchmarks/bench_memory.py [--quick] [--no-postgres]
"""

from __future__ import annotations

import functools
import gc
import os
import resource
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from bench_novel import NOVEL_TYPICAL, fresh
from bench_stack import RawDriver
from common import Results, Target, peak_memory, run_sync
from env import BenchEnv
from mcp import Client

from sqlmode.server import build_server, query_result
from sqlmode.service import CodeModeService

GROUP = "memory"
DOC = Path(__file__).resolve().parent.parent / "docs" / "caches.md"
MIB = 1024 * 1024
# A plateau: the last half of the run adds less than this (a leak of 100 bytes a round trip over
# 10,000 round trips is about 1 MiB).
T_PLATEAU = Target("<=", 2.0, "MiB", "memory target: RSS plateaus")
BIG_ROWS = 100_000
VARIANTS = {"ttl5": "control: token TTL 5 s, so the state store's used nonces expire"}
# 4 x 30,087 orders at scale 1: more than 100,000 rows of the usual five columns.
BIG_SQL = (
    " UNION ALL ".join(["SELECT id, customer_id, status, total, created_at FROM orders"] * 4)
    + " LIMIT {rows}"
)


def rss_bytes() -> int:
    """Current resident set size (Linux /proc; elsewhere the peak, which only grows)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(r if sys.platform == "darwin" else r * 1024)


def slope_per_1000(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of value against round trips, per 1,000 round trips."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    return 1000 * sxy / sxx if sxx else 0.0


async def _round_trip(service: CodeModeService, sql: str) -> None:
    v = await service.validate(sql, user=None, session="bench")
    if not v.is_valid:
        raise RuntimeError(f"refused: {[x.code for x in v.violations]}")
    await service.execute(v.normalized_code, v.approval_token or "", user=None, session="bench")


async def round_trips(results: Results, d: str, settings: Any, total: int, variant: str = "") -> None:
    """``total`` novel validate + execute round trips; RSS and allocated blocks sampled 40 times."""
    every = max(1, total // 40)
    rss: list[tuple[int, float]] = []
    blocks: list[tuple[int, float]] = []
    async with CodeModeService(settings) as service:
        for _ in range(min(50, total)):  # imports, first plans, pools: not what this measures
            await _round_trip(service, fresh(NOVEL_TYPICAL))
        before = _containers(service)
        t0 = time.perf_counter()
        idle = rss_bytes() / MIB
        for i in range(1, total + 1):
            await _round_trip(service, fresh(NOVEL_TYPICAL))
            if i % every == 0 or i == total:
                rss.append((i, rss_bytes() / MIB))
                blocks.append((i, float(sys.getallocatedblocks())))
        elapsed = time.perf_counter() - t0
        caches = cache_inventory(service, before)
    half = [p for p in rss if p[0] > total / 2]
    at_half = min(half, key=lambda p: p[0])[1] if half else idle
    growth = rss[-1][1] - at_half
    bhalf = [p for p in blocks if p[0] > total / 2]
    p = f"mem.{d}.round_trips{'_' + variant if variant else ''}"
    what = f" ({VARIANTS[variant]})" if variant else ""
    results.add(
        f"{p}.rss_end",
        GROUP,
        f"{d}: RSS after {total:,} novel validate + execute round trips{what}",
        value=rss[-1][1],
        unit="MiB",
        rss_after_warmup_mib=round(idle, 1),
        rss_samples_mib=[(i, round(v, 1)) for i, v in rss],
        seconds=round(elapsed, 1),
    )
    results.add(
        f"{p}.growth_last_half",
        GROUP,
        f"{d}: RSS growth over the last half of {total:,} novel round trips{what}",
        value=growth,
        unit="MiB",
        target=None if d == "duckdb" else T_PLATEAU,
        slope_mib_per_1000=round(slope_per_1000(half), 4),
        allocated_blocks_slope_per_1000=round(slope_per_1000(bhalf), 1),
        allocated_blocks_end=int(blocks[-1][1]),
        caches=caches,
        note="slope over the last half in extra; allocated blocks = sys.getallocatedblocks()",
        driver_alone=raw_growth_id(variant) if d == "duckdb" else None,
    )
    raw = results.figures.get(raw_growth_id(variant))
    if d == "duckdb" and raw is not None and raw.value is not None:
        # DuckDB's native memory keeps growing with distinct query texts for about 20,000 of them
        # (the raw driver alone shows it, same queries, same window): the plateau sqlmode answers
        # for is its growth beyond the driver's own.
        results.add(
            f"{p}.growth_beyond_driver",
            GROUP,
            f"{d}: RSS growth over the last half of {total:,} novel round trips{what}, beyond the "
            "raw driver's own growth on the same queries",
            value=growth - raw.value,
            unit="MiB",
            target=T_PLATEAU,
            growth_mib=round(growth, 2),
            driver_growth_mib=round(raw.value, 2),
        )


def raw_growth_id(variant: str = "") -> str:
    return f"mem.duckdb.raw_driver{'_' + variant if variant else ''}.growth_last_half"


async def raw_driver_growth(results: Results, settings: Any, total: int, variant: str = "") -> None:
    """The floor of RSS growth: the DuckDB driver alone doing a round trip's engine work ``total`` times.

    It runs just before the round trips it is the floor of (``variant``), in the same process:
    what the process's allocator holds from earlier runs weighs on both alike.

    Each time, on a fresh literal of the round trips' query: its bound plan (``json_serialize_plan``,
    what validate asks DuckDB for) and its run (what execute asks for). DuckDB's own memory grows
    with the number of distinct query texts it has planned and run; whatever of sqlmode's growth
    the raw driver shows too is not sqlmode's.
    """
    every = max(1, total // 40)
    rss: list[tuple[int, float]] = []

    async def engine_work(sql: str) -> None:
        raw._con.execute("SELECT json_serialize_plan(?::VARCHAR)", [sql]).fetchall()
        await raw.fetch(sql)

    async with RawDriver(settings) as raw:
        for _ in range(min(50, total)):
            await engine_work(fresh(NOVEL_TYPICAL))
        for i in range(1, total + 1):
            await engine_work(fresh(NOVEL_TYPICAL))
            if i % every == 0 or i == total:
                rss.append((i, rss_bytes() / MIB))
    half = [p for p in rss if p[0] > total / 2]
    start = min(half, key=lambda p: p[0])[1] if half else rss[0][1]
    what = f" (before the {VARIANTS[variant]} run)" if variant else ""
    results.add(
        raw_growth_id(variant),
        GROUP,
        f"duckdb: floor: RSS growth over the last half of {total:,} novel queries planned and run, "
        f"raw driver alone{what}",
        value=rss[-1][1] - start,
        unit="MiB",
        slope_mib_per_1000=round(slope_per_1000(half), 4),
        rss_samples_mib=[(i, round(v, 1)) for i, v in rss],
    )


# -- caches --------------------------------------------------------------------------------------


def _size(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None


def documented_bounds() -> dict[str, str]:
    """docs/caches.md's table: cache name (as written there) -> its bound."""
    out: dict[str, str] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].startswith("`") and cells[0].endswith("`"):
            out[cells[0].strip("`")] = cells[3]
    return out


def _containers(service: CodeModeService) -> dict[str, dict[str, Any]]:
    """Cache-like containers of sqlmode in this process, by a name docs/caches.md would use."""
    found: dict[str, dict[str, Any]] = {}
    for obj in gc.get_objects():
        if type(obj).__name__ == "_lru_cache_wrapper" and str(getattr(obj, "__module__", "")).startswith(
            "sqlmode"
        ):
            info = obj.cache_info()
            found[obj.__qualname__] = {
                "where": obj.__module__,
                "kind": "lru_cache",
                "size": info.currsize,
                "lru_bound": info.maxsize,
            }
    for name, mod in sorted(sys.modules.items()):
        if not name.startswith("sqlmode") or mod is None:
            continue
        for attr, value in vars(mod).items():
            if isinstance(value, dict | OrderedDict | set) and not attr.startswith("__"):
                found[attr] = {"where": name, "kind": type(value).__name__, "size": len(value)}
    # The service's parts and their parts (two levels): dicts, sets and OrderedDicts they hold.
    seen: set[int] = set()

    def walk(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or not hasattr(obj, "__dict__"):
            return
        seen.add(id(obj))
        for attr, value in vars(obj).items():
            if isinstance(value, dict | OrderedDict | set) and (n := _size(value)) is not None:
                key = f"{type(obj).__name__}.{attr}"
                key = key if key not in found else f"{key} ({path})"  # two instances of one class
                found[key] = {"where": path, "kind": type(value).__name__, "size": n}
            elif depth < 2 and type(value).__module__.startswith("sqlmode") and attr != "settings":
                walk(value, f"{path}.{attr}", depth + 1)

    walk(service, "service", 0)
    return found


def cache_inventory(service: CodeModeService, before: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The caches (every lru_cache, and every container that grew during the run or is documented),
    with their size before and after and the bound docs/caches.md gives (``undocumented`` if none)."""
    bounds = documented_bounds()
    out = []
    for name, c in _containers(service).items():
        was = before.get(name, {}).get("size", 0)
        if c["kind"] != "lru_cache" and c["size"] == was and name.split(" (")[0] not in bounds:
            continue  # a constant table, not a cache
        bound = bounds.get(name.split(" (")[0], "undocumented")
        if c.get("lru_bound", 0) is None:
            bound = "unbounded lru_cache"
        out.append(
            {"cache": name, "where": c["where"], "kind": c["kind"], "size_before": was, **c, "bound": bound}
        )
    return out


# -- peak heap of a large result -----------------------------------------------------------------


async def big_result(results: Results, d: str, settings: Any, rows: int) -> None:
    """Peak Python heap of one ``rows``-row result, per layer (each checked to return every row)."""
    sql = BIG_SQL.format(rows=rows)
    async with CodeModeService(settings) as service, RawDriver(settings) as raw:
        if d == "postgres":  # tracemalloc slows decoding several times: the reader role's timeout
            await raw._con.execute("SET statement_timeout = 0")
        v = await service.validate(sql, user=None, session="bench")
        if not v.is_valid:
            results.error("bench_memory", f"{d}: the {rows:,}-row query was refused: {v.violations}")
            return
        code = v.normalized_code
        got = len(await raw.fetch(code))

        async def execute() -> Any:
            t = await service.validate(sql, user=None, session="bench")
            r = await service.execute(code, t.approval_token or "", user=None, session="bench")
            if r.row_count != got:
                raise RuntimeError(f"service.execute returned {r.row_count} rows, not {got}")
            return r

        m_raw = await peak_memory(lambda: raw.fetch(code))
        m_exec = await peak_memory(lambda: service.executor.run(code, max_rows=rows))
        m_svc = await peak_memory(execute)
        async with Client(build_server(service)) as client:

            async def mcp_call() -> Any:
                t = (await client.call_tool("validate_code", {"code": sql})).structured_content or {}
                r = await client.call_tool(
                    "execute_code", {"code": t["normalized_code"], "approval_token": t["approval_token"]}
                )
                count = (r.structured_content or {}).get("row_count")
                if r.is_error or count != got:
                    raise RuntimeError(f"execute_code over MCP: {count} rows, error {r.is_error}")
                return r

            m_mcp = await peak_memory(mcp_call)
        # What the tool's answer adds to rows already in hand: the text the model reads (the
        # structured content shares the rows; the SDK's own serialization copies are not in this).
        result = await service.executor.run(code, max_rows=rows)
        m_render = await peak_memory(run_sync(functools.partial(query_result, result)))
        answer = query_result(result)
        text_bytes = sum(len(c.text.encode()) for c in answer.content if hasattr(c, "text"))
    p = f"mem.{d}.rows{rows}"
    label = f"{d}: peak Python heap (tracemalloc), {got:,}-row result"
    results.add(f"{p}.raw", GROUP, f"{label}, raw driver", value=m_raw.peak_bytes / MIB, unit="MiB")
    for key, m, what in (
        ("executor", m_exec, "executor.run"),
        ("service", m_svc, "service.execute"),
        ("mcp", m_mcp, "MCP validate_code + execute_code, in process (client included)"),
        (
            "render",
            m_render,
            "of which the tool answer built from rows in hand (its text; structured content shares the rows)",
        ),
    ):
        fig = results.add(
            f"{p}.{key}",
            GROUP,
            f"{label}, {what}",
            value=m.peak_bytes / MIB,
            unit="MiB",
            floor=f"{p}.raw",
            headline=key in ("service", "mcp"),
            rss_peak_mib=round(m.rss_peak_bytes / MIB, 1),
        )
        if key == "render":
            fig.extra["text_bytes"] = text_bytes


async def run(env: BenchEnv, results: Results) -> None:
    total = int(
        os.environ.get("BENCH_ROUND_TRIPS") or (30 if results.tiny else 2000 if results.quick else 20_000)
    )
    rows = 1000 if results.tiny else BIG_ROWS
    # The 5 s default query timeout is for interactive queries; tracemalloc slows this one down.
    big = {"code_mode": {"max_rows": BIG_ROWS, "query_timeout_ms": 600_000}}
    pg = await env.postgres_reader_url()
    if pg is None:
        results.error("bench_memory", env.postgres_error or "no PostgreSQL: postgres figures skipped")
    for d, url in (("duckdb", None), ("postgres", pg)):
        if d == "postgres" and url is None:
            continue
        try:
            await big_result(results, d, env.settings(d, url=url, overrides=big), rows)
        except Exception as e:  # the round trips below still run
            results.error("bench_memory", f"{d}: {rows:,}-row result: {type(e).__name__}: {e}")
    await raw_driver_growth(results, env.settings("duckdb"), total)
    for d, url in (("duckdb", None), ("postgres", pg)):
        if d == "postgres" and url is None:
            continue
        await round_trips(results, d, env.settings(d, url=url), total)
    # The control: single-use token records expire after 5 s instead of 300 s, so the in-memory state
    # store (bounded by time, not count) stops growing early; what still grows is something else.
    ttl = {"code_mode": {"token_ttl_seconds": 5}}
    await raw_driver_growth(results, env.settings("duckdb"), total, variant="ttl5")
    await round_trips(results, "duckdb", env.settings("duckdb", overrides=ttl), total, variant="ttl5")
    if pg is not None:
        await round_trips(
            results, "postgres", env.settings("postgres", url=pg, overrides=ttl), total, variant="ttl5"
        )


if __name__ == "__main__":
    from env import standalone

    standalone(run, __doc__)
