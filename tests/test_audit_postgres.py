"""The PostgreSQL audit sink: one chain per replica, verified together; tampering in the tables is found."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sqlmode.audit import AuditKeys
from sqlmode.audit.postgres import PostgresAuditSink, verify_postgres_audit
from sqlmode.errors import AuditError
from tests.plugins.postgres import create_database

pytestmark = pytest.mark.postgres
KEY = AuditKeys("a1", b"k" * 40)
RECORDS = "sqlmode_audit.records"


@pytest.fixture
async def audit_db(pg_admin_url: str) -> str:
    return await create_database(pg_admin_url, "sqlmode_audit_test")


async def fill(url: str, replicas: tuple[str, ...] = ("r1", "r2"), n: int = 5) -> None:
    sinks = [await PostgresAuditSink(url, KEY, replica=r).open() for r in replicas]
    try:
        # Concurrent appends per replica: batched, still one chain each.
        await asyncio.gather(
            *(s.append_async({"event": "validate", "user": "ana", "i": i}) for s in sinks for i in range(n))
        )
    finally:
        for s in sinks:
            await s.aclose()


async def sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def test_chains_per_replica_verify_and_resume(audit_db: str) -> None:
    await fill(audit_db)
    await fill(audit_db, ("r1",), 2)  # a restart with the same replica id continues its chain
    report = await verify_postgres_audit(audit_db, KEY)
    assert report.ok and report.records == 12 and report.chains == 2, report.render()
    assert "OK, 12 records, 2 chains, chain intact" in report.render()


def _non_canonical(url: str) -> Awaitable[None]:
    return sql(url, f"UPDATE {RECORDS} SET line = replace(line, ',', ', ') WHERE replica = 'r2' AND seq = 3")


def _remove(url: str) -> Awaitable[None]:
    return sql(url, "DELETE FROM sqlmode_audit.records WHERE replica = 'r1' AND seq = 2")


def _cut_tail(url: str) -> Awaitable[None]:
    return sql(url, "DELETE FROM sqlmode_audit.records WHERE replica = 'r2' AND seq = 5")


def _drop_anchor(url: str) -> Awaitable[None]:
    return sql(url, "DELETE FROM sqlmode_audit.heads WHERE replica = 'r1'")


async def _forge(url: str) -> None:
    # A record appended with a key of the attacker's choosing, anchor moved along.
    sink = await PostgresAuditSink(url, AuditKeys("a1", b"x" * 40), replica="r1").open()
    await sink.aclose()


async def _forge_with_rewritten_anchor(url: str) -> None:
    forger = AuditKeys("a1", b"x" * 40)
    conn = await asyncpg.connect(url)
    try:
        from sqlmode.audit import canonical

        last = await conn.fetchval(
            "SELECT line FROM sqlmode_audit.records WHERE replica = 'r1' ORDER BY seq DESC LIMIT 1"
        )
        import json

        rec = json.loads(last)
        await conn.execute(
            "UPDATE sqlmode_audit.heads SET line = $1 WHERE replica = 'r1'",
            canonical(forger.anchor("r1", rec["seq"], rec["mac"])).decode(),
        )
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("tamper", "first"),
    [
        (_non_canonical, "replica r2 record 3: not a canonical JSON record"),
        (_remove, "replica r1 record 3: chain broken before record 3"),
        (_cut_tail, "records 5..5 were removed from the end"),
        (_drop_anchor, "anchor of replica r1: the anchor is missing"),
        (_forge_with_rewritten_anchor, "anchor of replica r1: the anchor was edited or forged"),
    ],
    ids=["non-canonical", "removed", "cut-tail", "anchor-dropped", "anchor-forged"],
)
async def test_tampering_in_the_tables_is_found(
    audit_db: str, tamper: Callable[[str], Awaitable[None]], first: str
) -> None:
    await fill(audit_db)
    await tamper(audit_db)
    report = await verify_postgres_audit(audit_db, KEY)
    assert report.exit_code == 1 and first in report.problems[0], report.render()


async def test_an_edit_that_stays_canonical_is_a_mac_mismatch(audit_db: str) -> None:
    await fill(audit_db)
    swap = """replace(line, '"user":"ana"', '"user":"eve"')"""
    await sql(audit_db, f"UPDATE {RECORDS} SET line = {swap} WHERE replica = 'r2' AND seq = 3")
    report = await verify_postgres_audit(audit_db, KEY)
    assert (
        report.exit_code == 1
        and report.problems[0] == "replica r2 record 3: record 3 was edited or forged (MAC mismatch)"
    )


async def test_an_anchor_that_does_not_verify_stops_the_replica_from_starting(audit_db: str) -> None:
    await fill(audit_db, ("r1",))
    with pytest.raises(AuditError, match="anchor of replica 'r1'"):
        await _forge(audit_db)


async def test_two_live_processes_with_one_replica_id_are_refused_not_forked(audit_db: str) -> None:
    one = await PostgresAuditSink(audit_db, KEY, replica="same").open()
    two = await PostgresAuditSink(audit_db, KEY, replica="same").open()
    try:
        await one.append_async({"event": "validate"}, durable=True)
        with pytest.raises(AuditError, match="another process appends to the audit chain of replica 'same'"):
            await two.append_async({"event": "validate"}, durable=True)
        await one.append_async({"event": "validate"}, durable=True)  # the first writer goes on
    finally:
        await one.aclose()
        await two.aclose()
    assert (await verify_postgres_audit(audit_db, KEY)).ok


async def test_unreachable_or_empty_is_exit_2(audit_db: str) -> None:
    report = await verify_postgres_audit(audit_db, KEY)
    assert report.exit_code == 2 and "no audit tables" in report.render()
    report = await verify_postgres_audit("postgresql://u@127.0.0.1:9/x", KEY)
    assert report.exit_code == 2 and "cannot connect" in report.render()


async def test_file_and_database_together_each_get_every_record(audit_db: str, make_settings: Any) -> None:
    from sqlmode.audit import verify_configured
    from sqlmode.service import CodeModeService

    settings = make_settings({"audit": {"url": audit_db, "replica_id": "tee"}})
    async with CodeModeService(settings) as svc:
        v = await svc.validate("SELECT count(*) AS n FROM orders")
        await svc.execute(v.normalized_code, v.approval_token or "")
    conn = await asyncpg.connect(audit_db)
    try:
        in_db = [r["line"] for r in await conn.fetch(f"SELECT line FROM {RECORDS} ORDER BY seq")]
    finally:
        await conn.close()
    in_file = Path(settings.audit.path).read_text().splitlines()  # noqa: ASYNC240
    assert len(in_db) == len(in_file) == 3
    assert [json.loads(x)["event"] for x in in_db] == [json.loads(x)["event"] for x in in_file]
    report = await verify_configured(settings)
    assert report.ok and report.records == 6 and report.chains == 2, report.render()
