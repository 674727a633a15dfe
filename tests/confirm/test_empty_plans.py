"""A query PostgreSQL proves empty (`WHERE 1 = 0`, `WHERE false`), planned without its scans.

Models use `WHERE 1 = 0` to see a query's columns. The planner folds the condition and replaces
the scans by a `Result` whose one-time filter is `false`, whose output still names the columns
(`o.id`, or a bare `id`) of tables no node scans. The plan reader refused every such query
("a column through an alias it does not define"). Now those columns are placed by the query's own
names and the schema's tables (engines/_postgres_plan.py `_empty_nodes`, `_unscanned`): the
query runs (no rows), and a blocked column behind a view is still refused by the engine check,
in a set operation's arms too (whose columns the plan prints bare).
Checked as the superuser and as the reader: the data returned, and the verdict.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlmode.service import CodeModeService

from .conftest import PgWorld
from .util import codes

EMPTY = {
    "bare": ("SELECT id FROM orders WHERE 1 = 0", []),
    "aggregate": ("SELECT max(total) AS m FROM orders WHERE false", [[None]]),
    "join": ("SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE 1 = 0", []),
    "grouped": (
        "SELECT c.region, count(*) AS n FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE 1 = 0 GROUP BY c.region",
        [],
    ),
    # a set operation's arms print their columns bare, of which arm's table not said
    "union": ("SELECT id FROM orders WHERE 1 = 0 UNION SELECT id FROM customers WHERE false", []),
    "union_of_two_names": (
        "SELECT id FROM orders WHERE false UNION ALL SELECT customer_id FROM support_tickets WHERE false",
        [],
    ),
    "two_aggregates": (
        "SELECT greatest(max(o.id), max(t.id)) AS latest FROM orders o "
        "CROSS JOIN support_tickets t WHERE false",
        [[None]],
    ),
}


@pytest.mark.postgres
@pytest.mark.parametrize("login", ["superuser", "reader"])
async def test_a_provably_empty_query_runs_and_a_blocked_view_column_stays_refused(
    pg_world: PgWorld, login: str, tmp_path: Path
) -> None:
    url = pg_world.admin_url if login == "superuser" else pg_world.reader_url
    audit = {"audit": {"path": str(tmp_path / "audit.jsonl")}}
    async with CodeModeService(pg_world.settings(url, audit)) as svc:
        for name, (sql, rows) in EMPTY.items():
            v = await svc.validate(sql)
            assert v.is_valid, (name, v.violations)
            r = await svc.execute(v.normalized_code, v.approval_token or "")
            assert r.rows == rows, name
        # The view renames customers.ssn to tax_id; the plan names customers.ssn with no scan.
        for sql in (
            "SELECT name, tax_id FROM customer_cards WHERE false",
            "SELECT v.tax_id FROM customer_cards v WHERE 1 = 0",
            "SELECT name FROM customers WHERE false UNION SELECT tax_id FROM customer_cards WHERE false",
        ):
            v = await svc.validate(sql)
            assert not v.is_valid and v.approval_token is None, sql
            assert "COLUMN_BLOCKED" in codes(v), v.violations
            assert any("customers.ssn" in x.message for x in v.violations), v.violations
