"""A `*` in a subquery or CTE whose readers name only some of its columns.

The analyzer counts only what the readers name (docs/analyzer-binding.md), but PostgreSQL checks
a reader's privilege on every column a `*` expands to: `EXISTS (SELECT * FROM customers ...)` was
refused for the blocked `ssn` the query never reads. Where the engine checks so
(``EngineTraits.spells_out_stars``), the normalized code writes such a star over a table with
blocked columns as the columns the query reads (analyze/rewrite.py: ``spell_out_stars``). Each
query here runs as the superuser's and the reader role's connection and on DuckDB, and answers as
the same question written with named columns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService

# (written with a lazy star, the same question with the columns named)
LAZY = [
    (
        "SELECT count(*) AS n FROM orders o "
        "WHERE EXISTS (SELECT * FROM customers c WHERE c.id = o.customer_id)",
        "SELECT count(*) AS n FROM orders o "
        "WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id)",
    ),
    (
        "WITH base AS (SELECT * FROM customers) "
        "SELECT region, count(*) AS n FROM base GROUP BY region ORDER BY region",
        "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region",
    ),
    (
        "SELECT x.region, sum(x.total) AS rev FROM (SELECT c.*, o.total FROM customers c "
        "JOIN orders o ON o.customer_id = c.id) x GROUP BY 1 ORDER BY 1",
        "SELECT c.region, sum(o.total) AS rev FROM customers c JOIN orders o ON o.customer_id = c.id "
        "GROUP BY 1 ORDER BY 1",
    ),
    (
        "WITH r AS (SELECT *, row_number() OVER (PARTITION BY region ORDER BY id) AS rn FROM customers) "
        "SELECT region, name FROM r WHERE rn = 1 ORDER BY region",
        "SELECT region, name FROM customers c WHERE id = (SELECT min(id) FROM customers d "
        "WHERE d.region = c.region) ORDER BY region",
    ),
    (
        "WITH a AS (SELECT * FROM customers), b AS (SELECT * FROM a) "
        "SELECT name FROM b ORDER BY name LIMIT 3",
        "SELECT name FROM customers ORDER BY name LIMIT 3",
    ),
    (
        "SELECT o.id, x.name FROM orders o CROSS JOIN LATERAL "
        "(SELECT * FROM customers c WHERE c.id = o.customer_id) x ORDER BY o.id LIMIT 3",
        "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id LIMIT 3",
    ),
    # A star over a source beside a star CTE its FROM does not name (sqlglot lists every CTE among
    # a query's sources): it reads only its own FROM.
    (
        "WITH base AS (SELECT * FROM customers WHERE name <> ''), agg AS "
        "(SELECT region, count(*) AS n FROM base GROUP BY region) SELECT * FROM agg ORDER BY region",
        "SELECT region, count(*) AS n FROM customers WHERE name <> '' GROUP BY region ORDER BY region",
    ),
    (
        "WITH b AS (SELECT * FROM customers) SELECT * FROM orders o "
        "WHERE o.customer_id IN (SELECT id FROM b) ORDER BY o.id LIMIT 3",
        "SELECT * FROM orders o WHERE o.customer_id IN (SELECT id FROM customers) ORDER BY o.id LIMIT 3",
    ),
    (
        "WITH b AS (SELECT * FROM customers) SELECT * FROM (SELECT name FROM b) t ORDER BY 1 LIMIT 3",
        "SELECT name FROM customers ORDER BY 1 LIMIT 3",
    ),
]


@pytest.fixture
async def svc(login_settings: Settings) -> AsyncIterator[CodeModeService]:
    async with CodeModeService(login_settings) as service:
        yield service


async def _rows(svc: CodeModeService, code: str) -> list[list[object]]:
    v = await svc.validate(code)
    assert v.is_valid, (code, v.violations)
    return (await svc.execute(v.normalized_code, v.approval_token or "")).rows


async def test_a_lazy_star_runs_and_answers_as_the_named_columns_do(svc: CodeModeService) -> None:
    spells = svc.engine.traits.spells_out_stars
    for lazy, named in LAZY:
        v = await svc.validate(lazy)
        assert v.is_valid, (lazy, v.violations)
        assert "ssn" not in v.normalized_code.lower()
        # Written out where the engine checks every column of a star, kept as written elsewhere.
        starred = [s for s in ("SELECT * FROM customers", "SELECT *, ", "c.*") if s in v.normalized_code]
        assert bool(starred) is not spells, (lazy, v.normalized_code)
        got = (await svc.execute(v.normalized_code, v.approval_token or "")).rows
        assert got and got == await _rows(svc, named), lazy
        # The normalized code reads what the query as written reads, no more.
        again = await svc.validate(v.normalized_code)
        assert again.is_valid and again.columns == v.columns, (v.normalized_code, again.violations)


async def test_a_star_given_by_position_keeps_every_position(svc: CodeModeService) -> None:
    # `d` here is region. Where stars are written out, each column the query reads nowhere is a
    # NULL of its type in its place, so `d` is still region, and the reader role runs it.
    spells = svc.engine.traits.spells_out_stars
    region = await _rows(svc, "SELECT region FROM customers ORDER BY 1 LIMIT 2")
    for code in (
        "SELECT t.d FROM (SELECT * FROM customers) AS t(a, b, c, d) ORDER BY 1 LIMIT 2",
        "WITH w(a, b, c, d) AS (SELECT * FROM customers) SELECT d FROM w ORDER BY 1 LIMIT 2",
    ):
        v = await svc.validate(code)
        assert v.is_valid, (code, v.violations)
        assert ("SELECT * FROM customers" in v.normalized_code) is not spells, v.normalized_code
        assert ("CAST(NULL AS VARCHAR(20)) AS ssn" in v.normalized_code) is spells, v.normalized_code
        rows = (await svc.execute(v.normalized_code, v.approval_token or "")).rows
        assert rows == region, code
    # A column list on a parenthesized join names its items' columns by position, through the
    # join: that star stays as written (the reader role: the engine refuses it, with the hint).
    code = (
        "WITH w AS (SELECT * FROM customers) SELECT x.d FROM (w JOIN customers k ON k.id = w.id) "
        "AS x(a, b, c, d) ORDER BY 1 LIMIT 2"
    )
    v = await svc.validate(code)
    if not v.is_valid:
        assert [x.code for x in v.violations] == ["ENGINE_REFUSED"], (code, v.violations)
        assert "name the columns you need instead of *" in (v.violations[0].hint or "")
    else:
        assert "SELECT * FROM customers" in v.normalized_code, v.normalized_code
        assert (await svc.execute(v.normalized_code, v.approval_token or "")).rows == region, code


async def test_a_star_is_written_out_only_where_its_columns_are_exact(svc: CodeModeService) -> None:
    # A star over a table without blocked columns stays; so does one after USING (the engine
    # merges the shared columns) and one a reader takes whole (refused: it reads ssn).
    v = await svc.validate("SELECT t.status FROM (SELECT * FROM orders) t ORDER BY 1 LIMIT 1")
    assert v.is_valid and "SELECT *" in v.normalized_code, v.normalized_code
    v = await svc.validate(
        "SELECT t.region FROM (SELECT * FROM customers c JOIN orders o USING (id)) t ORDER BY 1 LIMIT 1"
    )
    assert "c.name" not in v.normalized_code and "customers.name" not in v.normalized_code
    v = await svc.validate("SELECT t.* FROM (SELECT * FROM customers) t LIMIT 1")
    assert [x.code for x in v.violations] == ["COLUMN_BLOCKED"] and v.approval_token is None
    # An ordinal behind a star may name any column of it (here ssn): the star is read whole.
    v = await svc.validate("SELECT t.name FROM (SELECT * FROM customers ORDER BY 3 LIMIT 1) t")
    assert [x.code for x in v.violations] == ["COLUMN_BLOCKED"] and v.approval_token is None
