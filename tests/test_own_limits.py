"""A query's own limit keeps its meaning under the row cap.

LIMIT 5 PERCENT, FETCH FIRST n ROWS WITH TIES and a computed LIMIT cannot be replaced by
``LIMIT max_rows + 1`` without changing which rows come back (5% of a table is not 1,001 of its
rows; WITH TIES may return fewer or more than n). The query is wrapped instead and an outer
LIMIT caps it. These run on the real engines and compare with the original query run directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService


def key(rows: Any) -> list[str]:
    return sorted(repr(tuple(None if c is None else str(c) for c in r)) for r in rows)


def direct_duckdb(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(
    ("sql", "expected_rows"),
    [
        # 1% of 30,000 orders; ties of the order are broken by id so the rows are one set
        ("SELECT id, total FROM orders ORDER BY total DESC, id LIMIT 1%", 300),
        ("SELECT id FROM orders ORDER BY id LIMIT 0.1 PERCENT", 30),
        # a computed count: 200 products / 20
        ("SELECT id FROM orders ORDER BY id LIMIT (SELECT count(*) FROM products) / 20", 10),
        (
            "WITH s AS (SELECT customer_id, sum(total) AS spend FROM orders GROUP BY 1) "
            "SELECT * FROM s ORDER BY spend DESC, customer_id LIMIT 1 PERCENT",
            None,
        ),
    ],
)
async def test_duckdb_own_limit_returns_the_original_rows(
    sql: str, expected_rows: int | None, sample_settings: Settings, sample_duckdb_path: Path
) -> None:
    rows = direct_duckdb(sample_duckdb_path, sql)
    if expected_rows is not None:
        assert len(rows) == expected_rows
    async with CodeModeService(sample_settings) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, v.violations
        # the query's own limit is still there, inside the cap
        assert v.normalized_code.startswith("SELECT * FROM (") and v.normalized_code.endswith("LIMIT 1001")
        assert "own limit applies first" in v.explanation
        r = await svc.execute(v.normalized_code, v.approval_token or "")
    assert key(r.rows) == key(rows) and r.truncated is False


async def test_duckdb_own_percent_limit_past_the_cap_is_cut_and_flagged(
    make_settings: Callable[..., Settings], sample_duckdb_path: Path
) -> None:
    sql = "SELECT id FROM orders ORDER BY id LIMIT 1%"
    rows = direct_duckdb(sample_duckdb_path, sql)
    async with CodeModeService(make_settings({"code_mode": {"max_rows": 50}})) as svc:
        v = await svc.validate(sql)
        assert v.is_valid and v.normalized_code.endswith("LIMIT 51")
        r = await svc.execute(v.normalized_code, v.approval_token or "")
    assert r.row_count == 50 and r.truncated is True
    assert set(key(r.rows)) <= set(key(rows))


async def test_duckdb_blocked_column_inside_an_own_limit_stays_blocked(sample_settings: Settings) -> None:
    async with CodeModeService(sample_settings) as svc:
        for sql in (
            "SELECT ssn FROM customers LIMIT 1%",
            "SELECT id FROM orders LIMIT (SELECT length(ssn) FROM customers LIMIT 1)",
        ):
            v = await svc.validate(sql)
            assert not v.is_valid and v.approval_token is None
            assert "COLUMN_BLOCKED" in {x.code for x in v.violations}


@pytest.mark.parametrize(
    "sql",
    [
        # WITH TIES: every order of the lowest status, far more than 3 rows
        "SELECT id, status FROM orders ORDER BY status FETCH FIRST 3 ROWS WITH TIES",
        "SELECT id, total FROM orders ORDER BY total DESC FETCH FIRST 5 ROWS WITH TIES",
        "SELECT id FROM orders ORDER BY id LIMIT (SELECT count(*) FROM products) / 20",
        # two output columns of one name survive the wrapping
        "SELECT o.id, c.id FROM orders o JOIN customers c ON c.id = o.customer_id "
        "ORDER BY o.id FETCH FIRST 2 ROWS WITH TIES",
    ],
)
@pytest.mark.parametrize("login", ["superuser", "reader"])
async def test_postgres_own_limit_returns_the_original_rows(
    sql: str,
    login: str,
    pg_sample_url: str,
    pg_reader_url: str,
    pg_settings: Callable[..., Settings],
) -> None:
    conn = await asyncpg.connect(pg_sample_url)
    try:
        rows = [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()
    url = pg_sample_url if login == "superuser" else pg_reader_url
    async with CodeModeService(pg_settings(url, {"code_mode": {"max_rows": 5000}})) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, v.violations
        assert v.normalized_code.startswith("SELECT * FROM (") and v.normalized_code.endswith("LIMIT 5001")
        r = await svc.execute(v.normalized_code, v.approval_token or "")
    assert r.row_count == len(rows) and key(r.rows) == key(rows)
    assert len(r.columns) == len(rows[0])
