"""stdio servers beside a trivial MCP server: spawn to first answers, and validate + execute round trips.

The floor is ``benchmarks/trivial_server.py``: the SDK's MCPServer with two tools that do nothing,
spawned and called the same way (the MCP SDK's stdio client).

- Start-up: each round spawns ``python -m sqlmode serve`` (stdio; DuckDB sample warehouse, and the
  PostgreSQL one when available) and the trivial server, in rotation, and times spawn -> handshake
  -> the first ``list_tools`` answer, and on to the first ``validate_code`` answer (the trivial
  server's first call). Also ``python -c pass`` and ``import mcp.server.mcpserver``.
- Round trips over stdio: one client per server, all open at once; in rotation, one round each:
  the trivial server answering two calls, sqlmode validating and executing a novel query (a fresh
  literal per call: no cache helps), and sqlmode on the same query again (repeated SQL). Their floor,
  in the same rotation: the trivial server's two calls plus the raw driver running a novel instance
  of the same query (the database's own time to run it is in every server's round; on PostgreSQL
  the typical query alone takes about twice the trivial server's two calls).
- N concurrent stdio sessions (one server process each) on the same DuckDB file and audit log,
  doing validate + execute round trips for a fixed time: throughput, p50/p99 and errors.

    python benchmarks/bench_startup.py [--quick] [--no-postgres]
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_novel import NOVEL_TYPICAL, fresh
from bench_stack import RawDriver
from common import ROOT, WORK_DIR, Results, Target, ainterleaved, stats_of
from env import BENCH_SECRET, BenchEnv
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from sqlmode.config import sample_config_path

GROUP = "start-up"
GROUP_RT = "stdio"
T_STARTUP = Target("<=", 1.2, "x floor", "design target", ratio=True)
T_STDIO = Target("<=", 3.0, "x floor", "design target", ratio=True)
TRIVIAL = Path(__file__).resolve().parent / "trivial_server.py"
T_ZERO = Target("<=", 0, "errors", "stdio target")
FIRST_SQL = "SELECT region, count(*) AS n FROM customers GROUP BY region"


def server_env(env: BenchEnv, config: Path | None = None) -> dict[str, str]:
    """Environment for ``sqlmode serve`` on the benchmark's sample file (the bundled config reads it)."""
    return {
        "SQLMODE_CONFIG": str(config or sample_config_path()),
        "SQLMODE_SAMPLE_DB": str(env.duckdb_path(1)),
        "CODE_MODE_SECRET": BENCH_SECRET,
        "SQLMODE_AUDIT_LOG": str(
            env.audit_dir() / f"stdio-audit-{config.stem if config else 'duckdb'}.jsonl"
        ),
        "PYTHONPATH": str(ROOT),
    }


def postgres_config(url: str) -> Path:
    """The sample config pointed at the PostgreSQL sample warehouse (as the reader role)."""
    text = sample_config_path().read_text(encoding="utf-8")
    line = 'url = "duckdb:///${SQLMODE_SAMPLE_DB:-~/.cache/sqlmode/sample-v1.duckdb}"'
    if line not in text:
        raise RuntimeError("the sample config changed shape; update postgres_config() in bench_startup.py")
    text = text.replace(line, "url = " + json.dumps(url))
    text = text.replace("build_sample = true", "build_sample = false")
    path = WORK_DIR / "stdio-postgres.toml"
    path.write_text(text, encoding="utf-8")
    return path


def server_params(env: BenchEnv, config: Path | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "sqlmode", "serve"], env=server_env(env, config), cwd=str(ROOT)
    )


def trivial_params() -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=[str(TRIVIAL)], env={"PYTHONPATH": str(ROOT)}, cwd=str(ROOT)
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
    """Spawn to the first list_tools answer, and to the first validate_code answer (ms)."""
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


async def servers(env: BenchEnv, results: Results) -> dict[str, StdioServerParameters]:
    """The stdio servers to compare: the trivial one, sqlmode on DuckDB, sqlmode on PostgreSQL."""
    out = {"trivial": trivial_params(), "duckdb": server_params(env)}
    pg = await env.postgres_reader_url()
    if pg is None:
        results.error("bench_startup", env.postgres_error or "no PostgreSQL: postgres figures skipped")
    else:
        out["postgres"] = server_params(env, postgres_config(pg))
    return out


async def startup(results: Results, params: dict[str, StdioServerParameters]) -> None:
    """Spawn to first answers, every server in rotation (the order reversed every round)."""
    n = 1 if results.tiny else 3 if results.quick else 9
    for server in params.values():
        await _first_answers(server)  # warm the OS page cache and .pyc files once
    py = stats_of([_spawn_ms("pass") for _ in range(n)])
    results.add("startup.python", GROUP, "python -c pass", py)
    sdk = stats_of([_spawn_ms("import mcp.server.mcpserver") for _ in range(n)])
    results.add(
        "startup.sdk_import", GROUP, "python + import the MCP SDK server", sdk, floor="startup.python"
    )
    tools: dict[str, list[float]] = {k: [] for k in params}
    first: dict[str, list[float]] = {k: [] for k in params}
    names = list(params)
    for i in range(n):
        for name in names if i % 2 == 0 else names[::-1]:
            a, b = await _first_answers(params[name])
            tools[name].append(a)
            first[name].append(b)
    results.add(
        "startup.trivial.first_list_tools",
        GROUP,
        "floor: trivial MCPServer (stdio): spawn to first list_tools answer",
        stats_of(tools["trivial"]),
    )
    results.add(
        "startup.trivial.first_call",
        GROUP,
        "floor: trivial MCPServer (stdio): spawn to first tool call answer",
        stats_of(first["trivial"]),
    )
    for d in names[1:]:
        # The DuckDB figures keep their historical ids (startup.first_list_tools, ...).
        p = "startup" if d == "duckdb" else f"startup.{d}"
        results.add(
            f"{p}.first_list_tools",
            GROUP,
            f"{d}: sqlmode serve (stdio): spawn to first list_tools answer",
            stats_of(tools[d]),
            floor="startup.trivial.first_list_tools",
            target=T_STARTUP,
        )
        results.add(
            f"{p}.first_validate",
            GROUP,
            f"{d}: sqlmode serve (stdio): spawn to first validate_code answer",
            stats_of(first[d]),
            floor="startup.trivial.first_call",
            headline=True,
        )


async def _trivial_round_trip(client: Any) -> None:
    v = await client.call_tool("validate_code", {"code": "SELECT 1"})
    sc = v.structured_content or {}
    r = await client.call_tool("execute_code", {"code": sc["normalized_code"], "approval_token": "t"})
    if r.is_error:
        raise RuntimeError(f"trivial execute_code failed: {r.content}")


async def stdio_round_trips(
    results: Results, params: dict[str, StdioServerParameters], raw_settings: dict[str, Any]
) -> None:
    """validate + execute over stdio, novel and repeated, beside their floor: the trivial server's
    two calls plus the raw driver running the same novel query (``raw_settings``: by dialect)."""
    from contextlib import AsyncExitStack

    same = fresh(NOVEL_TYPICAL)

    async def novel_sql() -> str:
        return fresh(NOVEL_TYPICAL)

    with _devnull() as devnull:
        async with AsyncExitStack() as stack:
            clients, pids = {}, {}
            for k, p in params.items():
                before = set(_children())
                clients[k] = await stack.enter_async_context(Client(stdio_client(p, errlog=devnull)))
                pids[k] = next(iter(set(_children()) - before), None)
            trivial = clients["trivial"]
            layers: list[Any] = [("trivial", lambda: _trivial_round_trip(trivial), None)]
            for d in list(params)[1:]:
                c = clients[d]
                await _round_trip(c, same)
                raw = await stack.enter_async_context(RawDriver(raw_settings[d]))

                async def floor(sql: str, raw: RawDriver = raw) -> None:
                    # No server can answer faster than an empty one plus the database running the query.
                    await _trivial_round_trip(trivial)
                    await raw.fetch(sql)

                layers.append((f"{d}.floor", floor, novel_sql))
                layers.append((f"{d}.novel", lambda sql, c=c: _round_trip(c, sql), novel_sql))
                layers.append((f"{d}.repeated", lambda c=c: _round_trip(c, same), None))
            st = await ainterleaved(layers, results.budget.scaled(0.5))
            cpu = await _cpu_a_round(clients, pids, 10 if results.tiny else 100)
    results.add(
        "stdio.trivial.two_calls",
        GROUP_RT,
        "floor: trivial MCPServer answering two calls over stdio",
        st["trivial"],
    )
    if "trivial" in cpu:
        results.add(
            "stdio.trivial.server_cpu",
            GROUP_RT,
            "floor: trivial MCPServer's CPU a round of two calls (all its threads)",
            value=cpu["trivial"][0],
            client_cpu_ms=round(cpu["trivial"][1], 3),
        )
    for d in list(params)[1:]:
        if d in cpu:
            results.add(
                f"stdio.{d}.server_cpu",
                GROUP_RT,
                f"{d}: `sqlmode serve`'s CPU a novel validate + execute round (all its threads)",
                value=cpu[d][0],
                floor="stdio.trivial.server_cpu",
                client_cpu_ms=round(cpu[d][1], 3),
                note="/proc CPU time of the server over sequential rounds; client_cpu_ms: the client's",
            )
        results.add(
            f"stdio.{d}.floor",
            GROUP_RT,
            f"{d}: floor: trivial MCPServer answering two calls over stdio + the raw driver running the "
            "same novel query",
            st[f"{d}.floor"],
        )
        trivial_ratio = st[f"{d}.novel"].median / st["trivial"].median
        results.add(
            f"stdio.{d}.novel",
            GROUP_RT,
            f"{d}: validate + execute over stdio (`sqlmode serve`), novel query",
            st[f"{d}.novel"],
            floor=f"stdio.{d}.floor",
            target=T_STDIO,
            note="a fresh literal per call; the typical query (one join, group, order), 4 rows",
            x_trivial_two_calls=round(trivial_ratio, 2),
        )
        results.add(
            f"stdio.{d}.repeated",
            GROUP_RT,
            f"{d}: validate + execute over stdio, repeated SQL (caches warm)",
            st[f"{d}.repeated"],
            floor=f"stdio.{d}.floor",
            headline=True,
        )


def _children() -> set[int]:
    """This process's child processes (Linux /proc; empty elsewhere)."""
    out = set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                out.add(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _process_cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def _cpu_a_round(
    clients: dict[str, Any], pids: dict[str, int | None], n: int
) -> dict[str, tuple[float, float]]:
    """Server and client CPU ms a round (novel for sqlmode), ``n`` rounds of each server in turn.

    The round trip over stdio is CPU-bound on a small machine: the server's CPU (every thread)
    plus the client's is most of its wall time, so this says where a figure's time goes.
    """
    out: dict[str, tuple[float, float]] = {}
    for name, client in clients.items():
        pid = pids.get(name)
        if pid is None:
            continue
        try:
            server0, client0 = _process_cpu_ms(pid), time.process_time()
            for _ in range(n):
                await (
                    _trivial_round_trip(client)
                    if name == "trivial"
                    else _round_trip(client, fresh(NOVEL_TYPICAL))
                )
            server_ms = (_process_cpu_ms(pid) - server0) / n
        except OSError:  # no /proc
            continue
        out[name] = (server_ms, (time.process_time() - client0) * 1000 / n)
    return out


async def run(env: BenchEnv, results: Results) -> None:
    params = await servers(env, results)
    raw_settings = {"duckdb": env.settings("duckdb")}
    if "postgres" in params:
        raw_settings["postgres"] = env.settings("postgres", url=await env.postgres_reader_url())
    await stdio_round_trips(results, params, raw_settings)
    await startup(results, params)
    _import_breakdown(results)
    await service_open(env, results)
    if results.tiny:
        n_sessions, seconds = 2, 1.0
    else:
        n_sessions, seconds = (2, 2.0) if results.quick else (8, 20.0)
    await stdio_sessions(results, params["duckdb"], n_sessions, seconds)


async def _round_trip(client: Any, sql: str = FIRST_SQL) -> None:
    v = await client.call_tool("validate_code", {"code": sql})
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


async def service_open(env: BenchEnv, results: Results) -> None:
    """Opening the service in process (reflection, policy, pools): part of every start-up."""
    from sqlmode.service import CodeModeService

    samples = []
    for _ in range(1 if results.tiny else 3 if results.quick else 7):
        t0 = time.perf_counter()
        async with CodeModeService(env.settings("duckdb")):
            samples.append((time.perf_counter() - t0) * 1000)
    results.add("startup.service_open", GROUP, "duckdb: CodeModeService open, in process", stats_of(samples))


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
