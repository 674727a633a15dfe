"""Writes when config allows them: own token, action and risk, a capped transaction, database checked."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.errors import TokenCodeMismatchError, WriteLimitExceededError
from sqlmode.execute.writes import WriteResult
from sqlmode.service import CodeModeService

TABLES = ["customers", "products", "orders", "order_items", "support_tickets", "contacts"]


@pytest.fixture
def writable_db(sample_duckdb_path: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "writable.duckdb"
    shutil.copy(sample_duckdb_path, copy)
    return copy


def settings_for(make: Callable[..., Settings], db: Path, *, writes: bool, deletes: bool = False) -> Settings:
    ops: list[str] = ["read", "write"] + (["delete"] if deletes else [])
    overrides: dict[str, Any] = {
        "database": {"url": f"duckdb:///{db}", "tables": [{"name": t, "operations": ops} for t in TABLES]},
        "code_mode": {
            "allow_writes": writes,
            "allow_deletes": deletes,
            "max_write_rows": 5,
            "cedar_policies": {"read_only_mode": not writes},
        },
    }
    return make(overrides)


def fingerprint(db: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT (SELECT count(*) FROM orders), (SELECT sum(hash(id, status, total)) FROM orders), "
            "(SELECT count(*) FROM support_tickets)"
        ).fetchall()


async def test_update_validates_as_write_and_runs_with_its_own_token(
    make_settings: Callable[..., Settings], writable_db: Path
) -> None:
    settings = settings_for(make_settings, writable_db, writes=True)
    async with CodeModeService(settings) as svc:
        v = await svc.validate("UPDATE orders SET status = 'void' WHERE id = 3")
        assert v.is_valid, v.violations
        assert v.action == "write" and v.risk_level in ("high", "critical")
        r = await svc.execute(v.normalized_code, v.approval_token or "")
        assert getattr(r, "affected_rows", None) == 1 and getattr(r, "statement", None) == "UPDATE"
    with duckdb.connect(str(writable_db), read_only=True) as con:
        assert con.execute("SELECT status FROM orders WHERE id = 3").fetchone() == ("void",)


async def test_update_over_the_row_cap_is_rolled_back(
    make_settings: Callable[..., Settings], writable_db: Path
) -> None:
    settings = settings_for(make_settings, writable_db, writes=True)
    before = fingerprint(writable_db)
    async with CodeModeService(settings) as svc:
        v = await svc.validate("UPDATE orders SET status = 'void' WHERE id <= 50")
        assert v.is_valid, v.violations
        with pytest.raises(WriteLimitExceededError):
            await svc.execute(v.normalized_code, v.approval_token or "")
    assert fingerprint(writable_db) == before


async def test_writes_refused_by_default_and_nothing_changes(
    make_settings: Callable[..., Settings], writable_db: Path
) -> None:
    settings = settings_for(make_settings, writable_db, writes=False)
    before = fingerprint(writable_db)
    async with CodeModeService(settings) as svc:
        for sql in (
            "UPDATE orders SET status = 'void' WHERE id = 3",
            "INSERT INTO support_tickets (id, customer_id, opened_at, priority, status, subject) "
            "VALUES (999999, 1, now(), 'low', 'open', 'x')",
            "DELETE FROM orders WHERE id = 3",
        ):
            v = await svc.validate(sql)
            assert not v.is_valid and v.approval_token is None, sql
            assert v.violations
    assert fingerprint(writable_db) == before


async def test_delete_needs_allow_deletes_even_when_writes_are_allowed(
    make_settings: Callable[..., Settings], writable_db: Path
) -> None:
    settings = settings_for(make_settings, writable_db, writes=True, deletes=False)
    before = fingerprint(writable_db)
    async with CodeModeService(settings) as svc:
        v = await svc.validate("DELETE FROM orders WHERE id = 3")
        assert not v.is_valid and v.action == "delete"
    assert fingerprint(writable_db) == before


async def test_read_token_cannot_run_a_write(
    make_settings: Callable[..., Settings], writable_db: Path
) -> None:
    settings = settings_for(make_settings, writable_db, writes=True)
    before = fingerprint(writable_db)
    async with CodeModeService(settings) as svc:
        v = await svc.validate("SELECT id FROM orders WHERE id = 3")
        with pytest.raises(TokenCodeMismatchError):
            await svc.execute("UPDATE orders SET status = 'void' WHERE id = 3", v.approval_token or "")
    assert fingerprint(writable_db) == before


def audit_records(settings: Settings) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in Path(settings.audit.path).read_text().splitlines() if line.strip()]


@pytest.mark.parametrize(
    "sql",
    [
        'DELETE FROM order_items RETURNING 0 AS "Count"',
        'UPDATE support_tickets SET status = status RETURNING 0 AS "Count"',
    ],
)
async def test_a_fake_count_column_neither_lifts_the_cap_nor_fools_the_audit(
    make_settings: Callable[..., Settings], writable_db: Path, sql: str
) -> None:
    settings = settings_for(make_settings, writable_db, writes=True, deletes=True)
    with duckdb.connect(str(writable_db), read_only=True) as con:
        items = con.execute("SELECT count(*), sum(hash(quantity)) FROM order_items").fetchall()
    before = fingerprint(writable_db)
    async with CodeModeService(settings) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, v.violations
        with pytest.raises(WriteLimitExceededError) as ei:
            await svc.execute(v.normalized_code, v.approval_token or "")
        # One small write: the audit has the engine's count, not the RETURNING rows (there are none).
        ok = await svc.validate("UPDATE support_tickets SET status = 'closed' WHERE id IN (1, 2)")
        r = await svc.execute(ok.normalized_code, ok.approval_token or "")
        assert isinstance(r, WriteResult)
        assert r.affected_rows == 2 and r.row_count == 0
    with duckdb.connect(str(writable_db), read_only=True) as con:
        assert con.execute("SELECT count(*), sum(hash(quantity)) FROM order_items").fetchall() == items
    assert fingerprint(writable_db)[0][:2] == before[0][:2]
    executed = [r for r in audit_records(settings) if r["event"] == "executed"]
    assert executed[0]["decision"] == "failed" and executed[0]["error"] == ei.value.code
    assert "rows" not in executed[0] and "affected_rows" not in executed[0]
    assert (executed[1]["decision"], executed[1]["affected_rows"]) == ("ok", 2)


UPSERT = (
    "INSERT INTO contacts (id, customer_id, contacted_at, channel, rep) "
    "VALUES (1, 1, TIMESTAMP '2026-01-01', 'email', 'upserted') ON CONFLICT (id) DO UPDATE SET rep = {value}"
)


async def test_an_upsert_reads_the_proposed_row_through_excluded(
    make_settings: Callable[..., Settings], writable_db: Path
) -> None:
    """`excluded` is the row proposed for insertion: its columns are the target table's (it was refused
    as an unknown column, so no upsert could run)."""
    settings = settings_for(make_settings, writable_db, writes=True)
    before = fingerprint(writable_db)
    async with CodeModeService(settings) as svc:
        v = await svc.validate(UPSERT.format(value="excluded.rep"))
        assert v.is_valid, v.violations
        r = await svc.execute(v.normalized_code, v.approval_token or "")
        assert getattr(r, "affected_rows", None) == 1
        leak = (
            "INSERT INTO customers (id, name, email, region, segment, created_at) VALUES "
            "(1, 'a', 'b', 'c', 'd', TIMESTAMP '2026-01-01') "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.ssn"
        )
        # the proposed row's blocked column is refused like the table's own
        refused = {leak: "COLUMN_BLOCKED", UPSERT.format(value="excluded.nope"): "UNKNOWN_COLUMN"}
        for sql, code in refused.items():
            bad = await svc.validate(sql)
            assert not bad.is_valid and {x.code for x in bad.violations} == {code}, bad.violations
    with duckdb.connect(str(writable_db), read_only=True) as con:
        assert con.execute("SELECT rep FROM contacts WHERE id = 1").fetchone() == ("upserted",)
    assert fingerprint(writable_db) == before  # orders and tickets: nothing else changed


async def test_a_write_after_a_with_clause_runs(
    make_settings: Callable[..., Settings], writable_db: Path
) -> None:
    settings = settings_for(make_settings, writable_db, writes=True)
    sql = (
        "WITH t AS (SELECT id FROM support_tickets WHERE priority = 'low' ORDER BY id LIMIT 2) "
        "UPDATE support_tickets SET priority = 'medium' WHERE id IN (SELECT id FROM t)"
    )
    with duckdb.connect(str(writable_db), read_only=True) as con:
        low = con.execute("SELECT id FROM support_tickets WHERE priority = 'low' ORDER BY id LIMIT 2")
        ids = [r[0] for r in low.fetchall()]
    async with CodeModeService(settings) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, v.violations
        r = await svc.execute(v.normalized_code, v.approval_token or "")
        assert getattr(r, "affected_rows", None) == 2
    with duckdb.connect(str(writable_db), read_only=True) as con:
        got = con.execute(f"SELECT DISTINCT priority FROM support_tickets WHERE id IN ({ids[0]}, {ids[1]})")
        assert got.fetchall() == [("medium",)]
