"""Server start-up to first answer, and N concurrent stdio sessions, over real ``sqlmode serve`` processes.

Start-up: each sample spawns ``python -m sqlmode serve`` (stdio) on the sample warehouse through the MCP
SDK's client, and times spawn -> handshake -> the first ``list_tools`` answer, and on to the
first ``validate_code`` answer. Floors measured the same way: ``python -c pass`` (an interpreter)
and ``python -c "import mcp.server.mcpserver"`` (the SDK a Python MCP server needs anyway).

Concurrency over stdio: N clients, each with its own ``sqlmode serve`` process (that is how stdio
works), all on the same DuckDB file and the same audit log, doing validate + execute round trips
for a fixed time: throughput, p50/p99 and errors (the target is zero). The 32 HTTP clients are
bench_server.py's.

    python benchmarks/bench_startup.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

from common import ROOT, Results, Target, stats_of
from env import BENCH_SECRET, BenchEnv
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from sqlmode.config import sample_config_path

GROUP = "start-up"
T_STARTUP = Target("<=", 500, "ms", "design target")
T_ZERO = Target("<=", 0, "errors", "stdio target")
FIRST_SQL = "SELECT region, count(*) AS n FROM customers GROUP BY region"


def server_env(env: BenchEnv) -> dict[str, str]:
    """Environment for ``sqlmode serve`` on the benchmark's sample file (the bundled config reads it)."""
    return {
        "SQLMODE_CONFIG": str(sample_config_path()),
        "SQLMODE_SAMPLE_DB": str(env.duckdb_path(1)),
        "CODE_MODE_SECRET": BENCH_SECRET,
        "SQLMODE_AUDIT_LOG": str(env.audit_dir() / "stdio-audit.jsonl"),
        "PYTHONPATH": str(ROOT),
    }


def server_params(env: BenchEnv) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "sqlmode", "serve"], env=server_env(env), cwd=str(ROOT)
    )


def _spawn_ms(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    )
    return (time.perf_counter() - t0) * 1000


def _devnull() -> Any:
    return open(os.devnull, "w")


async def _first_answers(params: StdioServerParameters) -> tuple[float, float]:
    with _devnull() as devnull:
        t0 = time.perf_counter()
        # The server's logs (stderr) are discarded: stdio_client takes errlog, Client does not.
        async with Client(stdio_client(params, errlog=devnull)) as client:
            await client.list_tools()
            t_tools = time.perf_counter()
            r = await client.call_tool("validate_code", {"code": FIRST_SQL})
            t_validate = time.perf_counter()
            if r.is_error:
                raise RuntimeError(f"first validate_code failed: {r.content}")
    return (t_tools - t0) * 1000, (t_validate - t0) * 1000


async def run(env: BenchEnv, results: Results) -> None:
    n = 1 if results.tiny else 2 if results.quick else 7
    params = server_params(env)
    if not results.quick:
        await _first_answers(params)  # warm the OS page cache and .pyc files once
    py = stats_of([_spawn_ms("pass") for _ in range(n)])
    results.add("startup.python", GROUP, "floor: python -c pass", py)
    sdk = stats_of([_spawn_ms("import mcp.server.mcpserver") for _ in range(n)])
    results.add(
        "startup.sdk_import", GROUP, "floor: python + import the MCP SDK server", sdk, floor="startup.python"
    )
    tools: list[float] = []
    first: list[float] = []
    for _ in range(n):
        a, b = await _first_answers(params)
        tools.append(a)
        first.append(b)
    results.add(
        "startup.first_list_tools",
        GROUP,
        "sqlmode serve (stdio): spawn to first list_tools answer",
        stats_of(tools),
        floor="startup.sdk_import",
        target=T_STARTUP,
    )
    results.add(
        "startup.first_validate",
        GROUP,
        "sqlmode serve (stdio): spawn to first validate_code answer",
        stats_of(first),
        floor="startup.sdk_import",
        target=T_STARTUP,
    )
    _import_breakdown(results)
    if results.tiny:
        n_sessions, seconds = 2, 1.0
    else:
        n_sessions, seconds = (2, 2.0) if results.quick else (8, 20.0)
    await stdio_sessions(results, params, n_sessions, seconds)


async def _round_trip(client: Any) -> None:
    v = await client.call_tool("validate_code", {"code": FIRST_SQL})
    sc = v.structured_content or {}
    if v.is_error or not sc.get("approval_token"):
        raise RuntimeError(f"validate_code refused: {v.content}")
    r = await client.call_tool(
        "execute_code", {"code": sc["normalized_code"], "approval_token": sc["approval_token"]}
    )
    if r.is_error:
        raise RuntimeError(f"execute_code failed: {r.content}")


async def stdio_sessions(results: Results, params: StdioServerParameters, n: int, seconds: float) -> None:
    """``n`` stdio sessions (one server process each) doing round trips for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    ready: list[bool] = []
    all_ready, go = asyncio.Event(), asyncio.Event()
    state = {"deadline": 0.0}

    async def session() -> None:
        try:
            with _devnull() as devnull:
                async with Client(stdio_client(params, errlog=devnull)) as client:
                    await _round_trip(client)  # warm: imports, schema, first plan
                    ready.append(True)
                    if len(ready) == n:
                        all_ready.set()
                    await go.wait()
                    while time.perf_counter() < state["deadline"]:
                        t0 = time.perf_counter()
                        try:
                            await _round_trip(client)
                        except Exception as e:
                            errors.append(f"{type(e).__name__}: {e}")
                            continue
                        latencies.append((time.perf_counter() - t0) * 1000)
        except Exception as e:
            errors.append(f"session: {type(e).__name__}: {e}")
            all_ready.set()

    tasks = [asyncio.create_task(session()) for _ in range(n)]
    await all_ready.wait()
    state["deadline"] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    common: dict[str, Any] = {"sessions": n, "duration_s": round(elapsed, 2), "round_trips": len(latencies)}
    if errors:
        common["first_errors"] = sorted(set(errors))[:3]
    g = "concurrency"
    results.add(
        "stdio_sessions.throughput",
        g,
        f"{n} stdio sessions for {seconds:.0f} s: validate + execute round trips a second",
        value=len(latencies) / elapsed if elapsed else 0.0,
        unit="round trips/s",
        headline=True,
        **common,
    )
    if latencies:
        results.add(
            "stdio_sessions.latency",
            g,
            f"{n} stdio sessions: round trip latency",
            stats_of(latencies, with_p99=True),
            headline=True,
            **common,
        )
    results.add(
        "stdio_sessions.errors",
        g,
        f"{n} stdio sessions: errors",
        value=len(errors),
        unit="errors",
        target=T_ZERO,
        **common,
    )


def _import_breakdown(results: Results) -> None:
    """Where start-up goes: import time of sqlmode's heavy modules (python -X importtime, one run)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import sqlmode.server, sqlmode.cli"],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
    )
    total = 0
    by_package: dict[str, int] = {}
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        raw = parts[2].rstrip()
        name = raw.strip()
        cum = int(parts[1])
        if len(raw) - len(name) <= 1:  # outermost imports: their cumulative times add up to the total
            total += cum
        top = name.split(".")[0]
        by_package[top] = max(by_package.get(top, 0), cum)
    heavy: dict[str, Any] = dict(sorted(by_package.items(), key=lambda kv: -kv[1])[:10])
    results.add(
        "startup.import_sqlmode",
        GROUP,
        "import sqlmode.server + cli (cumulative, -X importtime)",
        value=total / 1000,
        note="one run",
        top_imports_us=heavy,
    )


if __name__ == "__main__":
    from env import standalone

    standalone(run, __doc__)
