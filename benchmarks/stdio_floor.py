"""stdio: sqlmode's validate + execute round trip beside a trivial MCPServer answering two calls.

Each server is a real process spoken to through the SDK's stdio client; a novel query (a fresh
literal) every round. ``sqlmode (SDK transport)`` forces the SDK's threaded stdio transport in the
same sqlmode build, to show what the pipe transports (sqlmode/stdio.py) change.

    python benchmarks/stdio_floor.py [--rounds 300] [--mode auto|legacy]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parent.parent

TRIVIAL = """
from mcp.server.mcpserver import MCPServer
server = MCPServer("trivial")

@server.tool()
def first(x: int) -> str:
    return str(x)

@server.tool()
def second(x: int) -> str:
    return str(x + 1)

server.run()
"""

# The same trivial server over sqlmode's pipe transports.
TRIVIAL_PIPES = TRIVIAL.replace(
    "server.run()", "import anyio\nfrom sqlmode.stdio import run_stdio\nanyio.run(run_stdio, server)"
)

# sqlmode with the SDK's threaded transport: the pipe check answers "no" before the server imports it.
SDK_TRANSPORT = """
import sys
import sqlmode.stdio
sqlmode.stdio.pipe_capable = lambda fd: False
from sqlmode.cli import main
sys.argv = ["sqlmode", *sys.argv[1:]]
main()
"""


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("SQLMODE_", "CODE_MODE_"))}
    out["PYTHONPATH"] = str(ROOT)
    out["CODE_MODE_SECRET"] = "bench-secret-" + "0123456789abcdef" * 2
    return out


async def trivial_round(client: Any, i: int) -> None:
    await client.call_tool("first", {"x": i})
    await client.call_tool("second", {"x": i})


async def sqlmode_round(client: Any, i: int) -> None:
    sql = f"SELECT region, count(*) AS n FROM customers WHERE id > {i % 50} GROUP BY region ORDER BY region"
    v = await client.call_tool("validate_code", {"code": sql})
    sc = v.structured_content or {}
    if v.is_error or not sc.get("approval_token"):
        raise RuntimeError(f"validate_code failed: {v.content}")
    r = await client.call_tool(
        "execute_code", {"code": sc["normalized_code"], "approval_token": sc["approval_token"]}
    )
    if r.is_error:
        raise RuntimeError(f"execute_code failed: {r.content}")


def _children() -> dict[int, str]:
    """This process's children: pid -> command line."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == os.getpid():
                    out[int(entry.name)] = (entry / "cmdline").read_text().replace("\0", " ")
            except (OSError, IndexError, ValueError):
                continue
    return out


def _cpu_ms(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (Linux), in ms: less sensitive to load than wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def measure(cases: list[tuple[str, list[str], Any]], rounds: int, mode: str) -> dict[str, list[float]]:
    """Rounds interleaved across the servers (all running at once), so load drift hits each alike."""
    results: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    with open(os.devnull, "w") as devnull:  # noqa: ASYNC230
        async with AsyncExitStack() as stack:
            clients = []
            pids: dict[str, int] = {}
            for name, args, round_ in cases:
                params = StdioServerParameters(command=sys.executable, args=args, env=env(), cwd=str(ROOT))
                before = set(_children())
                client = await stack.enter_async_context(
                    Client(stdio_client(params, errlog=devnull), mode=mode)
                )
                clients.append((name, client, round_))
                pids[name] = next(iter(set(_children()) - before))
            for i in range(max(10, rounds // 10)):
                for _, client, round_ in clients:
                    await round_(client, 10_000 + i)
            cpu = {name: _cpu_ms(pid) for name, pid in pids.items()}
            order = random.Random(0)
            for i in range(rounds):
                # A fresh order each round: a server's trailing work (an fsync) hits whichever runs next.
                order.shuffle(clients)
                for name, client, round_ in clients:
                    t0 = time.perf_counter()
                    await round_(client, i)
                    results[name].append((time.perf_counter() - t0) * 1000)
            for name, pid in pids.items():
                CPU[name] = (_cpu_ms(pid) - cpu[name]) / rounds
    return results


CPU: dict[str, float] = {}  # server CPU ms per round, by case


def summary(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=10)
    return f"median {statistics.median(samples):.2f} ms (p10 {q[0]:.2f}, p90 {q[-1]:.2f})"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--mode", default="auto", choices=["auto", "legacy"])
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trivial = Path(tmp) / "trivial.py"
        trivial.write_text(TRIVIAL)
        trivial_pipes = Path(tmp) / "trivial_pipes.py"
        trivial_pipes.write_text(TRIVIAL_PIPES)
        serve = ["serve", "--log-level", "warning"]
        cases = [
            ("trivial MCPServer, two calls (floor)", [str(trivial)], trivial_round),
            ("trivial MCPServer, two calls, sqlmode's pipe transports", [str(trivial_pipes)], trivial_round),
            ("sqlmode validate + execute (pipe transports)", ["-m", "sqlmode", *serve], sqlmode_round),
            ("sqlmode validate + execute (SDK transport)", ["-c", SDK_TRANSPORT, *serve], sqlmode_round),
        ]
        results = await measure(cases, a.rounds, a.mode)
    floor = statistics.median(next(iter(results.values())))
    print(f"load average {os.getloadavg()[0]:.2f}; {a.rounds} rounds; protocol mode {a.mode}")
    for name, samples in results.items():
        print(
            f"{name}: {summary(samples)}; {statistics.median(samples) / floor:.2f}x floor; "
            f"server CPU {CPU[name]:.2f} ms a round"
        )


if __name__ == "__main__":
    asyncio.run(main())
