"""The MCP server end to end: a validate + execute round trip over stdio, and concurrent HTTP clients.

    python benchmarks/bench_server.py                     # stdio rounds, then 32 HTTP clients for 60 s
    python benchmarks/bench_server.py --duration 2 --json # smoke run, one JSON object of numbers
    python benchmarks/bench_server.py --quick             # 100 stdio rounds, HTTP for 15 s

Both servers are real ``sqlmode serve`` processes on the sample warehouse (DuckDB, scale 1), with the
audit log on (three fsync'ed records per round trip) and bearer-token authentication on HTTP; the
clients are the MCP SDK's, in this process, on loopback only. The query is small (4 rows).

Figures (milliseconds unless named otherwise):
- ``stdio_round_trip_ms`` (median, target < 10 ms), with p90/p99, on the SDK's default
  protocol (2026-07-28); ``stdio_round_trip_legacy_ms`` on 2025-11-25;
- floors measured in the same run: ``inprocess_mcp_round_trip_ms`` (the same calls through the SDK's
  in-process client: no transport) and ``pipeline_round_trip_ms`` (service.validate + execute, no MCP);
- HTTP: ``http_clients`` concurrent clients for ``http_duration_s``: ``http_round_trips``,
  ``http_errors`` (target 0), ``http_throughput_rps`` (round trips a second), ``http_p50_ms``,
  ``http_p99_ms``.
The clients share one Python process with each other (not with the server): on a 2-core machine the
client side is part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
WORK = ROOT / "benchmarks" / ".work" / "server"

SQL = "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region"
TOKEN = "bench-token-" + "c3" * 16
SECRET = "bench-secret-" + "0123456789abcdef" * 2
AUDIT_KEY = "bench-audit-key-" + "y" * 32
UNLIMITED = (
    "requests_per_minute = 100000000\nvalidations_per_minute = 100000000\n"
    "max_concurrent_validations = 10000\nmax_sessions_per_credential = 10000\n"
)


# The SDK's in-process server configures INFO logging on first use; keep the bench's output clean.
import logging  # noqa: E402

logging.basicConfig(level=logging.WARNING)


def quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def write_config() -> Path:
    """The bundled sample config on the benchmark's own DuckDB file, with a secret and a bearer token."""
    from sqlmode.config import sample_config_path
    from sqlmode.sample import build_sample_duckdb, generator

    WORK.mkdir(parents=True, exist_ok=True)
    # A fresh audit chain per run (a log from an older version, or another key, would not continue).
    for leftover in ("audit.jsonl", "audit.jsonl.head", "audit.jsonl.key"):
        (WORK / leftover).unlink(missing_ok=True)
    db = WORK / f"sample-v{getattr(generator(), 'SAMPLE_VERSION', 0)}.duckdb"
    if not db.exists():
        build_sample_duckdb(db)
    text = sample_config_path().read_text()
    text = text.replace(
        'url = "duckdb:///${SQLMODE_SAMPLE_DB:-~/.cache/sqlmode/sample-v1.duckdb}"', f'url = "duckdb:///{db}"'
    )
    text = text.replace("build_sample = true", "build_sample = false")
    text = text.replace('token_secret = "${CODE_MODE_SECRET:-}"', f'token_secret = "{SECRET}"')
    text = text.replace(
        'path = "${SQLMODE_AUDIT_LOG:-~/.cache/sqlmode/audit.jsonl}"',
        f'path = "{WORK / "audit.jsonl"}"\nkey = "{AUDIT_KEY}"',  # HTTP serving needs an audit key
    )
    # Capacity, not abuse: all clients share one token, so the per-principal limits are lifted
    # (bench_abuse.py measures them).
    text = text.replace("[server]\n", "[server]\n" + UNLIMITED, 1)
    text += f'\n[auth.tokens."{TOKEN}"]\nuser = "bench"\ngroups = ["analysts"]\n'
    if str(db) not in text or SECRET not in text:
        raise SystemExit("the sample config changed shape; update write_config() in bench_server.py")
    cfg = WORK / "sqlmode.toml"
    cfg.write_text(text)
    return cfg


def server_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SQLMODE_", "CODE_MODE_"))}


async def round_trip(client: Any) -> None:
    v = await client.call_tool("validate_code", {"code": SQL})
    sc = v.structured_content or {}
    if v.is_error or not sc.get("approval_token"):
        raise RuntimeError(f"validate_code failed: {v.content}")
    r = await client.call_tool(
        "execute_code", {"code": sc["normalized_code"], "approval_token": sc["approval_token"]}
    )
    if r.is_error or (r.structured_content or {}).get("row_count") != 4:
        raise RuntimeError(f"execute_code failed: {r.content}")


async def timed_rounds(client: Any, rounds: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await round_trip(client)
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await round_trip(client)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def bench_stdio(cfg: Path, rounds: int, modes: list[str], out: dict[str, float]) -> None:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sqlmode", "serve", "--config", str(cfg), "--log-level", "warning"],
        env=server_env(),
    )
    keys = {"auto": "stdio_round_trip", "legacy": "stdio_round_trip_legacy"}
    devnull = open(os.devnull, "w")  # noqa: ASYNC230, SIM115 - the server's stderr, for the whole run
    try:
        for mode in modes:
            key = keys[mode]
            async with Client(stdio_client(params, errlog=devnull), mode=mode) as client:
                s = await timed_rounds(client, rounds, warmup=max(5, rounds // 10))
            out[f"{key}_ms"] = quantile(s, 0.5)
            out[f"{key}_p90_ms"] = quantile(s, 0.9)
            out[f"{key}_p99_ms"] = quantile(s, 0.99)
    finally:
        devnull.close()


async def bench_floors(cfg: Path, rounds: int, out: dict[str, float]) -> None:
    """The same work without a transport (in-process MCP client) and without MCP (the service)."""
    from mcp import Client

    from sqlmode.config import load_config
    from sqlmode.server import build_server
    from sqlmode.service import CodeModeService

    async with CodeModeService(load_config(cfg)) as service:
        async with Client(build_server(service)) as client:
            s = await timed_rounds(client, rounds, warmup=max(5, rounds // 10))
        out["inprocess_mcp_round_trip_ms"] = quantile(s, 0.5)
        samples = []
        for i in range(rounds + 10):
            t0 = time.perf_counter()
            v = await service.validate(SQL)
            await service.execute(v.normalized_code, v.approval_token or "")
            if i >= 10:
                samples.append((time.perf_counter() - t0) * 1000)
        out["pipeline_round_trip_ms"] = quantile(samples, 0.5)


async def start_http_server(cfg: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sqlmode", "serve", "--config", str(cfg), "--transport", "http",
        "--host", "127.0.0.1", "--port", "0", "--log-level", "info",
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=server_env(),
    )  # fmt: skip
    assert proc.stderr is not None
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        if not line:
            raise RuntimeError(f"the HTTP server exited with {await proc.wait()} before listening")
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "listening":
            return proc, rec["url"]


async def drain(stream: asyncio.StreamReader | None) -> None:
    # The server logs to stderr; keep the pipe empty so it never blocks on a full buffer.
    while stream is not None and await stream.readline():
        pass


async def bench_http(cfg: Path, clients: int, duration: float, mode: str, out: dict[str, float]) -> list[str]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    proc, url = await start_http_server(cfg)
    drainer = asyncio.create_task(drain(proc.stderr))
    latencies: list[float] = []
    errors: list[str] = []
    warmed: list[bool] = []
    all_warm, go = asyncio.Event(), asyncio.Event()
    state = {"deadline": 0.0}

    async def worker() -> None:
        headers = {"authorization": f"Bearer {TOKEN}"}
        try:
            async with (
                httpx2.AsyncClient(headers=headers, timeout=60) as h,
                Client(streamable_http_client(url, http_client=h), mode=mode) as client,
            ):
                await round_trip(client)  # warm up the connection and the session
                warmed.append(True)
                if len(warmed) == clients:
                    all_warm.set()
                await go.wait()
                while time.perf_counter() < state["deadline"]:
                    t0 = time.perf_counter()
                    try:
                        await round_trip(client)
                    except Exception as e:
                        errors.append(f"{type(e).__name__}: {e}")
                        continue
                    latencies.append((time.perf_counter() - t0) * 1000)
        except Exception as e:
            errors.append(f"client setup: {type(e).__name__}: {e}")
            all_warm.set()  # do not wait for a client that will never be ready

    try:
        tasks = [asyncio.create_task(worker()) for _ in range(clients)]
        await all_warm.wait()
        state["deadline"] = time.perf_counter() + duration
        started = time.perf_counter()
        go.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
        drainer.cancel()
    out["http_clients"] = clients
    out["http_duration_s"] = round(elapsed, 3)
    out["http_round_trips"] = len(latencies)
    out["http_errors"] = len(errors)
    out["http_throughput_rps"] = len(latencies) / elapsed if elapsed else 0.0
    out["http_p50_ms"] = quantile(latencies, 0.5)
    out["http_p99_ms"] = quantile(latencies, 0.99)
    return errors


async def main(args: argparse.Namespace) -> dict[str, float]:
    cfg = write_config()
    out: dict[str, float] = {}
    if not args.skip_stdio:
        await bench_stdio(cfg, args.rounds, args.stdio_modes.split(","), out)
        await bench_floors(cfg, args.rounds, out)
    if not args.skip_http:
        errors = await bench_http(cfg, args.clients, args.duration, args.mode, out)
        for e in sorted(set(errors))[:5]:
            print(f"error: {e}", file=sys.stderr)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def render(out: dict[str, float], args: argparse.Namespace) -> str:
    lines = []
    if "stdio_round_trip_ms" in out:
        lines += [
            f"stdio validate+execute round trip ({args.rounds} rounds): "
            f"median {out['stdio_round_trip_ms']:.2f} ms (p90 {out['stdio_round_trip_p90_ms']:.2f}, "
            f"p99 {out['stdio_round_trip_p99_ms']:.2f}); target < 10 ms",
        ]
        if "stdio_round_trip_legacy_ms" in out:
            lines.append(f"  on 2025-11-25: median {out['stdio_round_trip_legacy_ms']:.2f} ms")
        lines += [
            f"  floors: in-process MCP {out['inprocess_mcp_round_trip_ms']:.2f} ms, "
            f"service without MCP {out['pipeline_round_trip_ms']:.2f} ms",
        ]
    if "http_clients" in out:
        lines += [
            f"HTTP: {out['http_clients']:.0f} clients for {out['http_duration_s']:.1f} s: "
            f"{out['http_round_trips']:.0f} round trips, {out['http_errors']:.0f} errors, "
            f"{out['http_throughput_rps']:.1f} round trips/s, p50 {out['http_p50_ms']:.1f} ms, "
            f"p99 {out['http_p99_ms']:.1f} ms",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of HTTP load (default 60)")
    p.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients (default 32)")
    p.add_argument("--rounds", type=int, default=300, help="timed stdio round trips (default 300)")
    p.add_argument("--mode", default="auto", help="HTTP client protocol: auto (2026-07-28) or legacy")
    p.add_argument("--stdio-modes", default="auto,legacy", help="stdio protocols to time (default both)")
    p.add_argument("--quick", action="store_true", help="100 stdio rounds and 15 s of HTTP load")
    p.add_argument("--json", action="store_true", help="print one JSON object of numbers")
    p.add_argument("--skip-stdio", action="store_true")
    p.add_argument("--skip-http", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = min(args.rounds, 100), min(args.duration, 15.0)
    return args


if __name__ == "__main__":
    arguments = parse_args()
    result = asyncio.run(main(arguments))
    print(json.dumps(result) if arguments.json else render(result, arguments))
    sys.exit(1 if result.get("http_errors") else 0)
