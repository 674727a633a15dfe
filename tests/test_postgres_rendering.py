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


# -- result column names ------------------------------------------------------------------------
#
# PostgreSQL names a result column without AS after its spelling (FigureColname): sqlglot renders
# strpos(email, '.') as POSITION('.' IN email), "position" instead of "strpos"; now() as
# CURRENT_TIMESTAMP; mod(id, 3) as `id % 3`, "?column?" instead of "mod". What runs keeps the
# written names (analyze/names.py, engines/_postgres_names.py).

RENAMED = [
    "SELECT strpos(email, '.'), substr(name, 1, 2), char_length(name), ceiling(total) FROM customers "
    "JOIN orders ON orders.customer_id = customers.id ORDER BY orders.id LIMIT 3",
    "SELECT now() IS NOT NULL, mod(id, 3), btrim(name), pow(id, 2) FROM customers ORDER BY id LIMIT 3",
    "SELECT variance(total), character_length(max(status)) FROM orders",
    # a rendering that keeps the name gets no alias; a written alias stays the alias
    "SELECT upper(name), strpos(email, '@') AS at, CASE WHEN id > 3 THEN substr(name, 1, 1) END "
    "FROM customers ORDER BY id LIMIT 3",
    # names come from the leftmost SELECT of a set operation
    "SELECT substr(name, 1, 3) FROM customers UNION SELECT status FROM orders ORDER BY 1 LIMIT 5",
]


async def _prepared_names(con: asyncpg.Connection, sql: str) -> list[str]:
    return [a.name for a in (await con.prepare(sql)).get_attributes()]


@pytest.mark.parametrize("sql", RENAMED)
async def test_rendering_keeps_the_column_names_of_the_query_as_written(
    sql: str, pg_reader_url: str, pg_settings: Callable[..., Settings]
) -> None:
    con = await asyncpg.connect(pg_reader_url)
    try:
        written = await _prepared_names(con, sql)
        direct = [[json_like(v) for v in r.values()] for r in await con.fetch(sql)]
    finally:
        await con.close()
    async with CodeModeService(pg_settings(pg_reader_url)) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, v.violations
        r = await svc.execute(v.normalized_code, v.approval_token or "")
    assert [c.name for c in r.columns] == written
    assert r.rows == direct
    # the idempotence execute relies on: the normalized code is its own normalization
    async with CodeModeService(pg_settings(pg_reader_url)) as svc:
        again = await svc.validate(v.normalized_code)
    assert again.normalized_code == v.normalized_code


# Each shape of PostgreSQL's naming rule, against PostgreSQL's own names for the same text.
NAMING_SHAPES = (
    "SELECT id, c.name, (c).name, t.x, pg_catalog.upper(c.name), now(), current_date, "
    "localtimestamp, CAST(id AS bigint), 1::int, '1 day'::interval, 'a', 1 + 2, -id, NOT true, "
    "id IS NULL, CASE WHEN id > 1 THEN 1 END, CASE WHEN id > 1 THEN 1 ELSE id END, ARRAY[1], "
    "ROW(1, 2), coalesce(c.name, ''), greatest(1, 2), least(1, 2), nullif(id, 2), "
    "(SELECT max(id) FROM orders), (SELECT 1 AS one), EXISTS (SELECT 1), ARRAY(SELECT 1), "
    "position('a' IN c.name), trim(c.name), substring(c.name FROM 1 FOR 2), EXTRACT(YEAR FROM c.created_at), "
    "overlay(c.name PLACING 'x' FROM 1), c.name COLLATE \"C\", (id::text)::int, ('{1}'::int[])[1] "
    "FROM customers AS c, (SELECT 1 AS x) AS t ORDER BY c.id LIMIT 1"
)


async def test_naming_rule_matches_postgresql(pg_sample_url: str) -> None:
    from sqlmode.engines._postgres_names import output_names

    # The owner's login: asyncpg looks array types up with set_config, which the reader may not call.
    con = await asyncpg.connect(pg_sample_url)
    try:
        for sql in (NAMING_SHAPES, "SELECT *, id AS k FROM orders LIMIT 1", "SELECT count(*) FROM orders"):
            names = output_names(sql)
            assert names is not None
            real = await _prepared_names(con, sql)
            if None not in names:
                assert names == real
            else:  # a star stands for the table's own columns
                assert names[-1] == real[-1] == "k"
    finally:
        await con.close()
    assert output_names("SELECT 1; SELECT 2") is None
    assert output_names("VALUES (1)") is None
    assert output_names("not sql") is None
