"""Server start-up to first answer, over stdio, beside the cost of starting Python itself.

Each sample spawns ``python -m sqlmode serve`` (stdio) on the sample warehouse through the MCP
SDK's client, and times spawn -> handshake -> the first ``list_tools`` answer, and on to the
first ``validate_code`` answer. Floors measured the same way: ``python -c pass`` (an interpreter)
and ``python -c "import mcp.server.mcpserver"`` (the SDK a Python MCP server needs anyway).

    python benchmarks/bench_startup.py [--quick]
"""

from __future__ import annotations

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
T_STARTUP = Target("<=", 500, "ms", "DESIGN.md")
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
