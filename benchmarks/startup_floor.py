"""Start-up: spawn -> first list_tools answer -> first validate_code answer, beside a trivial MCPServer.

Each sample spawns a real process through the SDK's stdio client (samples interleaved across the
servers, so load drift hits each alike). ``--other PATH`` adds the same figures for another checkout of
sqlmode (e.g. the main branch) run with the same interpreter.

    python benchmarks/startup_floor.py [--samples 7] [--other /path/to/checkout]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parent.parent
SQL = "SELECT region, count(*) AS n FROM customers GROUP BY region"
TRIVIAL = """
from mcp.server.mcpserver import MCPServer
server = MCPServer("trivial")

@server.tool()
def first(x: int) -> str:
    return str(x)

server.run()
"""


def env(root: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("SQLMODE_", "CODE_MODE_"))}
    out["PYTHONPATH"] = str(root)
    out["CODE_MODE_SECRET"] = "bench-secret-" + "0123456789abcdef" * 2
    return out


async def sample(args: list[str], root: Path, validate: bool) -> tuple[float, float]:
    params = StdioServerParameters(command=sys.executable, args=args, env=env(root), cwd=str(root))
    with open(os.devnull, "w") as devnull:  # noqa: ASYNC230
        t0 = time.perf_counter()
        async with Client(stdio_client(params, errlog=devnull)) as client:
            await client.list_tools()
            t1 = time.perf_counter()
            if validate:
                r = await client.call_tool("validate_code", {"code": SQL})
                if r.is_error:
                    raise RuntimeError(f"validate_code failed: {r.content}")
            t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t0) * 1000


def show(name: str, values: list[float], floor: float) -> str:
    q, median = sorted(values), statistics.median(values)
    return f"{name}: median {median:.0f} ms (min {q[0]:.0f}, max {q[-1]:.0f}); {median / floor:.2f}x floor"


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--samples", type=int, default=7)
    p.add_argument("--other", type=Path, help="another sqlmode checkout to time the same way")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trivial = Path(tmp) / "trivial.py"
        trivial.write_text(TRIVIAL)
        serve = ["-m", "sqlmode", "serve", "--log-level", "warning"]
        cases = [
            ("trivial MCPServer", [str(trivial)], ROOT, False),
            ("sqlmode (this checkout)", serve, ROOT, True),
        ]
        if a.other:
            cases.append((f"sqlmode ({a.other})", serve, a.other.resolve(), True))
        for _, args, root, validate in cases:  # warm the page cache and .pyc files
            await sample(args, root, validate)
        tools: dict[str, list[float]] = {c[0]: [] for c in cases}
        first: dict[str, list[float]] = {c[0]: [] for c in cases}
        for _ in range(a.samples):
            for name, args, root, validate in cases:
                t, v = await sample(args, root, validate)
                tools[name].append(t)
                first[name].append(v)
    floor = statistics.median(tools["trivial MCPServer"])
    print(f"load average {os.getloadavg()[0]:.2f}; {a.samples} samples each")
    for name, _, _, validate in cases:
        print(show(f"{name}, spawn -> first list_tools", tools[name], floor))
        if validate:
            print(show(f"{name}, spawn -> first validate_code", first[name], floor))


if __name__ == "__main__":
    asyncio.run(main())
