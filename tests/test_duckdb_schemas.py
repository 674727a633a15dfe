"""DuckDB files with several schemas (a dbt project's `staging`, `marts`...): ``database.schemas``.

Before, a DuckDB file exposed its ``main`` schema only and ``database.schemas`` was silently
ignored: a data team whose tables live in other schemas saw nothing. Now the configured schemas
are reflected; a bare name that is one table of the exposed schemas is that table (the normalized
code names its schema: DuckDB cursors have no search path), a name several schemas hold must be
qualified, and schemas not listed stay invisible. Real DuckDB files; the rows are compared with the
database's own answer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.errors import ConfigError
from sqlmode.service import CodeModeService

SECRET = "hush-"

DDL = f"""
CREATE SCHEMA sales;
CREATE SCHEMA staging;
CREATE TABLE main.customers (id INT, name TEXT, ssn TEXT);
INSERT INTO main.customers SELECT i, 'c' || i, '{SECRET}' || i FROM range(1, 6) t(i);
CREATE TABLE sales.orders (id INT, customer_id INT, total DECIMAL(10, 2), note TEXT);
INSERT INTO sales.orders SELECT i, 1 + i % 5, i * 10, '{SECRET}note' || i FROM range(1, 21) t(i);
CREATE TABLE sales."Order Items" ("Order ID" INT, qty INT);
INSERT INTO sales."Order Items" VALUES (1, 2), (2, 5);
CREATE TABLE main.events (id INT, kind TEXT);
INSERT INTO main.events VALUES (1, 'main-event');
CREATE TABLE sales.events (id INT, kind TEXT);
INSERT INTO sales.events VALUES (1, 'sales-event'), (2, 'sales-event');
CREATE VIEW sales.order_totals AS SELECT customer_id, sum(total) AS total FROM sales.orders GROUP BY 1;
CREATE TABLE staging.secret_t (v TEXT);
INSERT INTO staging.secret_t VALUES ('{SECRET}staging');
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schemas") / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute(DDL)
    con.close()
    # The database's own answers come from a twin: this process opens the first with sqlmode's settings.
    twin = path.with_suffix(".direct.duckdb")
    twin.write_bytes(path.read_bytes())
    return path


def _settings(
    make_settings: Callable[..., Settings],
    path: Path,
    blocked: tuple[str, ...] = ("customers.ssn", "sales.orders.note"),
    **database: Any,
) -> Settings:
    return make_settings(
        {
            "database": {"url": f"duckdb:///{path}", "tables": [], "descriptions": None, **database},
            "code_mode": {"blocked_tables": [], "blocked_fields": list(blocked)},
        }
    )


@pytest.fixture
async def svc(warehouse: Path, make_settings: Callable[..., Settings]) -> Any:
    async with CodeModeService(_settings(make_settings, warehouse, schemas=["main", "sales"])) as s:
        yield s


def _direct(warehouse: Path, sql: str) -> list[list[Any]]:
    con = duckdb.connect(str(warehouse.with_suffix(".direct.duckdb")), read_only=True)
    try:
        return [list(r) for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def _same(rows: list[list[Any]], expected: list[list[Any]]) -> bool:
    return [[str(x) for x in r] for r in rows] == [[str(x) for x in r] for r in expected]


@pytest.mark.parametrize(
    ("sql", "direct"),
    [
        # a bare name of a table in another schema: the normalized code names the schema
        ("SELECT count(*) AS n FROM orders", "SELECT count(*) FROM sales.orders"),
        ('SELECT sum(qty) AS q FROM "Order Items"', 'SELECT sum(qty) FROM sales."Order Items"'),
        (
            "SELECT c.name, count(*) AS n FROM customers c JOIN orders o ON o.customer_id = c.id "
            "GROUP BY c.name ORDER BY c.name",
            "SELECT c.name, count(*) FROM main.customers c JOIN sales.orders o ON o.customer_id = c.id "
            "GROUP BY c.name ORDER BY c.name",
        ),
        ("SELECT kind FROM main.events", None),
        ("SELECT kind FROM sales.events ORDER BY id", None),
        (
            "SELECT customer_id, total FROM order_totals ORDER BY 1",
            "SELECT * FROM sales.order_totals ORDER BY 1",
        ),
        # a CTE of the same name as a table is the CTE, and stays unqualified
        ("WITH orders AS (SELECT 1 AS x) SELECT x FROM orders", None),
    ],
)
async def test_tables_of_every_exposed_schema_are_read(
    svc: CodeModeService, warehouse: Path, sql: str, direct: str | None
) -> None:
    v = await svc.validate(sql)
    assert v.is_valid, [(x.code, x.message) for x in v.violations]
    result = await svc.execute(v.normalized_code, v.approval_token or "")
    assert _same(result.rows, _direct(warehouse, direct or sql))
    if "FROM orders" in sql and "WITH" not in sql:
        assert '"sales".orders' in v.normalized_code or '"sales"."orders"' in v.normalized_code


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELECT kind FROM events", "AMBIGUOUS_TABLE"),  # main.events and sales.events
        ("SELECT note FROM orders", "COLUMN_BLOCKED"),
        ("SELECT * FROM sales.orders", "COLUMN_BLOCKED"),
        ("SELECT ssn FROM customers", "COLUMN_BLOCKED"),
        ("SELECT v FROM staging.secret_t", None),  # a schema not listed: not there at all
        ("SELECT v FROM secret_t", None),
    ],
)
async def test_blocks_and_unlisted_schemas_hold(svc: CodeModeService, sql: str, code: str | None) -> None:
    v = await svc.validate(sql)
    assert not v.is_valid and v.approval_token is None
    if code is not None:
        assert code in {x.code for x in v.violations}, v.violations
    assert SECRET not in v.model_dump_json()


async def test_the_schema_resource_lists_the_exposed_schemas_only(svc: CodeModeService) -> None:
    snapshot = await svc.schema()
    names = {(t.schema, t.name) for t in snapshot.bounded().tables.values()}
    assert ("sales", "orders") in names and ("main", "customers") in names
    assert not any(schema == "staging" for schema, _ in names)


async def test_without_database_schemas_only_main_is_exposed(
    warehouse: Path, make_settings: Callable[..., Settings]
) -> None:
    async with CodeModeService(_settings(make_settings, warehouse, ("customers.ssn",))) as s:
        v = await s.validate("SELECT count(*) FROM orders")
        assert not v.is_valid and "UNKNOWN_TABLE" in {x.code for x in v.violations}
        assert (await s.validate("SELECT count(*) FROM customers")).is_valid


async def test_a_misspelt_schema_stops_start_up(
    warehouse: Path, make_settings: Callable[..., Settings]
) -> None:
    with pytest.raises(ConfigError) as e:
        async with CodeModeService(_settings(make_settings, warehouse, schemas=["main", "sale"])):
            pass
    assert "database.schemas[1] = 'sale'" in str(e.value)
