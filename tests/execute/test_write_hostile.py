"""Writes under hostile input (issue 18): the cap counts what the engine changed; errors show no row.

Every case checks the database afterwards, not only the error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.errors import ExecutionError, WriteLimitExceededError
from sqlmode.execute import open_write_executor
from tests.plugins.postgres import create_database

CAP = {"code_mode": {"allow_writes": True, "allow_deletes": True, "max_write_rows": 5}}
SSN = "123-45-6789"


def duck_count(path: Path, sql: str) -> object:
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute(sql).fetchone()
        assert row is not None, sql
        return row[0]
    finally:
        con.close()


def duck_fingerprint(path: Path) -> tuple[object, ...]:
    return tuple(
        duck_count(path, q)
        for q in (
            "SELECT count(*) FROM order_items",
            "SELECT sum(hash(oi)) FROM order_items oi",
            "SELECT sum(hash(t)) FROM support_tickets t",
        )
    )


# Each of these changes far more rows than the cap while its result looks like a small count.
DUCK_BYPASSES = [
    'DELETE FROM order_items RETURNING 0 AS "Count"',
    'UPDATE order_items SET quantity = quantity + 1 RETURNING 0 AS "Count"',
    'UPDATE order_items SET quantity = quantity RETURNING 0::BIGINT AS "Count"',
    'UPDATE support_tickets SET status = status WHERE id > 10 RETURNING NULL AS "Count"',
    "INSERT INTO support_tickets SELECT id + 10000000, customer_id, opened_at, closed_at, priority, status, "
    'subject FROM support_tickets RETURNING 1 AS "Count"',
    # A keyword used as a name: the result is the engine's count after all.
    "UPDATE order_items SET quantity = quantity + 1 "
    "WHERE order_id IN (SELECT order_id AS returning FROM order_items)",
    "DELETE FROM order_items WHERE order_id > 100",
]


@pytest.mark.parametrize("sql", DUCK_BYPASSES)
async def test_duckdb_cap_holds_whatever_the_result_looks_like(
    duck_settings: Callable[..., Settings], duck_copy: Path, sql: str
) -> None:
    before = duck_fingerprint(duck_copy)
    async with open_write_executor(duck_settings(CAP)) as w:
        with pytest.raises(WriteLimitExceededError) as ei:
            await w.run_write(sql)
    assert "rolled back" in ei.value.message
    assert duck_fingerprint(duck_copy) == before


@pytest.mark.parametrize(
    ("sql", "affected", "rows"),
    [
        ("UPDATE support_tickets SET status = 'void' WHERE id <= 3", 3, []),
        ("UPDATE support_tickets SET status = 'void' WHERE id <= 2 RETURNING id", 2, [[1], [2]]),
        ("UPDATE support_tickets SET status = 'void' WHERE id = 4 RETURNING 9 AS \"Count\"", 1, [[9]]),
        ("UPDATE support_tickets SET status = 'void' WHERE id < 0", 0, []),
        ("DELETE FROM support_tickets WHERE id IN (5, 6) RETURNING 'returning' AS x", 2, [["returning"]] * 2),
    ],
)
async def test_duckdb_reports_the_true_count(
    duck_settings: Callable[..., Settings], duck_copy: Path, sql: str, affected: int, rows: list[list[object]]
) -> None:
    async with open_write_executor(duck_settings(CAP)) as w:
        r = await w.run_write(sql)
    assert (r.affected_rows, r.rows) == (affected, rows)
    assert duck_count(duck_copy, "SELECT count(*) FROM support_tickets WHERE status = 'void'") == (
        affected if sql.startswith("UPDATE") else 0
    )


@pytest.fixture(scope="module")
async def hostile_db(pg_admin_url: str) -> AsyncIterator[str]:
    url = await create_database(pg_admin_url, "sqlmode_hostile")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, ssn text NOT NULL "
            "CHECK (ssn ~ '^[0-9-]+$'), note text);"
            f"INSERT INTO people SELECT g, 'p' || g, '{SSN}', 'n' FROM generate_series(1, 20) g;"
            "CREATE TABLE log (id int);"
        )
    finally:
        await conn.close()
    yield url


async def people(url: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch("SELECT * FROM people ORDER BY id")]
    finally:
        await conn.close()


def pg_cap(pg_settings: Callable[..., Settings], url: str) -> Settings:
    # As the superuser on purpose: the cap must hold with nothing in the database to help it
    # (development opt-out; start-up refuses such a writer otherwise, see test_writer_role.py).
    return pg_settings(
        url, {"database": {"write_url": url, "tables": [], "allow_privileged_role": True}, **CAP}
    )


@pytest.mark.parametrize(
    "sql",
    [
        # The command tag says INSERT 0 0; the CTE changed every row.
        "WITH u AS (UPDATE people SET note = 'x' RETURNING 1) INSERT INTO log SELECT 1 WHERE false",
        "WITH d AS (DELETE FROM people RETURNING id) INSERT INTO log SELECT id FROM d LIMIT 1",
        'UPDATE people SET note = note RETURNING 0 AS "Count"',
        "UPDATE people SET note = note WHERE id > 2",
    ],
)
async def test_postgres_cap_counts_every_row_the_transaction_changed(
    pg_settings: Callable[..., Settings], hostile_db: str, sql: str
) -> None:
    before = await people(hostile_db)
    async with open_write_executor(pg_cap(pg_settings, hostile_db)) as w:
        with pytest.raises(WriteLimitExceededError) as ei:
            await w.run_write(sql)
    assert "rolled back" in ei.value.message
    assert await people(hostile_db) == before


async def test_postgres_counts_upserts_and_cte_writes(
    pg_settings: Callable[..., Settings], hostile_db: str
) -> None:
    async with open_write_executor(pg_cap(pg_settings, hostile_db)) as w:
        r = await w.run_write(
            "INSERT INTO people VALUES (1, 'p1', '1', 'n'), (21, 'p21', '2', 'n') "
            "ON CONFLICT (id) DO UPDATE SET note = 'upserted'"
        )
        assert r.affected_rows == 2
        r = await w.run_write(
            "WITH u AS (UPDATE people SET note = 'cte' WHERE id = 2 RETURNING id) "
            "INSERT INTO log SELECT id FROM u"
        )
        assert r.affected_rows == 2  # one row updated in the CTE, one inserted by the outer statement
        await w.run_write("DELETE FROM people WHERE id = 21")
        await w.run_write("DELETE FROM log")


# (statement, words that must appear): each fails on a constraint of the people table.
FAILING_WRITES = [
    ("UPDATE people SET name = NULL WHERE id = 1", ["NOT NULL", "name"]),
    ("INSERT INTO people (id, name) VALUES (99, 'x')", ["NOT NULL"]),
    ("INSERT INTO people (id, name, ssn) VALUES (1, 'x', '1')", ["unique"]),
    ("UPDATE people SET note = NULL, ssn = 'abc' WHERE id = 3", ["CHECK"]),
    ("UPDATE people SET id = note::int WHERE id = 4", ["integer"]),
]


def assert_leaks_nothing(message: str, hint: str) -> None:
    for secret in (SSN, "Failing row", "p1", "p4", "(id)=", "Key ("):
        assert secret not in message and secret not in hint, (secret, message, hint)


@pytest.mark.parametrize(("sql", "words"), FAILING_WRITES)
@pytest.mark.parametrize("role", ["superuser"])
async def test_postgres_write_errors_show_no_row(
    pg_settings: Callable[..., Settings], hostile_db: str, sql: str, words: list[str], role: str
) -> None:
    before = await people(hostile_db)
    async with open_write_executor(pg_cap(pg_settings, hostile_db)) as w:
        with pytest.raises(ExecutionError) as ei:
            await w.run_write(sql)
    message = ei.value.message
    assert_leaks_nothing(message, ei.value.hint)
    for word in words:
        assert word in message
    if "ssn" not in sql:
        assert "ssn" not in message  # the query did not name it, so the error does not either
    assert await people(hostile_db) == before


@pytest.mark.parametrize(("sql", "words"), FAILING_WRITES)
async def test_duckdb_write_errors_show_no_row(
    duck_settings: Callable[..., Settings], tmp_path: Path, sql: str, words: list[str]
) -> None:
    path = tmp_path / "p.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE people (id int PRIMARY KEY, name text NOT NULL, ssn text NOT NULL "
        "CHECK (regexp_full_match(ssn, '[0-9-]+')), note text);"
        f"INSERT INTO people SELECT g, 'p' || g, '{SSN}', 'n' FROM range(1, 21) t(g);"
    )
    con.close()
    settings = duck_settings({"database": {"url": f"duckdb:///{path}", "tables": []}, **CAP})
    async with open_write_executor(settings) as w:
        with pytest.raises(ExecutionError) as ei:
            await w.run_write(sql)
    assert_leaks_nothing(ei.value.message, ei.value.hint)
    if "ssn" not in sql:
        assert "ssn" not in ei.value.message
    assert duck_count(path, "SELECT count(*) FROM people WHERE ssn = '123-45-6789' AND note = 'n'") == 20
