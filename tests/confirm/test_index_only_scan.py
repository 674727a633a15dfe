"""PostgreSQL's index-only scans hand their index keys to the node above.

``SELECT count(*) FROM orders CROSS JOIN products`` may plan as a nested loop over two index-only
scans printing ``Output: orders.id``: the query never named ``id``, so reading that Output as a use
refused a plain count as ENGINE_MISMATCH ("the analyzer did not see the query use orders.id").
Such keys are kept apart (``PlanFacts.access_path_columns``): not a sign the analyzer misread
the query, but still checked against blocked columns, so an index whose key is a blocked column
keeps the query refused.

A database of its own with ``enable_seqscan = off``, so the planner picks the index-only scans;
connected as the superuser (switching to the reader role) and as the reader.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sqlmode.config import Settings
from sqlmode.engines._postgres_plan import postgres_plan_facts
from tests.plugins.postgres import create_database, reader_of_its_own, service_as

pytestmark = pytest.mark.postgres

OVERRIDES: dict[str, Any] = {
    "database": {"tables": [], "descriptions": None},
    "code_mode": {
        "blocked_tables": ["credentials", "audit_log"],
        "blocked_fields": ["customers.ssn", "badges.ssn"],
    },
}


@pytest.fixture(scope="module")
async def forced(pg_admin_url: str, pg_settings_factory: Callable[..., Settings]) -> dict[str, str]:
    from sqlmode.sample import load_sample_postgres

    url = await create_database(pg_admin_url, "sqlmode_ios")
    await load_sample_postgres(url)
    conn = await asyncpg.connect(url)
    try:
        # A table whose primary key is a blocked column: its index-only scan returns it.
        await conn.execute(
            "CREATE TABLE badges (ssn text PRIMARY KEY, label text);"
            "INSERT INTO badges SELECT ssn, 'b' FROM customers;"
        )
        await conn.execute("VACUUM ANALYZE")  # index-only scans need the visibility map
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'ALTER DATABASE "{name}" SET enable_seqscan = off')
    finally:
        await conn.close()
    return await reader_of_its_own(url, pg_settings_factory(url, OVERRIDES), "sqlmode_ios")


async def _service(forced: dict[str, str], login: str, factory: Callable[..., Settings], tmp: Path) -> Any:
    return service_as(forced, login, factory, OVERRIDES, tmp)


async def _plan(url: str, sql: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        doc: list[dict[str, Any]] = json.loads(await conn.fetchval("EXPLAIN (VERBOSE, FORMAT JSON) " + sql))
        return doc[0]
    finally:
        await conn.close()


def _node_types(plan: dict[str, Any]) -> list[str]:
    out = [str(plan.get("Node Type"))]
    for child in plan.get("Plans") or []:
        out += _node_types(child)
    return out


@pytest.mark.parametrize("login", ["superuser", "reader"])
async def test_a_count_over_index_only_scans_is_accepted_and_counts(
    forced: dict[str, str], login: str, pg_settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    sql = "SELECT count(*) FROM orders CROSS JOIN products"
    doc = await _plan(forced["superuser"], sql)
    assert "Index Only Scan" in _node_types(doc["Plan"])  # the shape this test is about
    facts = postgres_plan_facts(doc, lambda schema, table: None)
    assert ("public", "orders", "id") in facts.access_path_columns  # the keys, kept apart
    assert not any(t == "orders" for _, t, _ in facts.columns)  # nothing above uses them

    async with await _service(forced, login, pg_settings_factory, tmp_path) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, [(x.code, x.message) for x in v.violations]
        result = await svc.execute(v.normalized_code, v.approval_token or "")
    conn = await asyncpg.connect(forced["superuser"])
    try:
        expected = await conn.fetchval(sql)
    finally:
        await conn.close()
    assert result.rows == [[expected]]


@pytest.mark.parametrize("login", ["superuser", "reader"])
async def test_an_index_only_scan_over_a_blocked_key_stays_refused(
    forced: dict[str, str], login: str, pg_settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    sql = "SELECT count(*) FROM badges CROSS JOIN products"
    doc = await _plan(forced["superuser"], sql)
    assert "Index Only Scan" in _node_types(doc["Plan"])
    async with await _service(forced, login, pg_settings_factory, tmp_path) as svc:
        v = await svc.validate(sql)
    assert not v.is_valid and v.approval_token is None
    assert [x.code for x in v.violations] == ["COLUMN_BLOCKED"], v.violations
    assert "badges.ssn" in v.violations[0].message
