"""One abusive credential against another's latency over HTTP (issue 18): bounded, loopback, stops by itself.

    python benchmarks/bench_abuse.py                   # 20 s quiet, then 20 s under abuse
    python benchmarks/bench_abuse.py --duration 3 --json

A real ``sqlmode serve --transport http`` (default [server] limits, sample warehouse, audit on) serves
two credentials. The victim, in this process, loops describe_schema + validate_code; first alone
("quiet"), then while the abuser, a separate process, attacks with its own valid token:

- a session flood (initialize requests as fast as it can, never closing one),
- a request flood (tools/list on one session, no pause),
- six heavy validations at once, again and again (a 90 KB OR-chain: seconds of analysis each).

Figures: the victim's p50/p99 in both phases and ``p99_ratio`` (target <= 2), the victim's errors
(target 0), what the abuser got (2xx, 429, RATE_LIMITED tool errors) and the server's RSS before and
after (sessions are capped, so memory is too). Both phases last ``--duration`` seconds; the abuser
and the server are stopped afterwards whatever happens.
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
sys.path.insert(0, str(HERE))

from bench_server import SECRET, TOKEN, drain, quantile, server_env, start_http_server  # noqa: E402

WORK = HERE / ".work" / "abuse"
ABUSER = "bench-abuser-" + "d4" * 16
SQL = "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region"
HEAVY = "SELECT id FROM orders WHERE " + " OR ".join(f"id = {i}" for i in range(7000))
PROTOCOL = "2025-11-25"
# The victim is an agent, not a flood: a pause between its rounds keeps it within its own limits.
PACE_S = 0.25
HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": PROTOCOL}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": PROTOCOL,
        "capabilities": {},
        "clientInfo": {"name": "abuser", "version": "1"},
    },
}


def write_config() -> Path:
    """bench_server's config (sample warehouse, victim token) with the default limits and an abuser token."""
    import bench_server

    cfg = bench_server.write_config()
    text = cfg.read_text().replace(bench_server.UNLIMITED, "", 1)
    text += f'\n[auth.tokens."{ABUSER}"]\nuser = "abuser"\ngroups = ["analysts"]\n'
    WORK.mkdir(parents=True, exist_ok=True)
    for old in WORK.glob("audit.jsonl*"):  # a fresh audit chain each run
        old.unlink()
    out = WORK / "sqlmode.toml"
    out.write_text(text.replace(str(bench_server.WORK / "audit.jsonl"), str(WORK / "audit.jsonl")))
    assert SECRET in text
    return out


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


# -- the abuser (a separate process) --------------------------------------------------------------


async def abuse(url: str, duration: float) -> dict[str, int]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    counts: dict[str, int] = {"ok": 0, "http_429": 0, "other": 0, "rate_limited_tool": 0, "validated": 0}
    stop = time.perf_counter() + duration
    auth = {**HEADERS, "authorization": f"Bearer {ABUSER}"}

    async def sessions(h: Any) -> None:
        while time.perf_counter() < stop:
            r = await h.post(url, json=INIT, headers=auth)
            counts["ok" if r.status_code < 400 else "http_429" if r.status_code == 429 else "other"] += 1
            if r.status_code == 429:
                await asyncio.sleep(0.01)

    async def heavy(client: Any) -> None:
        while time.perf_counter() < stop:
            try:
                r = await client.call_tool("validate_code", {"code": HEAVY})
            except Exception:
                counts["other"] += 1
                continue
            text = r.content[0].text if r.content else ""
            if text.startswith("RATE_LIMITED"):
                counts["rate_limited_tool"] += 1
                await asyncio.sleep(0.05)
            else:
                counts["validated"] += 1

    async with (
        httpx2.AsyncClient(timeout=30) as h,
        httpx2.AsyncClient(headers={"authorization": f"Bearer {ABUSER}"}, timeout=120) as hc,
        Client(streamable_http_client(url, http_client=hc), mode="legacy") as client,
    ):
        tasks = [asyncio.create_task(sessions(h)) for _ in range(4)]
        tasks += [asyncio.create_task(heavy(client)) for _ in range(6)]  # six heavy validations at a time
        await asyncio.wait(tasks, timeout=duration + 5)
        for t in tasks:
            t.cancel()
    return counts


# -- the victim and the run ------------------------------------------------------------------------


async def victim_phase(
    client: Any, duration: float, by_call: dict[str, list[float]] | None = None
) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    stop = time.perf_counter() + duration
    while time.perf_counter() < stop:
        for call, args in (("describe_schema", {}), ("validate_code", {"code": SQL})):
            t0 = time.perf_counter()
            try:
                r = await client.call_tool(call, args)
                if r.is_error:
                    errors.append(f"{call}: {r.content[0].text[:200]}")
                    continue
            except Exception as e:
                errors.append(f"{call}: {type(e).__name__}: {e}")
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
            if by_call is not None:
                by_call.setdefault(call, []).append(latencies[-1])
        await asyncio.sleep(PACE_S)
    return latencies, errors


async def main(args: argparse.Namespace) -> dict[str, Any]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    cfg = write_config()
    proc, url = await start_http_server(cfg)
    drainer = asyncio.create_task(drain(proc.stderr))
    out: dict[str, Any] = {"duration_s": args.duration}
    abuser: asyncio.subprocess.Process | None = None
    try:
        async with (
            httpx2.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}, timeout=60) as h,
            Client(streamable_http_client(url, http_client=h), mode="legacy") as client,
        ):
            await victim_phase(client, min(2.0, args.duration))  # warm up
            out["rss_before_kb"] = rss_kb(proc.pid)
            quiet_by: dict[str, list[float]] = {}
            loud_by: dict[str, list[float]] = {}
            quiet, quiet_errors = await victim_phase(client, args.duration, quiet_by)
            abuser = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--abuser", url, "--duration", str(args.duration + 2),
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=server_env(),
            )  # fmt: skip
            await asyncio.sleep(2.0)  # the abuse is under way
            loud, loud_errors = await victim_phase(client, args.duration, loud_by)
            assert abuser.stdout is not None
            raw, _ = await asyncio.wait_for(abuser.communicate(), args.duration + 90)
            out["abuser"] = json.loads(raw.decode().strip().splitlines()[-1]) if raw.strip() else {}
            out["rss_after_kb"] = rss_kb(proc.pid)
    finally:
        if abuser is not None and abuser.returncode is None:
            abuser.kill()
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
        drainer.cancel()
    out.update(
        quiet_calls=len(quiet),
        quiet_p50_ms=quantile(quiet, 0.5),
        quiet_p99_ms=quantile(quiet, 0.99),
        abused_calls=len(loud),
        abused_p50_ms=quantile(loud, 0.5),
        abused_p99_ms=quantile(loud, 0.99),
        victim_errors=len(quiet_errors) + len(loud_errors),
        victim_error_samples=(quiet_errors + loud_errors)[:3],
        server_alive_after=proc.returncode in (0, -signal.SIGINT, None),
    )
    for phase, by in (("quiet", quiet_by), ("abused", loud_by)):
        for call, values in by.items():
            out[f"{phase}_{call}_p99_ms"] = quantile(values, 0.99)
    out["p99_ratio"] = out["abused_p99_ms"] / out["quiet_p99_ms"] if out["quiet_p99_ms"] else float("nan")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of each phase (quiet, abused)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--abuser", metavar="URL", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    if args.abuser:
        print(json.dumps(asyncio.run(abuse(args.abuser, args.duration))))
        sys.exit(0)
    os.environ.pop("SQLMODE_CONFIG", None)
    result = asyncio.run(main(args))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {round(v, 2) if isinstance(v, float) else v}")
