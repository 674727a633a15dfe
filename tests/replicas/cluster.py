"""A cluster of real `sqlmode serve --transport http` processes on one PostgreSQL store, and a load
generator for it. Used by tests/replicas and benchmarks/bench_replicas.py.

Each replica is its own process (stderr to a file, so a chatty server never blocks on a full pipe),
listening on an ephemeral loopback port. Clients speak the sessionless 2026-07-28 protocol, where
approval tokens bind the credential, so a token validated on one replica may run on another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tests.server.conftest import AUTH, SQLMODE, TOKENS, http_client, subprocess_env, task_scoped, toml_dumps

AUDIT_KEY = "replica-audit-key-" + "0123456789abcdef" * 2
TOKEN_SECRET = "replica-token-secret-" + "fedcba9876543210" * 2


def write_cluster_config(
    path: Path, sample_config: dict[str, Any], *, database_url: str, store_url: str | None
) -> Path:
    """The sample config on ``database_url``; state and audit in ``store_url`` (None: no shared store)."""
    from sqlmode.config import deep_merge

    shared: dict[str, Any] = (
        {"state": {"url": store_url}, "audit": {"path": "", "url": store_url, "key": AUDIT_KEY}}
        if store_url
        else {"audit": {"path": str(path.parent / "audit.jsonl"), "key": AUDIT_KEY}}
    )
    data = deep_merge(
        sample_config,
        {
            "database": {"url": database_url, "build_sample": False, "pool_max_size": 4},
            "code_mode": {"token_secret": TOKEN_SECRET},
            "auth": AUTH,
            # One credential drives the whole load here: the per-principal limits (issue 18) are
            # lifted, and analysis stays in threads to keep three replicas light to start.
            "server": {
                "workers": 3 if store_url else 1,
                "requests_per_minute": 1_000_000,
                "validations_per_minute": 1_000_000,
                "max_concurrent_validations": 64,
                "max_queued_validations": 1024,
                "max_sessions_per_credential": 1000,
                "analysis_processes": False,
            },
            **shared,
        },
    )
    path.write_text(toml_dumps(data) + "\n")
    return path


@dataclass
class Replica:
    name: str
    proc: asyncio.subprocess.Process
    url: str
    log: Path

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def start_replica(config: Path, name: str, log_dir: Path) -> Replica:
    """``sqlmode serve`` on ``config``; ``name`` is its audit replica id (a restart may reuse it)."""
    log = log_dir / f"{name}-{time.monotonic_ns()}.log"
    with open(log, "wb") as err:  # noqa: ASYNC230 - a local file, opened once per replica
        proc = await asyncio.create_subprocess_exec(
            *SQLMODE,
            "serve",
            "--config",
            str(config),
            "--transport",
            "http",
            "--port",
            "0",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**subprocess_env(), "SQLMODE_AUDIT__REPLICA_ID": name},
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if rec.get("event") == "listening":
                    return Replica(name, proc, rec["url"], log)
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.1)
    if proc.returncode is None:
        proc.kill()
    await proc.wait()
    raise AssertionError(f"replica {name} did not start (exit {proc.returncode}):\n{log.read_text()[-3000:]}")


async def start_cluster(config: Path, log_dir: Path, n: int = 3, prefix: str = "") -> list[Replica]:
    """``n`` replicas named ``<prefix>a``, ``<prefix>b``, ...: live replicas need distinct names."""
    names = [prefix + chr(ord("a") + i) for i in range(n)]
    started = await asyncio.gather(
        *(start_replica(config, x, log_dir) for x in names), return_exceptions=True
    )
    replicas = [r for r in started if isinstance(r, Replica)]
    errors = [r for r in started if isinstance(r, BaseException)]
    if errors:
        await asyncio.gather(*(r.stop() for r in replicas))
        raise errors[0]
    return replicas


def unique_sql(worker: int, i: int) -> str:
    """A query no other call sends (a fresh literal): every run has its own code hash."""
    k = worker * 1_000_000 + i
    return f"SELECT region, count(*) + {k} AS n FROM customers GROUP BY region ORDER BY region"


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


@dataclass
class LoadResult:
    seconds: float = 0.0
    runs: list[str] = field(default_factory=list)  # code hashes of execute_code calls that returned rows
    latencies_ms: list[float] = field(default_factory=list)  # validate on one replica + execute on another
    replays_refused: int = 0
    double_runs: int = 0
    transport_errors: int = 0
    transport_failures: list[str] = field(default_factory=list)  # what the first ones were
    other_errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def q(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None

        return {
            "seconds": round(self.seconds, 1),
            "runs": len(self.runs),
            "runs_per_second": round(len(self.runs) / self.seconds, 1) if self.seconds else None,
            "p50_ms": q(0.50),
            "p99_ms": q(0.99),
            "replays_refused": self.replays_refused,
            "double_runs": self.double_runs,
            "transport_errors": self.transport_errors,
            "other_errors": len(self.other_errors),
        }


async def run_load(
    replicas: list[Replica],
    *,
    clients_per_replica: int,
    seconds: float,
    during: Callable[[], Any] | None = None,
    call_timeout: float = 60,
    out: LoadResult | None = None,
) -> LoadResult:
    """``clients_per_replica`` MCP clients on each replica, connected before the clock starts.

    Worker ``w`` validates through its client on its home replica, executes through a client on the
    next living replica and replays the same token on the one after: every token is offered twice.
    """
    out = out if out is not None else LoadResult()
    n = len(replicas)
    async with contextlib.AsyncExitStack() as stack:
        pool = [
            [
                await stack.enter_async_context(_tolerant(http_client(r.url, TOKENS["ana"])))
                for _ in range(clients_per_replica)
            ]
            for r in replicas
        ]
        deadline = time.monotonic() + seconds

        def pick(start: int) -> list[int]:
            return [(start + j) % n for j in range(n) if replicas[(start + j) % n].alive]

        async def call(j: int, w: int, tool: str, args: dict[str, Any]) -> Any:
            return await asyncio.wait_for(
                pool[j][w % clients_per_replica].call_tool(tool, args), call_timeout
            )

        async def worker(w: int) -> None:
            i = 0
            while time.monotonic() < deadline:
                order = pick(w % n)
                if len(order) < 2:
                    return
                home, run_on, replay_on = order[0], order[1], order[2 % len(order)]
                i += 1
                try:
                    started = time.perf_counter()
                    v = await call(home, w, "validate_code", {"code": unique_sql(w, i)})
                    sc = v.structured_content or {}
                    if v.is_error or not sc.get("approval_token"):
                        out.other_errors.append(f"validate: {text_of(v)[:200]}")
                        continue
                    args = {"code": sc["normalized_code"], "approval_token": sc["approval_token"]}
                    r = await call(run_on, w, "execute_code", args)
                    if r.is_error:
                        out.other_errors.append(f"execute: {text_of(r)[:200]}")
                        continue
                    out.latencies_ms.append((time.perf_counter() - started) * 1000)
                    if (r.structured_content or {}).get("row_count") != 4:
                        out.other_errors.append(f"execute returned {r.structured_content}")
                    out.runs.append(sc["code_hash"])
                    again = await call(replay_on, w, "execute_code", args)
                    if not again.is_error:
                        out.double_runs += 1
                    elif text_of(again).startswith("TOKEN_ALREADY_USED"):
                        out.replays_refused += 1
                    else:
                        out.other_errors.append(f"replay: {text_of(again)[:200]}")
                except Exception as e:  # a replica went away under this call: go on with the living
                    out.transport_errors += 1
                    out.transport_failures.append(f"{type(e).__name__}: {e!s:.200}")
                    await asyncio.sleep(0.2)

        started = time.monotonic()
        tasks = [asyncio.create_task(worker(w)) for w in range(n * clients_per_replica)]
        if during is not None:
            await during()
        await asyncio.gather(*tasks)
        out.seconds = time.monotonic() - started
    return out


@contextlib.asynccontextmanager
async def _tolerant(cm: Any) -> Any:
    """``cm`` held by a task of its own, whose failure (its server was killed) stays there.

    An MCP client's task group cancels the task that entered it when the connection breaks; held
    here, that is the holder task, not the load generator.
    """
    holder = task_scoped(cm)
    value = await holder.__aenter__()
    try:
        yield value
    finally:
        with contextlib.suppress(Exception):
            await holder.__aexit__(None, None, None)


async def audit_rows(store_url: str, schema: str = "sqlmode_audit") -> list[dict[str, Any]]:
    conn = await asyncpg.connect(store_url)
    try:
        rows = await conn.fetch(f"SELECT line FROM {schema}.records ORDER BY replica, seq")
    finally:
        await conn.close()
    return [json.loads(r["line"]) for r in rows]


async def audit_verify(config: Path) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.to_thread(
        subprocess.run,
        [*SQLMODE, "audit", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**subprocess_env(), "PYTHONUNBUFFERED": "1"},
        timeout=300,
    )
    return proc


def env_seconds(name: str, default: float) -> float:
    return float(os.environ.get(name, default))
