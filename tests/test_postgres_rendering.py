"""What runs on PostgreSQL is the normalized code: it must return what the query as written returns,
of the same type (engines/_postgres_sqlglot.py).

sqlglot read ``date_part('year', ts)`` as ``EXTRACT(YEAR FROM ts)`` and rendered that; PostgreSQL
returns double precision for the first and numeric for the second, so the answer carried the
number 2024 as the text "2024". ``log10(x)`` became ``LOG(10, x)`` in the same way (numeric
instead of double precision). Each query here runs straight on the database and through
validate + execute; the values and their JSON types must match.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService


def json_like(value: Any) -> Any:
    # The executor's JSON-safe forms: numerics as exact text, double precision as a float.
    return str(value) if isinstance(value, Decimal) else value


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT date_part('year', created_at) AS y, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1",
        "SELECT id, date_part('epoch', created_at) AS e FROM orders ORDER BY id LIMIT 5",
        "SELECT id, DATE_PART('DOW', created_at) AS d, date_part('month', created_at)::int AS m "
        "FROM orders ORDER BY id LIMIT 5",
        # EXTRACT is numeric as written, and stays EXTRACT
        "SELECT id, EXTRACT(YEAR FROM created_at) AS y FROM orders ORDER BY id LIMIT 5",
        # a field that is not a literal is not a keyword: it stays the call it was
        "SELECT id, date_part(f, created_at) AS v FROM orders, (VALUES ('year'), ('hour')) AS u(f) "
        "ORDER BY id, f LIMIT 6",
        "SELECT id, log10(total) AS l, LOG10(100) AS h FROM orders ORDER BY id LIMIT 5",
        # log(b, x) is numeric as written, and stays log
        "SELECT id, log(10, total) AS l, log(total) AS l1 FROM orders ORDER BY id LIMIT 5",
    ],
)
async def test_rendering_returns_the_values_and_types_of_the_query_as_written(
    sql: str, pg_reader_url: str, pg_settings: Callable[..., Settings]
) -> None:
    con = await asyncpg.connect(pg_reader_url)
    try:
        direct = [[json_like(v) for v in r.values()] for r in await con.fetch(sql)]
    finally:
        await con.close()
    assert direct
    async with CodeModeService(pg_settings(pg_reader_url)) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, v.violations
        r = await svc.execute(v.normalized_code, v.approval_token or "")
    assert r.rows == direct
    assert [[type(x) for x in row] for row in r.rows] == [[type(x) for x in row] for row in direct]
    # what runs names the call as written
    for call in ("DATE_PART", "LOG10"):
        assert (call in v.normalized_code.upper()) == (call in sql.upper())


@pytest.mark.parametrize("sql", ["SELECT log10() AS a", "SELECT log10(100, 2) AS a"])
async def test_a_log10_call_postgres_has_not_is_refused_not_run_as_another(
    sql: str, pg_reader_url: str, pg_settings: Callable[..., Settings]
) -> None:
    # sqlglot's builder kept log10's first argument only: `log10()` ran as LOG(10) and answered 1.
    async with CodeModeService(pg_settings(pg_reader_url)) as svc:
        v = await svc.validate(sql)
    assert not v.is_valid and v.approval_token is None
    assert [x.code for x in v.violations] == ["ENGINE_REFUSED"], v.violations
    assert "log10" in v.violations[0].message
