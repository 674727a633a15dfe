"""Audit sinks alone: what one record costs the caller, and how many records per second a sink takes.

    python benchmarks/bench_audit.py            # file and PostgreSQL sinks, ~1 minute
    python benchmarks/bench_audit.py --quick    # fewer records, ~15 s
    python benchmarks/bench_audit.py --json out.json

For each sink (the JSONL file on this disk; PostgreSQL embedded, or SQLMODE_TEST_POSTGRES_URL), on a
real file / database:

- ``validate``: one awaited append of a validate-sized record, one after another (the latency a
  validate_code call pays for its audit record);
- ``intent``: one awaited append of an execute intent, which must be durable before the query runs;
- ``validate+execute``: the three records of a validate then execute (validate, intent, outcome) in
  sequence, the audit share of one round trip;
- ``throughput xN``: N tasks appending validate records concurrently; records per second.

Sinks without a ``durable`` parameter (before group commit) make every record durable; the script
runs against either, so the same command measures before and after. Not part of benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from common import WORK_DIR  # noqa: E402
from env import BenchEnv  # noqa: E402

from sqlmode.audit import AuditKeys, AuditLog  # noqa: E402

KEYS = AuditKeys("a1", b"bench-audit-key-" * 3)
VALIDATE = {
    "event": "validate",
    "user": "local",
    "groups": [],
    "session": "s-bench",
    "code": "SELECT region, count(*) AS n FROM customers WHERE id > 17 GROUP BY region",
    "code_hash": "ab" * 32,
    "decision": "allowed",
    "policies": ["read-any"],
    "violations": [],
    "risk": "low",
    "action": "read",
    "duration_ms": 1.234,
}
INTENT = {**VALIDATE, "event": "execute", "decision": "run", "approval": "token", "nonce": "n" * 22}
OUTCOME = {"event": "executed", "user": "local", "code_hash": "ab" * 32, "decision": "ok", "rows": 4}


Append = Callable[[dict[str, Any], bool], Awaitable[Any]]


def appender(sink: Any) -> Append:
    """``append(event, durable)``; a sink without the parameter makes every record durable."""
    if "durable" in inspect.signature(sink.append_async).parameters:
        return lambda event, durable: sink.append_async(event, durable=durable)
    return lambda event, durable: sink.append_async(event)


def summary(samples_ms: list[float]) -> dict[str, float]:
    s = sorted(samples_ms)
    return {
        "median_ms": round(statistics.median(s), 4),
        "p90_ms": round(s[int(0.9 * (len(s) - 1))], 4),
        "p99_ms": round(s[int(0.99 * (len(s) - 1))], 4),
        "n": len(s),
    }


async def latency(fn: Callable[[], Awaitable[Any]], n: int) -> dict[str, float]:
    for _ in range(5):
        await fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t) * 1000)
    return summary(samples)


async def throughput(sink: Any, append: Append, tasks: int, total: int) -> float:
    """Records per second from ``tasks`` concurrent appenders, counted until all of them are durable."""
    per = total // tasks

    async def worker() -> None:
        for _ in range(per):
            await append(VALIDATE, False)

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    if hasattr(sink, "flush"):
        await sink.flush()
    return round(per * tasks / (time.perf_counter() - t), 1)


async def measure_sink(sink: Any, n: int, flush: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    append = appender(sink)

    async def round_trip() -> None:
        await append(VALIDATE, False)
        await append(INTENT, True)
        await append(OUTCOME, False)

    out: dict[str, Any] = {
        "group_commit": "durable" in inspect.signature(sink.append_async).parameters,
        "validate": await latency(lambda: append(VALIDATE, False), n),
        "intent": await latency(lambda: append(INTENT, True), n),
        "validate+execute": await latency(round_trip, n // 3),
    }
    for tasks in (1, 16):
        out[f"throughput x{tasks} (records/s)"] = await throughput(sink, append, tasks, n * 2)
    await flush()
    return out


async def file_sink(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-audit-", dir=WORK_DIR) as d:
        log = AuditLog(Path(d) / "audit.jsonl", keys=KEYS, replica="bench")
        try:
            return await measure_sink(log, n, log.aclose)
        finally:
            log.close()


async def postgres_sink(n: int, env: BenchEnv) -> dict[str, Any]:
    import asyncpg

    from sqlmode.audit.postgres import PostgresAuditSink

    admin = await env.postgres_admin_url()
    if admin is None:
        return {"error": env.postgres_error}
    schema = f"bench_audit_{os.getpid()}"
    sink = await PostgresAuditSink(admin, KEYS, replica="bench", schema=schema).open()
    try:
        return await measure_sink(sink, n, sink.aclose)
    finally:
        await sink.aclose()
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await conn.close()


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


async def main(quick: bool) -> dict[str, Any]:
    n = 300 if quick else 1500
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    env = BenchEnv()
    try:
        results = {"load_before": load(), "file": await file_sink(n), "postgres": await postgres_sink(n, env)}
    finally:
        await env.close()
    results["load_after"] = load()
    return results


def render(results: dict[str, Any]) -> str:
    out = [f"load average: {results['load_before']} -> {results['load_after']}"]
    for sink in ("file", "postgres"):
        r = results[sink]
        if "error" in r:
            out.append(f"{sink}: {r['error']}")
            continue
        out.append(f"{sink} sink (group commit: {'yes' if r['group_commit'] else 'no'})")
        for k, v in r.items():
            if isinstance(v, dict):
                out.append(
                    f"  {k:<22} median {v['median_ms']:.3f} ms  p90 {v['p90_ms']:.3f}  p99 {v['p99_ms']:.3f}"
                )
            elif k != "group_commit":
                out.append(f"  {k:<34} {v:,.0f}")
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    res = asyncio.run(main(args.quick))
    print(render(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
