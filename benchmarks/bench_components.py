"""Fold in the component scripts other modules own, so each figure has one source of truth.

- ``bench_governance.py``: the Cedar decision with the cached PolicySet and token mint + verify
  (imported; its ``run()`` returns medians in ms).
- ``bench_analyze.py``, ``bench_execute.py``, ``bench_server.py``: run as subprocesses with
  ``--json`` when they offer it; a JSON object of numbers becomes figures, anything else is kept
  verbatim in ``components`` of the results.

A script that has not landed yet is reported as an error, never silently skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import ROOT, Results, Target, stats_of
from env import URL_ENV, BenchEnv

HERE = Path(__file__).resolve().parent
GROUP = "governance"
GOV_TARGETS = {
    "cedar_decision": (
        Target("<", 0.2, "ms", "governance target"),
        "Cedar decision, cached PolicySet, six-table analysis (allowed)",
    ),
    "cedar_decision_denied": (
        Target("<", 0.2, "ms", "governance target"),
        "Cedar decision, cached PolicySet (denied)",
    ),
    "token_mint_verify": (Target("<", 0.05, "ms", "governance target"), "approval token mint + verify"),
    "policy_hash": (None, "policy hash lookup"),
}


def governance(results: Results) -> None:
    """bench_governance.run(), repeated so that each figure has a spread of medians."""
    import bench_governance

    reps = 2 if results.tiny else 3 if results.quick else 7
    number = 20 if results.tiny else 300 if results.quick else 2000
    runs = [bench_governance.run(rounds=3, number=number) for _ in range(reps)]
    for key in runs[0]:
        target, label = GOV_TARGETS.get(key, (None, key.replace("_", " ")))
        results.add(
            f"governance.{key}",
            GROUP,
            label,
            stats_of([r[key] for r in runs]),
            target=target,
            note=f"bench_governance.py: {reps} runs x 3 rounds x {number} calls; spread across runs",
        )


# Shorter still than the scripts' own --quick, so that run.py --quick stays near a minute.
QUICK_ARGS = {"bench_server": {"--rounds": "30", "--duration": "3"}, "bench_execute": {"--iterations": "40"}}
T_ZERO = Target("<=", 0, "errors", "serving target")


def server_figures(results: Results, out: dict[str, Any]) -> None:
    """bench_server.py's JSON as figures: the stdio round trip beside its floors, and the HTTP load."""
    g = "server"
    src = "bench_server.py"
    if "pipeline_round_trip_ms" in out:
        results.add(
            "server.pipeline_round_trip",
            g,
            "floor: service.validate + execute, no MCP (4 rows)",
            value=out["pipeline_round_trip_ms"],
            note=src,
        )
    if "inprocess_mcp_round_trip_ms" in out:
        results.add(
            "server.inprocess_round_trip",
            g,
            "floor: the same through the in-process MCP client (no transport)",
            value=out["inprocess_mcp_round_trip_ms"],
            floor="server.pipeline_round_trip",
            note=src,
        )
    for key, label in (
        ("stdio_round_trip", "validate + execute over stdio (`sqlmode serve`), 4 rows, repeated SQL"),
        ("stdio_round_trip_legacy", "the same on protocol 2025-11-25"),
    ):
        if f"{key}_ms" in out:
            results.add(
                f"server.{key}",
                g,
                label,
                value=out[f"{key}_ms"],
                floor="server.inprocess_round_trip",
                headline=key == "stdio_round_trip",
                p90_ms=out.get(f"{key}_p90_ms"),
                p99_ms=out.get(f"{key}_p99_ms"),
                note=src,
            )
    if "http_clients" in out:
        n, secs = int(out["http_clients"]), out.get("http_duration_s", 0)
        common = {"clients": n, "duration_s": secs, "round_trips": out.get("http_round_trips"), "note": src}
        results.add(
            "server.http_throughput",
            g,
            f"{n} HTTP clients for {secs:.0f} s: validate + execute round trips a second",
            value=out.get("http_throughput_rps"),
            unit="round trips/s",
            headline=True,
            **common,
        )
        results.add(
            "server.http_latency",
            g,
            f"{n} HTTP clients: round trip latency",
            value=out.get("http_p50_ms"),
            headline=True,
            p99_ms=out.get("http_p99_ms"),
            **common,
        )
        results.add(
            "server.http_errors",
            g,
            f"{n} HTTP clients: errors",
            value=out.get("http_errors"),
            unit="errors",
            target=T_ZERO,
            **common,
        )


def _help(script: Path) -> str:
    out = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    return out.stdout + out.stderr


def execute_figures(results: Results, out: list[dict[str, Any]]) -> None:
    """bench_execute.py's rows: executor.run against the raw driver, alternated call by call."""
    g = "execution"
    src = "bench_execute.py (raw and executor.run alternate call by call)"
    for row in out:
        engine, fig = row.get("engine"), str(row.get("figure", ""))
        key = fig.split(" ")[0].replace(",", "")
        if "raw_ms" in row:
            base = f"exec_x.{engine}.rows{key}"
            results.add(
                f"{base}.raw", g, f"{engine}: raw driver, {fig} (alternating)", value=row["raw_ms"], note=src
            )
            results.add(
                f"{base}.executor",
                g,
                f"{engine}: executor.run, {fig} (alternating, repeated SQL)",
                value=row["ours_ms"],
                floor=f"{base}.raw",
                note=src + "; the target verdict is the novel-SQL figure's (bench_novel.py)",
            )
        elif "raw_bytes" in row:
            base = f"mem_x.{engine}"
            mib = 1024 * 1024
            results.add(
                f"{base}.raw",
                "memory",
                f"{engine}: {fig}, raw driver",
                value=row["raw_bytes"] / mib,
                unit="MiB",
                note=src,
            )
            results.add(
                f"{base}.executor",
                "memory",
                f"{engine}: {fig}, executor.run",
                value=row["ours_bytes"] / mib,
                unit="MiB",
                floor=f"{base}.raw",
                note=src,
            )


def subprocess_script(results: Results, name: str, timeout: float, env: dict[str, str] | None = None) -> Any:
    """Run ``benchmarks/<name>.py`` with --json/--quick when offered; keep its output."""
    script = HERE / f"{name}.py"
    if not script.exists():
        results.error(name, "not in the tree yet: its figures are missing from this run")
        return None
    flags = _help(script)
    if results.tiny:  # the smoke test only checks that it starts; its owner tests it
        results.components.append(
            {"script": f"{name}.py", "args": ["--help"], "returncode": 0, "stdout": flags}
        )
        return None
    args = [sys.executable, str(script)]
    if "--json" in flags:
        args.append("--json")
    if results.quick:
        if "--quick" in flags:
            args.append("--quick")
        for flag, value in QUICK_ARGS.get(name, {}).items():
            if flag in flags:
                args += [flag, value]
    try:
        out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        results.error(name, f"timed out after {timeout:.0f} s")
        return None
    record = {
        "script": f"{name}.py",
        "args": args[2:],
        "returncode": out.returncode,
        "stdout": out.stdout[-20000:],
    }
    if out.returncode != 0:
        results.error(name, f"exit {out.returncode}: {out.stderr.strip()[-500:]}")
    results.components.append(record)
    try:
        parsed = json.loads(out.stdout)
    except ValueError:
        return None
    record["folded"] = True  # its numbers are figures now; RESULTS.md need not repeat the raw output
    return parsed


async def run(env: BenchEnv, results: Results) -> None:
    try:
        governance(results)
    except Exception as e:
        results.error("bench_governance", f"{type(e).__name__}: {e}")
    # The scripts that need PostgreSQL use this run's server instead of starting their own.
    admin = await env.postgres_admin_url()
    sub_env = {**os.environ, URL_ENV: admin} if admin else None
    for name, timeout in (("bench_analyze", 300), ("bench_execute", 300), ("bench_server", 400)):
        out = subprocess_script(results, name, timeout / (3 if results.quick else 1), sub_env)
        if name == "bench_server" and isinstance(out, dict):
            server_figures(results, out)
        elif name == "bench_execute" and isinstance(out, list):
            execute_figures(results, out)


if __name__ == "__main__":
    from env import standalone

    standalone(run, __doc__)
