"""stdio round trips of two sqlmode source trees side by side (before/after a change), beside the floor.

Every server is a real ``sqlmode serve`` process (or the trivial MCPServer, the floor) spoken to
through the SDK's stdio client, all open at once; each round runs one validate + execute of a novel
query (bench_novel's typical query, a fresh literal) on every server, in a fresh random order, so
load drift hits each alike. Besides wall time: the server's CPU a round (all its threads), the
client's, and the server's RSS at the start, middle and end of the timed rounds.

- ``--before DIR``: another checkout (``git archive REV | tar -x -C DIR``), served with ``PYTHONPATH=DIR``.
- ``--inproc``: the same validate + execute on a CodeModeService in this process, in the same rounds.
- ``--threads``: CPU a round of every server thread (named by ``py-spy dump`` when py-spy is installed).
- ``--spy CASE``: ``py-spy record`` of that server during the timed rounds (benchmarks/.work/spy-CASE.txt).
- ``--launcher FILE`` / ``--env K=V``: how the 'after' servers start (a wrapper script, environment).

    python benchmarks/stdio_ab.py --before /tmp/base [--rounds 300] [--no-postgres] [--inproc] [--threads]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bench_novel import NOVEL_TYPICAL, fresh
from bench_startup import TRIVIAL, _round_trip, _trivial_round_trip, postgres_config, server_env
from common import ROOT, WORK_DIR
from env import BenchEnv
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from stdio_floor import _children, _cpu_ms

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU ms so far of each thread of ``pid``."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    return out


def _thread_names(pid: int) -> dict[int, str]:
    """Python thread names by OS thread id (py-spy dump); threads it does not list are native."""
    try:
        dump = subprocess.run([PY_SPY, "dump", "--pid", str(pid)], capture_output=True, text=True).stdout
    except OSError:
        return {}
    names = {}
    for line in dump.splitlines():
        if line.startswith("Thread ") and '"' in line:
            tid = line.split()[1]
            if tid.isdigit():
                names[int(tid)] = line.split('"')[1]
    return names


def _cases(a: argparse.Namespace, env: BenchEnv, configs: dict[str, Path | None]) -> list[tuple[str, Any]]:
    trivial = StdioServerParameters(
        command=sys.executable, args=[str(TRIVIAL)], env={"PYTHONPATH": str(ROOT)}, cwd=str(ROOT)
    )
    out: list[tuple[str, Any]] = [("trivial", trivial)]
    extra = dict(kv.split("=", 1) for kv in a.env)
    trees = {"after": ROOT} | ({"before": a.before.resolve()} if a.before else {})
    logs = ["--log-level", a.log_level] if a.log_level else []
    for d, cfg in configs.items():
        for tree_name, tree in trees.items():
            e = server_env(env, cfg) | {"PYTHONPATH": str(tree)}
            e["SQLMODE_AUDIT_LOG"] = e["SQLMODE_AUDIT_LOG"].replace(".jsonl", f"-{tree_name}.jsonl")
            args = ["-m", "sqlmode", "serve", *logs]
            if tree_name == "after":
                e |= extra
                if a.launcher:
                    args = [a.launcher, "serve", *logs]
            out.append(
                (
                    f"{d}.{tree_name}",
                    StdioServerParameters(command=sys.executable, args=args, env=e, cwd=str(tree)),
                )
            )
    return out


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, help="another source tree to compare with")
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--env", action="append", default=[], help="K=V for the 'after' servers only")
    p.add_argument("--launcher", help="a script run instead of `-m sqlmode` for the 'after' servers")
    p.add_argument("--log-level", help="the servers' --log-level (default: theirs, as bench_startup)")
    p.add_argument("--inproc", action="store_true", help="also validate + execute in this process")
    p.add_argument("--threads", action="store_true", help="CPU a round of every server thread")
    p.add_argument("--spy", help="a case name (duckdb.after...): py-spy records it during the timed rounds")
    p.add_argument("--spy-args", default="--format raw --rate 500 --threads", help="py-spy record options")
    a = p.parse_args()
    env = BenchEnv(postgres=not a.no_postgres)
    rounds: dict[str, Callable[[], Awaitable[None]]] = {}
    pids: dict[str, int] = {}
    try:
        configs: dict[str, Path | None] = {"duckdb": None}
        pg = None if a.no_postgres else await env.postgres_reader_url()
        if pg:
            configs["postgres"] = postgres_config(pg)
        with open(os.devnull, "w") as devnull:  # noqa: ASYNC230
            async with AsyncExitStack() as stack:
                if a.inproc:
                    from sqlmode.service import CodeModeService

                    for d in configs:
                        if d == "duckdb":  # a copy: the servers hold the benchmark's file open
                            copy = WORK_DIR / "stdio-ab-inproc.duckdb"
                            shutil.copy(env.duckdb_path(1), copy)
                            url = f"duckdb:///{copy}"
                        else:
                            url = pg or ""
                        svc = await stack.enter_async_context(CodeModeService(env.settings(d, url=url)))

                        async def inproc(svc: Any = svc) -> None:
                            v = await svc.validate(fresh(NOVEL_TYPICAL))
                            await svc.execute(v.normalized_code, v.approval_token or "")

                        rounds[f"{d}.inproc"] = inproc
                for name, params in _cases(a, env, configs):
                    before = set(_children())
                    client = await stack.enter_async_context(Client(stdio_client(params, errlog=devnull)))
                    pids[name] = next(iter(set(_children()) - before))

                    async def remote(c: Any = client, trivial: bool = name == "trivial") -> None:
                        await (_trivial_round_trip(c) if trivial else _round_trip(c, fresh(NOVEL_TYPICAL)))

                    rounds[name] = remote
                report = await _measure(a, rounds, pids)
    finally:
        await env.close()
    print(report)


async def _measure(
    a: argparse.Namespace, rounds: dict[str, Callable[[], Awaitable[None]]], pids: dict[str, int]
) -> str:
    order = list(rounds.items())
    for _ in range(max(20, a.rounds // 10)):
        for _, fn in order:
            await fn()
    spy = None
    if a.spy:
        out = WORK_DIR / f"spy-{a.spy}.txt"
        cmd = [PY_SPY, "record", "--pid", str(pids[a.spy]), "-o", str(out), *shlex.split(a.spy_args)]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
        await asyncio.sleep(1.0)
    load0 = Path("/proc/loadavg").read_text().strip()  # noqa: ASYNC240
    samples: dict[str, list[float]] = {name: [] for name in rounds}
    client_cpu = dict.fromkeys(rounds, 0.0)
    cpu0 = {n: _cpu_ms(pid) for n, pid in pids.items()}
    threads0 = {n: _thread_cpu(pid) for n, pid in pids.items()}
    rss = {n: [_rss_mib(pid)] for n, pid in pids.items()}
    shuffle = random.Random(0)
    for i in range(a.rounds):
        if i == a.rounds // 2:
            for n, pid in pids.items():
                rss[n].append(_rss_mib(pid))
        shuffle.shuffle(order)
        for name, fn in order:
            c0, t0 = time.process_time(), time.perf_counter()
            await fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
            client_cpu[name] += (time.process_time() - c0) * 1000 / a.rounds
    cpu = {n: (_cpu_ms(pid) - cpu0[n]) / a.rounds for n, pid in pids.items()}
    threads = {
        n: {t: (v - threads0[n].get(t, 0.0)) / a.rounds for t, v in _thread_cpu(pid).items()}
        for n, pid in pids.items()
    }
    for n, pid in pids.items():
        rss[n].append(_rss_mib(pid))
    load1 = Path("/proc/loadavg").read_text().strip()  # noqa: ASYNC240
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait()
    floor = statistics.median(samples["trivial"])
    lines = [f"{a.rounds} rounds; /proc/loadavg at start {load0}, at end {load1}; 'after' env {a.env}"]
    for name, s in samples.items():
        q = statistics.quantiles(s, n=10)
        where = (
            "this process's CPU" if name.endswith(".inproc") else f"server CPU {cpu[name]:.2f} ms, client CPU"
        )
        lines.append(
            f"{name:16s} median {statistics.median(s):6.2f} ms (p10 {q[0]:.2f}, p90 {q[-1]:.2f}) "
            f"{statistics.median(s) / floor:5.2f}x floor; {where} {client_cpu[name]:.2f} ms a round"
        )
        if name in rss:
            lines.append("    RSS MiB at start / middle / end: " + " / ".join(f"{x:.1f}" for x in rss[name]))
        if a.threads and name in pids:
            names = _thread_names(pids[name])
            busy = sorted(threads[name].items(), key=lambda kv: -kv[1])
            lines.append(
                "    CPU ms a round by thread: "
                + ", ".join(f"{names.get(t, 'native')} {v:.2f}" for t, v in busy if v > 0.005)
            )
    return "\n".join(lines)


if __name__ == "__main__":
    asyncio.run(main())
