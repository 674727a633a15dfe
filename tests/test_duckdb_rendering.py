"""What runs on DuckDB is the normalized code: it must return what the query as written returns.

The normalized code is sqlglot's rendering of the analyzed tree. Where sqlglot's DuckDB generator
rewrites a call into something that means else (engines/_duckdb_sqlglot.py), the query validates
and then fails or answers differently. Each query here runs straight on DuckDB and through
validate + execute, and the rows must match.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService


def text(c: Any) -> str | None:
    # the executor hands dates and decimals back as JSON-safe text (ISO dates)
    return None if c is None else c.isoformat() if isinstance(c, (date, datetime)) else str(c)


def key(rows: Any) -> list[str]:
    return sorted(repr(tuple(text(c) for c in r)) for r in rows)


@pytest.mark.parametrize(
    "sql",
    [
        # date_add's second argument as an interval-valued expression, not a number
        "SELECT count(*) FROM orders WHERE created_at >= date_add(TIMESTAMP '2026-10-31', -INTERVAL 30 DAY)",
        "SELECT id, date_add(created_at, INTERVAL 1 DAY * 7) AS due FROM orders ORDER BY id LIMIT 5",
        "SELECT id, date_add(opened_at, closed_at - opened_at) AS again FROM support_tickets "
        "WHERE closed_at IS NOT NULL ORDER BY id LIMIT 5",
        "SELECT id, date_add(CAST(created_at AS DATE), to_days(3)) FROM orders ORDER BY id LIMIT 5",
        # an INTERVAL literal: sqlglot's + INTERVAL rendering, unchanged
        "SELECT id, date_add(created_at, INTERVAL 3 DAY) FROM orders ORDER BY id LIMIT 5",
        # a number of days: a DATE stays a DATE (+ INTERVAL 7 DAY made it a TIMESTAMP, and the
        # round trip refused the rendering)
        "SELECT id, date_add(CAST(created_at AS DATE), 7) AS due FROM orders ORDER BY id LIMIT 5",
        "SELECT id, date_add(created_at::DATE, -3) AS due FROM orders ORDER BY id LIMIT 5",
        # a column of days: a DATE stays a DATE (+ INTERVAL would make it a TIMESTAMP)
        "SELECT id, date_add(CAST(created_at AS DATE), quantity) FROM orders o "
        "JOIN order_items i ON i.order_id = o.id ORDER BY id, product_id LIMIT 5",
    ],
)
async def test_rendering_returns_what_the_query_as_written_returns(
    sql: str, sample_settings: Settings, sample_duckdb_path: Path
) -> None:
    con = duckdb.connect(str(sample_duckdb_path), read_only=True)
    try:
        rows = con.execute(sql).fetchall()
    finally:
        con.close()
    assert rows
    async with CodeModeService(sample_settings) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, v.violations
        r = await svc.execute(v.normalized_code, v.approval_token or "")
    assert key(r.rows) == key(rows)
