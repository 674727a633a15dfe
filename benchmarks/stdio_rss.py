"""Where a long-running ``sqlmode serve`` (stdio) grows: RSS beside the Python heap and glibc's heap.

One real server process, spoken to through the SDK's stdio client, runs novel validate + execute
round trips (bench_novel's typical query, a fresh literal each). After every ``--rounds`` rounds the
server (started through this file as its launcher) writes, from a SIGUSR1 handler: the GC-tracked
objects by type, ``sys.getallocatedblocks()``, glibc's ``mallinfo2`` (bytes in use in malloc's heap,
free in it, mmapped) and, with ``--tracemalloc``, a snapshot (25 frames) to diff by traceback. At
the end SIGUSR2 calls ``malloc_trim(0)`` in the server, then RSS is read again.

Reading it: RSS growing with Python blocks and GC objects flat but glibc's in-use bytes growing is
native code's live memory, not fragmentation (that would be glibc's free bytes growing, and
``malloc_trim`` giving it back). docs/caches.md, "Memory that is not sqlmode's", has the figures.

    python benchmarks/stdio_rss.py [--postgres] [--rounds 1000] [--steps 4] [--tracemalloc]
        [--env SQLMODE_CODE_MODE__TOKEN_TTL_SECONDS=5]
    python benchmarks/stdio_rss.py --diff OUT 2 3     # tracemalloc: snapshot 3 minus snapshot 2
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import gc
import json
import os
import signal
import sys
import tracemalloc
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

PROBE_OUT = "SQLMODE_RSS_PROBE_OUT"
PROBE_TRACE = "SQLMODE_RSS_PROBE_TRACE"


class _MallInfo2(ctypes.Structure):
    _FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    _fields_ = [(k, ctypes.c_size_t) for k in (*_FIELDS, "keepcost")]


def _libc() -> Any:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    return libc


def _probe_serve(argv: list[str]) -> None:
    """The server side: install the dump handlers, then run the sqlmode command line."""
    out = Path(os.environ[PROBE_OUT])
    if os.environ.get(PROBE_TRACE):
        tracemalloc.start(25)
    dumps = [0]

    def dump(*_: Any) -> None:
        dumps[0] += 1
        n = dumps[0]
        gc.collect()
        types = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(str(out.with_suffix(f".snap{n}")))
        mi = _libc().mallinfo2()
        doc = {
            "gc_objects": sum(types.values()),
            "gc_types": dict(types),
            "python_blocks": sys.getallocatedblocks(),
            "malloc_in_use_kib": mi.uordblks >> 10,
            "malloc_free_kib": mi.fordblks >> 10,
            "malloc_mmap_kib": mi.hblkhd >> 10,
            "traced_kib": tracemalloc.get_traced_memory()[0] >> 10 if tracemalloc.is_tracing() else None,
        }
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        tmp.rename(out.with_suffix(f".dump{n}"))  # whole or absent: the client polls for it

    def trim(*_: Any) -> None:
        _libc().malloc_trim(0)
        out.with_suffix(".trimmed").write_text("ok", encoding="utf-8")

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, trim)
    sys.argv = ["sqlmode", *argv]
    from sqlmode.cli import main

    main()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _wait_for(path: Path) -> None:
    while not path.exists():  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.05)


async def measure(a: argparse.Namespace) -> None:
    from bench_novel import NOVEL_TYPICAL, fresh
    from bench_startup import _round_trip, postgres_config, server_env
    from common import ROOT, WORK_DIR
    from env import BenchEnv
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from stdio_floor import _children

    env = BenchEnv(postgres=a.postgres)
    name = "postgres" if a.postgres else "duckdb"
    out = WORK_DIR / f"stdio-rss-{name}"
    for old in WORK_DIR.glob(f"{out.name}.*"):
        old.unlink()
    try:
        config = postgres_config(await env.postgres_reader_url() or "") if a.postgres else None
        e = server_env(env, config) | {PROBE_OUT: str(out)}
        e["SQLMODE_AUDIT_LOG"] = e["SQLMODE_AUDIT_LOG"].replace(".jsonl", "-rss.jsonl")
        if a.tracemalloc:
            e[PROBE_TRACE] = "1"
        e |= dict(kv.split("=", 1) for kv in a.env)
        params = StdioServerParameters(
            command=sys.executable, args=[__file__, "--probe", "serve"], env=e, cwd=str(ROOT)
        )
        load = Path("/proc/loadavg").read_text().strip()  # noqa: ASYNC240
        print(f"{name}; /proc/loadavg {load}; env {a.env}", flush=True)
        with open(os.devnull, "w") as devnull:  # noqa: ASYNC230
            async with AsyncExitStack() as stack:
                before = set(_children())
                client = await stack.enter_async_context(Client(stdio_client(params, errlog=devnull)))
                pid = next(iter(set(_children()) - before))
                for _ in range(200):  # imports, first plans, pools: not what this measures
                    await _round_trip(client, fresh(NOVEL_TYPICAL))
                for step in range(a.steps + 1):
                    for _ in range(a.rounds if step else 0):
                        await _round_trip(client, fresh(NOVEL_TYPICAL))
                    os.kill(pid, signal.SIGUSR1)
                    dump = out.with_suffix(f".dump{step + 1}")
                    await _wait_for(dump)
                    d = json.loads(dump.read_text(encoding="utf-8"))
                    traced = f", traced {d['traced_kib']} KiB" if d["traced_kib"] is not None else ""
                    print(
                        f"after {step * a.rounds:6,} rounds: RSS {_rss_mib(pid):6.1f} MiB, "
                        f"GC objects {d['gc_objects']:,}, Python blocks {d['python_blocks']:,}, "
                        f"malloc in use {d['malloc_in_use_kib']:,} KiB, free {d['malloc_free_kib']:,} KiB"
                        + traced,
                        flush=True,
                    )
                os.kill(pid, signal.SIGUSR2)
                await _wait_for(out.with_suffix(".trimmed"))
                print(f"after malloc_trim(0): RSS {_rss_mib(pid):.1f} MiB", flush=True)
        print(f"/proc/loadavg {Path('/proc/loadavg').read_text().strip()}")  # noqa: ASYNC240
    finally:
        await env.close()


def diff(prefix: str, first: int, second: int) -> None:
    a = tracemalloc.Snapshot.load(f"{prefix}.snap{first}")
    b = tracemalloc.Snapshot.load(f"{prefix}.snap{second}")
    skip = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    a, b = a.filter_traces(skip), b.filter_traces(skip)
    total = [sum(s.size for s in x.statistics("filename")) >> 10 for x in (a, b)]
    print(f"traced KiB {total[0]:,} -> {total[1]:,}")
    for s in b.compare_to(a, "traceback")[:10]:
        print(f"{s.size_diff / 1024:+.1f} KiB {s.count_diff:+d} blocks")
        for line in s.traceback.format()[-10:]:
            print("   ", line)


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        _probe_serve(sys.argv[2:])
        return
    sys.path.insert(0, str(Path(__file__).parent))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--postgres", action="store_true", help="the sample warehouse on PostgreSQL")
    p.add_argument("--rounds", type=int, default=1000, help="round trips between two dumps")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--tracemalloc", action="store_true", help="snapshots to diff (slow: 25 frames)")
    p.add_argument("--env", action="append", default=[], help="K=V for the server")
    p.add_argument("--diff", nargs=3, metavar=("PREFIX", "A", "B"), help="diff two tracemalloc snapshots")
    a = p.parse_args()
    if a.diff:
        diff(a.diff[0], int(a.diff[1]), int(a.diff[2]))
    else:
        asyncio.run(measure(a))


if __name__ == "__main__":
    main()
