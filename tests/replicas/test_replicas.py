"""Three real `sqlmode serve --transport http` replicas on one PostgreSQL store (issue 12).

One approval, one run, one honest record: a token minted on A runs on B and nowhere again; under load
no token runs twice and no run is missing from the audit chains; `kill -9` of a replica mid-load loses
no record of a run that returned rows; a restarted replica refuses replays (and a server without a
store refuses every token from before its restart). The load here is short (CI); the 60 s version
with figures is benchmarks/bench_replicas.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.postgres import create_database
from tests.replicas.cluster import (
    LoadResult,
    Replica,
    audit_rows,
    audit_verify,
    env_seconds,
    run_load,
    start_cluster,
    start_replica,
    text_of,
    write_cluster_config,
)
from tests.server.conftest import TOKENS, http_client

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(600)]

LOAD_SECONDS = env_seconds("SQLMODE_REPLICA_LOAD_SECONDS", 10)
SQL = "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region"


@pytest.fixture(scope="module")
async def store_url(pg_admin_url: str) -> str:
    return await create_database(pg_admin_url, "sqlmode_replicas")


@pytest.fixture(scope="module")
def cluster_config(
    tmp_path_factory: pytest.TempPathFactory,
    sample_config_data: dict[str, Any],
    pg_reader_url: str,
    store_url: str,
) -> Path:
    folder = tmp_path_factory.mktemp("replicas")
    return write_cluster_config(
        folder / "sqlmode.toml", sample_config_data, database_url=pg_reader_url, store_url=store_url
    )


@pytest.fixture(scope="module")
async def cluster(cluster_config: Path) -> AsyncIterator[list[Replica]]:
    replicas = await start_cluster(cluster_config, cluster_config.parent)
    try:
        yield replicas
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))


async def expected_regions(pg_reader_url: str) -> list[list[Any]]:
    import asyncpg

    conn = await asyncpg.connect(pg_reader_url)
    try:
        return [list(r) for r in await conn.fetch(SQL)]
    finally:
        await conn.close()


async def validate_on(replica: Replica, sql: str = SQL) -> dict[str, Any]:
    async with http_client(replica.url, TOKENS["ana"]) as c:
        assert c.protocol_version == "2026-07-28"  # sessionless: the token binds the credential
        v = await c.call_tool("validate_code", {"code": sql})
        assert not v.is_error, text_of(v)
        return v.structured_content or {}


async def execute_on(replica: Replica, v: dict[str, Any]) -> Any:
    async with http_client(replica.url, TOKENS["ana"]) as c:
        return await c.call_tool(
            "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
        )


async def test_a_token_minted_on_a_runs_on_b_and_its_replays_are_refused_everywhere(
    cluster: list[Replica], pg_reader_url: str, store_url: str
) -> None:
    a, b, c = cluster
    v = await validate_on(a)
    ran = await execute_on(b, v)
    assert not ran.is_error, text_of(ran)
    assert ran.structured_content["rows"] == await expected_regions(pg_reader_url)
    for replica in (a, b, c):
        again = await execute_on(replica, v)
        assert again.is_error and text_of(again).startswith("TOKEN_ALREADY_USED"), text_of(again)
        assert "rows" not in (again.structured_content or {})
    # The store holds the spent nonce; the audit chains hold one run of it, on B. Refusals are
    # committed within audit.flush_window_ms of the answer (group commit): read once they are in.
    recs: list[dict[str, Any]] = []
    for _ in range(500):
        recs = [r for r in await audit_rows(store_url) if r.get("code_hash") == v["code_hash"]]
        if sum(r["decision"] == "refused" for r in recs) >= 3:
            break
        await asyncio.sleep(0.01)
    runs = [r for r in recs if r["event"] == "execute" and r["decision"] == "run"]
    assert (
        len(runs) == 1 and runs[0]["replica"] == next(r for r in recs if r["event"] == "executed")["replica"]
    )
    assert sorted(r["error"] for r in recs if r["decision"] == "refused") == ["TOKEN_ALREADY_USED"] * 3


async def test_one_token_raced_on_three_replicas_runs_once(cluster: list[Replica]) -> None:
    for _ in range(5):
        v = await validate_on(cluster[0])
        results = await asyncio.gather(*(execute_on(r, v) for r in cluster))
        ok = [r for r in results if not r.is_error]
        assert len(ok) == 1, [text_of(r) for r in results]
        assert all(text_of(r).startswith("TOKEN_ALREADY_USED") for r in results if r.is_error)


async def test_load_no_double_runs_no_lost_records_and_the_chains_verify(
    cluster: list[Replica], cluster_config: Path, store_url: str
) -> None:
    before = {r["code_hash"] for r in await audit_rows(store_url) if r["event"] == "executed"}
    result = await run_load(cluster, clients_per_replica=16, seconds=LOAD_SECONDS)
    assert result.runs, result.summary()
    assert result.double_runs == 0, result.summary()
    assert result.transport_errors == 0 and result.other_errors == [], (
        result.summary(),
        result.other_errors[:5],
        result.transport_failures[:5],
    )
    assert result.replays_refused == len(result.runs)
    rows = await audit_rows(store_url)
    ok = [
        r for r in rows if r["event"] == "executed" and r["decision"] == "ok" and r["code_hash"] not in before
    ]
    # Zero lost audit records: every run a client saw has its records, and nothing ran unseen.
    assert sorted(r["code_hash"] for r in ok) == sorted(result.runs)
    runs = [r for r in rows if r["event"] == "execute" and r["decision"] == "run"]
    assert all(n == 1 for n in Counter(r["nonce"] for r in runs).values())
    assert {r["replica"] for r in ok} >= {r["replica"] for r in runs if r["code_hash"] in set(result.runs)}
    assert len({r["replica"] for r in rows}) == 3  # one chain per replica
    verified = await audit_verify(cluster_config)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "chain intact" in verified.stdout and "3 chains" in verified.stdout


async def test_kill_9_mid_load_loses_no_record_of_a_run_and_the_restarted_replica_refuses_replays(
    cluster_config: Path, store_url: str
) -> None:
    replicas = await start_cluster(cluster_config, cluster_config.parent, prefix="k")
    try:
        victim = replicas[2]
        result = LoadResult()
        at_kill: list[int] = []

        async def kill_midway() -> None:
            await asyncio.sleep(LOAD_SECONDS / 2)
            victim.kill9()
            await victim.proc.wait()
            at_kill.append(len(result.runs))

        await run_load(replicas, clients_per_replica=8, seconds=LOAD_SECONDS, during=kill_midway, out=result)
        assert victim.proc.returncode == -9
        assert result.double_runs == 0, result.summary()
        assert 0 < at_kill[0] < len(result.runs), result.summary()  # runs before the kill, and after it
        rows = await audit_rows(store_url)
        recorded = {(r["event"], r["decision"], r["code_hash"]) for r in rows}
        # Every run that returned rows has its intent and its outcome recorded.
        missing = [
            h
            for h in result.runs
            if ("execute", "run", h) not in recorded or ("executed", "ok", h) not in recorded
        ]
        assert missing == [], missing[:5]
        assert any(r["replica"] == victim.name and r["event"] == "executed" for r in rows)  # it did serve
        # The killed replica's chain is intact up to where it died (each append is one transaction).
        verified = await audit_verify(cluster_config)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        # Restarted under the same replica id, it continues its chain and refuses a token spent before.
        spent = await validate_on(replicas[0])
        assert not (await execute_on(replicas[1], spent)).is_error
        replicas[2] = await start_replica(cluster_config, victim.name, cluster_config.parent)
        again = await execute_on(replicas[2], spent)
        assert again.is_error and text_of(again).startswith("TOKEN_ALREADY_USED")
        # ... and runs one that did not (the store, not the process, remembers).
        fresh = await validate_on(replicas[0])
        assert not (await execute_on(replicas[2], fresh)).is_error
        verified = await audit_verify(cluster_config)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))


async def test_without_a_store_a_restarted_server_refuses_every_earlier_token(
    tmp_path: Path, sample_config_data: dict[str, Any], pg_reader_url: str
) -> None:
    config = write_cluster_config(
        tmp_path / "sqlmode.toml", sample_config_data, database_url=pg_reader_url, store_url=None
    )
    server = await start_replica(config, "solo", tmp_path)
    try:
        used, unused = await validate_on(server), await validate_on(server)
        assert not (await execute_on(server, used)).is_error
        replay = await execute_on(server, used)
        assert text_of(replay).startswith("TOKEN_ALREADY_USED")
    finally:
        await server.stop()
    server = await start_replica(config, "solo-restarted", tmp_path)
    try:
        for v in (used, unused):
            r = await execute_on(server, v)
            assert r.is_error and text_of(r).startswith("TOKEN_OTHER_INSTANCE"), text_of(r)
    finally:
        await server.stop()
