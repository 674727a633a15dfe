"""Three `sqlmode serve --transport http` replicas on one PostgreSQL store under load (issue 12).

    python benchmarks/bench_replicas.py                     # 60 s, 3 replicas x 16 clients
    python benchmarks/bench_replicas.py --seconds 15 --clients 8

Each client validates on its home replica, executes the approved query on the next replica and
replays the same token on the third (loopback only; sessionless 2026-07-28 protocol, bearer
tokens; the sample warehouse in embedded PostgreSQL read as the least-privilege reader role; state
and audit chains in another database of the same server). Reports throughput (runs per second:
validate + execute pairs that returned rows) and the p50/p99 of that pair, then checks what matters:
no token ran twice, every run has its audit records and nothing unseen ran, and `sqlmode audit
verify` finds every chain intact. Writes benchmarks/replicas.json and prints it.
Not part of benchmarks/run.py (it needs a minute on its own); tests/replicas runs a short version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from env import BenchEnv  # noqa: E402

from sqlmode.config import sample_config_path  # noqa: E402
from tests.plugins.postgres import create_database  # noqa: E402
from tests.replicas.cluster import (  # noqa: E402
    audit_rows,
    audit_verify,
    run_load,
    start_cluster,
    write_cluster_config,
)


async def measure(seconds: float, clients: int) -> dict[str, Any]:
    env = BenchEnv()
    replicas: list[Any] = []
    try:
        admin = await env.postgres_admin_url()
        reader = await env.postgres_reader_url()
        if admin is None or reader is None:
            raise SystemExit(env.postgres_error or "PostgreSQL is not available")
        store = await create_database(admin, "sqlmode_bench_replicas")
        folder = Path(tempfile.mkdtemp(prefix="replicas-", dir=env.work_dir))
        sample = tomllib.loads(sample_config_path().read_text(encoding="utf-8"))
        config = write_cluster_config(folder / "sqlmode.toml", sample, database_url=reader, store_url=store)
        t0 = time.monotonic()
        replicas = await start_cluster(config, folder)
        start_s = time.monotonic() - t0
        result = await run_load(replicas, clients_per_replica=clients, seconds=seconds)
        rows = await audit_rows(store)
        ok = sorted(r["code_hash"] for r in rows if r["event"] == "executed" and r["decision"] == "ok")
        nonces = Counter(r["nonce"] for r in rows if r["event"] == "execute" and r["decision"] == "run")
        t1 = time.monotonic()
        verified = await audit_verify(config)
        verify_s = time.monotonic() - t1
        summary = result.summary()
        return {
            "replicas": len(replicas),
            "clients_per_replica": clients,
            **summary,
            "cluster_start_s": round(start_s, 1),
            "audit_records": len(rows),
            "audit_runs_recorded": len(ok),
            "lost_audit_records": len(set(result.runs) - set(ok)),
            "unseen_runs_in_audit": len(set(ok) - set(result.runs)),
            "tokens_run_more_than_once": sum(1 for n in nonces.values() if n > 1),
            "audit_verify_exit": verified.returncode,
            "audit_verify": verified.stdout.strip().splitlines()[0]
            if verified.stdout
            else verified.stderr[-300:],
            "audit_verify_s": round(verify_s, 1),
            "sample_errors": result.other_errors[:3],
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        }
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
        await env.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=16, help="clients per replica")
    ap.add_argument("--out", default=str(HERE / "replicas.json"))
    args = ap.parse_args()
    figures = asyncio.run(measure(args.seconds, args.clients))
    text = json.dumps(figures, indent=2)
    Path(args.out).write_text(text + "\n")
    print(text)
    bad = figures["double_runs"] or figures["lost_audit_records"] or figures["tokens_run_more_than_once"]
    sys.exit(1 if bad or figures["audit_verify_exit"] != 0 else 0)


if __name__ == "__main__":
    main()
