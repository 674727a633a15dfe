"""Mechanism 2: the database describes the query and must agree with the analyzer.

Each case passes the analyzer (it reasons about names) and is refused because the engine's plan
touches something else: a view over a blocked table, a view renaming a blocked column, a
search_path that resolves `orders` to another schema, a SQL function inlined over a blocked table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService

from .conftest import PgWorld
from .util import codes, refused_by_engine

VIEW_OVER_BLOCKED = "SELECT id, user_id FROM recent_logins"
VIEW_RENAMING_SSN = "SELECT name, tax_id FROM customer_cards"
HARMLESS_VIEW = "SELECT customer_id, spend FROM order_totals ORDER BY spend DESC, customer_id LIMIT 5"
TYPICAL = (
    "SELECT c.region, count(*) AS n, sum(o.total) AS revenue FROM orders AS o "
    "JOIN customers AS c ON c.id = o.customer_id WHERE o.status = 'completed' GROUP BY c.region"
)


@pytest.fixture(scope="module")
async def pg(pg_world: PgWorld) -> AsyncIterator[CodeModeService]:
    settings = pg_world.settings(overrides={"code_mode": {"functions": {"allow": ["all_logins"]}}})
    async with CodeModeService(settings) as svc:
        yield svc


@pytest.fixture
async def duck(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> AsyncIterator[CodeModeService]:
    async with CodeModeService(duck_settings(make_duck())) as svc:
        yield svc


@pytest.fixture(params=["duck", "pg"])
def svc(request: pytest.FixtureRequest) -> CodeModeService:
    """Each dialect's service in turn (resolved at setup, outside the test's event loop)."""
    return request.getfixturevalue(request.param)


async def test_duckdb_view_over_a_blocked_table(duck: CodeModeService) -> None:
    v = await refused_by_engine(duck, VIEW_OVER_BLOCKED, "TABLE_BLOCKED")
    assert "credentials through recent_logins" in v.violations[0].message


async def test_postgres_view_over_a_blocked_table(pg: CodeModeService) -> None:
    v = await refused_by_engine(pg, VIEW_OVER_BLOCKED, "TABLE_BLOCKED")
    assert "credentials through recent_logins" in v.violations[0].message


async def test_view_renaming_a_blocked_column(svc: CodeModeService) -> None:
    v = await refused_by_engine(svc, VIEW_RENAMING_SSN, "COLUMN_BLOCKED")
    assert "customers.ssn" in " ".join(x.message for x in v.violations)


async def test_plain_queries_and_harmless_views_still_run(svc: CodeModeService) -> None:
    view_and_base = (
        "SELECT o.id, t.spend FROM orders AS o JOIN order_totals AS t ON t.customer_id = o.customer_id "
        "WHERE o.id < 10"
    )
    filtered = "SELECT count(*) AS n FROM customers WHERE region = 'EMEA'"
    for sql in (HARMLESS_VIEW, TYPICAL, view_and_base, filtered):
        v = await svc.validate(sql)
        assert v.is_valid, (sql, v.violations)
        r = await svc.execute(v.normalized_code, v.approval_token or "")
        assert r.row_count > 0
    v = await svc.validate(TYPICAL)
    if svc.settings.database.url.startswith("duckdb"):
        # Nothing reads DuckDB's estimates here, so none were asked for (test_estimates.py).
        assert "The database plans to read orders and customers." in v.explanation
    else:
        assert "scans about 50K rows of orders and about 2K rows of customers" in v.explanation


async def test_postgres_search_path_shadowing_a_table(pg_world: PgWorld) -> None:
    sql = "SELECT id, total FROM orders WHERE total > 100"
    async with CodeModeService(pg_world.settings(pg_world.shadow_url)) as svc:
        v = await refused_by_engine(svc, sql, "ENGINE_MISMATCH")
        assert "staging.orders" in v.violations[0].message and "public.orders" in v.violations[0].message
    # The same query as the ordinary reader is fine: the refusal is about what `orders` means.
    async with CodeModeService(pg_world.settings()) as svc:
        assert (await svc.validate(sql)).is_valid


async def test_postgres_inlined_function_in_from_reading_a_blocked_table(pg: CodeModeService) -> None:
    """Postgres MCP Pro #178's shape: an allowed function in FROM; the engine sees what it reads."""
    sql = "SELECT id, user_id FROM all_logins()"
    v = await pg.validate(sql)
    assert not v.is_valid
    # Either the plan shows the inlined read of credentials, or the reader may not read it at all.
    assert {"TABLE_BLOCKED", "ENGINE_REFUSED"} & set(codes(v)), v.violations


async def test_confirmations_are_cached_by_normalized_code_and_schema(pg: CodeModeService) -> None:
    assert pg.confirmer is not None
    calls = 0
    real = pg.executor.explain

    async def counting(sql: str) -> dict:
        nonlocal calls
        calls += 1
        return await real(sql)

    pg.executor.explain = counting
    try:
        sql = "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region"
        first = await pg.validate(sql)
        again = await pg.validate(sql)
        assert first.is_valid and again.is_valid and calls <= 1
        snapshot = await pg.schema()
        analysis = pg.analyzer.analyze(sql, snapshot)
        # Keyed like the service asks: whether the policies read the estimates is part of the key.
        reads = getattr(pg.evaluator, "reads_plan_estimates", True)
        assert (await pg.confirmer.confirm(analysis, snapshot, policy_reads_estimates=reads)).cached
        await pg.execute(again.normalized_code, again.approval_token or "")  # execute re-confirms: cached
        assert calls <= 1
        assert not (await pg.confirmer.confirm(analysis, snapshot, policy_reads_estimates=not reads)).cached
    finally:
        pg.executor.explain = real
