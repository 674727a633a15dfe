"""Several Postgres schemas with same-named tables: `public.orders` and `sales.orders` stay two tables.

Everywhere: the snapshot and its schema hash, the schema resource and describe_schema, the
analyzer (columns, blocked lists, ambiguity), the engine confirmation, and the reader role's
grants; through a real MCP client, connected as the superuser and as the reader role.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from mcp import Client

from sqlmode.config import Settings, settings_from_dict
from sqlmode.engines._postgres_grants import apply_grants, grant_script
from sqlmode.schema import SchemaSnapshot, reflect_schema, render_schema
from sqlmode.server import build_server
from sqlmode.service import CodeModeService
from tests.narrow import block_text
from tests.plugins.postgres import create_database
from tests.plugins.sample import TEST_TOKEN_SECRET, deep_merge
from tests.server.conftest import task_scoped

DDL = """
CREATE SCHEMA sales;
CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE public.orders (
    id int PRIMARY KEY, customer_id int REFERENCES public.customers (id), amount numeric(10, 2), note text
);
CREATE TABLE sales.orders (
    id int PRIMARY KEY, customer_id int REFERENCES public.customers (id), total numeric(10, 2), note text
);
CREATE TABLE sales.invoices (id int PRIMARY KEY, order_id int REFERENCES sales.orders (id), paid boolean);
COMMENT ON TABLE sales.orders IS 'Orders booked by the sales team.';
INSERT INTO public.customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Bo', 'bo@example.com');
INSERT INTO public.orders VALUES (10, 1, 5.00, 'public note 10'), (11, 2, 7.50, 'public note 11');
INSERT INTO sales.orders VALUES (20, 2, 100.00, 'SECRET note 20'), (21, 1, 200.00, 'SECRET note 21');
INSERT INTO sales.invoices VALUES (30, 20, true), (31, 21, false);
"""
BLOCKS = {"blocked_fields": ["sales.orders.note", "customers.email"]}


@pytest.fixture(scope="module")
async def two_schema_url(pg_admin_url: str) -> str:
    return await create_database(pg_admin_url, "sqlmode_schemas", DDL)


# A reader of this module's own: roles and their settings (search_path) are cluster-wide, so granting
# the session's `sqlmode_reader` for two schemas changed it under every later test on this server.
ROLE = f"sqlmode_ms_reader_{secrets.token_hex(3)}"


def make_settings(url: str, tmp: Path, code_mode: dict[str, Any] | None = None) -> Settings:
    return settings_from_dict(
        {
            "database": {"url": url, "schemas": ["public", "sales"], "reader_role": ROLE},
            "code_mode": deep_merge({"token_secret": TEST_TOKEN_SECRET, **BLOCKS}, code_mode or {}),
            "audit": {"path": str(tmp / "audit.jsonl")},
            "server": {"name": "shop"},
        }
    )


@pytest.fixture(scope="module")
async def reader_url(two_schema_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    settings = make_settings(two_schema_url, tmp_path_factory.mktemp("grants"))
    return await apply_grants(
        two_schema_url, grant_script(settings, await reflect_schema(settings), role=ROLE)
    )


@pytest.fixture(scope="module", params=["superuser", "reader"])
async def client(
    request: pytest.FixtureRequest,
    two_schema_url: str,
    reader_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Client]:
    url = two_schema_url if request.param == "superuser" else reader_url
    settings = make_settings(url, tmp_path_factory.mktemp(request.param))
    async with CodeModeService(settings) as svc, task_scoped(Client(build_server(svc))) as c:
        yield c


async def snapshot_of(url: str, tmp: Path, **code_mode: Any) -> SchemaSnapshot:
    return await reflect_schema(make_settings(url, tmp, code_mode))


# -- the snapshot and the resource -----------------------------------------------------------------


async def test_same_named_tables_are_both_kept_and_qualified(two_schema_url: str, tmp_path: Path) -> None:
    snap = await snapshot_of(two_schema_url, tmp_path)
    assert set(snap.tables) == {"customers", "public.orders", "sales.orders", "invoices"}
    public, sales = snap.tables["public.orders"], snap.tables["sales.orders"]
    assert (public.schema, [c.name for c in public.columns]) == (
        "public",
        ["id", "customer_id", "amount", "note"],
    )
    assert (sales.schema, [c.name for c in sales.columns]) == (
        "sales",
        ["id", "customer_id", "total", "note"],
    )
    # Foreign keys name the referenced table by its key, across schemas too.
    assert [fk.ref_table for fk in snap.tables["invoices"].foreign_keys] == ["sales.orders"]
    assert [fk.ref_table for fk in sales.foreign_keys] == ["customers"]
    assert snap.blocked_columns == {("sales.orders", "note"), ("customers", "email")}
    assert snap.ambiguous("orders") == ["public.orders", "sales.orders"]
    assert (
        snap.key_of("orders", "sales") == "sales.orders"
        and snap.key_of("ORDERS", "Public") == "public.orders"
    )
    assert snap.key_of("invoices", "sales") == "invoices" and snap.key_of("orders", "hr") == "hr.orders"


async def test_the_resource_shows_both_tables_each_with_its_own_columns(client: Client) -> None:
    text = block_text((await client.read_resource("schema://shop")).contents[0])
    blocks = {re.split(r"[\s:(]", b, maxsplit=1)[0]: b for b in text.split("\n\n")[1:]}
    assert set(blocks) == {"customers", "invoices", "public.orders", "sales.orders"}
    assert "  note TEXT" in blocks["public.orders"] and "  amount NUMERIC(10,2)" in blocks["public.orders"]
    assert "note" not in blocks["sales.orders"] and "  total NUMERIC(10,2)" in blocks["sales.orders"]
    assert "Orders booked by the sales team." in blocks["sales.orders"]
    assert "order_id INTEGER -> sales.orders.id" in blocks["invoices"]
    assert "customer_id INTEGER -> customers.id" in blocks["sales.orders"]
    assert "email" not in text


async def test_describe_schema_takes_qualified_names_and_says_when_a_name_is_ambiguous(
    client: Client,
) -> None:
    one = await client.call_tool("describe_schema", {"table": "sales.orders"})
    assert block_text(one.content[0]).startswith("sales.orders")
    assert "total" in block_text(one.content[0]) and "note" not in block_text(one.content[0])
    resource = await client.read_resource("schema://shop/public.orders")
    assert "note TEXT" in block_text(resource.contents[0])
    same = await client.call_tool("describe_schema", {"table": "sales.invoices"})
    assert block_text(same.content[0]).startswith("invoices")
    bare = await client.call_tool("describe_schema", {"table": "orders"})
    assert bare.is_error
    assert "name it as public.orders or sales.orders" in block_text(bare.content[0])


# -- the analyzer, the engine and the data -----------------------------------------------------------

VALID = [
    ("SELECT note FROM public.orders ORDER BY id", [["public note 10"], ["public note 11"]],
     ["public.orders"], ["public.orders.id", "public.orders.note"]),
    ("SELECT s.total, c.name FROM sales.orders s JOIN customers c ON c.id = s.customer_id ORDER BY s.id",
     [["100.00", "Bo"], ["200.00", "Ada"]], ["customers", "sales.orders"],
     ["customers.id", "customers.name", "sales.orders.customer_id", "sales.orders.id", "sales.orders.total"]),
    ("SELECT p.note, s.total FROM public.orders p JOIN sales.orders s ON s.customer_id = p.customer_id "
     "ORDER BY p.id", [["public note 10", "200.00"], ["public note 11", "100.00"]],
     ["public.orders", "sales.orders"], None),
    ("SELECT i.id, o.total FROM sales.invoices i JOIN sales.orders o ON o.id = i.order_id ORDER BY i.id",
     [[30, "100.00"], [31, "200.00"]], ["invoices", "sales.orders"], None),
    ("SELECT count(*) AS n FROM invoices WHERE paid", [[1]], ["invoices"], None),
    ("WITH x AS (SELECT id, total FROM sales.orders) SELECT x.id, x.total FROM x ORDER BY x.id",
     [[20, "100.00"], [21, "200.00"]], ["sales.orders"], ["sales.orders.id", "sales.orders.total"]),
]  # fmt: skip


def _cell(v: Any) -> Any:
    return str(v) if not isinstance(v, int | bool) else v


@pytest.mark.parametrize(
    ("sql", "rows", "tables", "columns"), VALID, ids=[f"valid{i}" for i in range(len(VALID))]
)
async def test_qualified_queries_read_the_table_they_name(
    client: Client, sql: str, rows: list[list[Any]], tables: list[str], columns: list[str] | None
) -> None:
    v = (await client.call_tool("validate_code", {"code": sql})).structured_content
    assert v is not None and v["is_valid"], v["violations"] if v else v
    assert v["tables"] == tables
    if columns is not None:
        assert v["columns"] == columns
    r = await client.call_tool(
        "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
    )
    assert not r.is_error, r.content
    assert r.structured_content is not None
    assert [[_cell(x) for x in row] for row in r.structured_content["rows"]] == rows


REFUSED = [
    ("SELECT note FROM sales.orders", "COLUMN_BLOCKED", "sales.orders.note"),
    ("SELECT * FROM sales.orders", "COLUMN_BLOCKED", "`sales.orders` has a column that is blocked"),
    ("SELECT o.* FROM sales.orders o", "COLUMN_BLOCKED", "`sales.orders` has a column"),
    ("SELECT id FROM sales.orders WHERE note LIKE 'SECRET%'", "COLUMN_BLOCKED", "sales.orders.note"),
    ("WITH x AS (SELECT * FROM sales.orders) SELECT note FROM x", "COLUMN_BLOCKED", "sales.orders.note"),
    ("SELECT p.id FROM public.orders p WHERE p.id IN (SELECT s.id FROM sales.orders s WHERE s.note > 'A')",
     "COLUMN_BLOCKED", "sales.orders.note"),
    ("SELECT (SELECT max(note) FROM sales.orders) AS n", "COLUMN_BLOCKED", "sales.orders.note"),
    ("SELECT row_to_json(s) FROM sales.orders s", "COLUMN_BLOCKED", "`sales.orders` has a column"),
    ("SELECT email FROM customers", "COLUMN_BLOCKED", "customers.email"),
    ("SELECT id FROM orders", "AMBIGUOUS_TABLE", "public.orders or sales.orders"),
    ("SELECT note FROM orders", "AMBIGUOUS_TABLE", "sales.orders"),
    ("SELECT o.id FROM public.orders p JOIN orders o ON o.id = p.id", "AMBIGUOUS_TABLE", "orders"),
    ("SELECT id FROM public.invoices", "TABLE_NOT_ALLOWED", "sales"),
    ("SELECT id FROM hr.orders", "UNKNOWN_TABLE", "hr.orders"),
    ("SELECT amount FROM sales.orders", "UNKNOWN_COLUMN", "amount"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "code", "said"), REFUSED, ids=[f"refused{i}" for i in range(len(REFUSED))])
async def test_blocked_and_ambiguous_references_are_refused(
    client: Client, sql: str, code: str, said: str
) -> None:
    r = await client.call_tool("validate_code", {"code": sql})
    v = r.structured_content
    assert r.is_error and v is not None and not v["is_valid"] and v["approval_token"] is None
    found = [x for x in v["violations"] if x["code"] == code]
    assert found, v["violations"]
    assert any(said in (x["message"] + " " + (x.get("hint") or "")) for x in found), found


async def test_the_database_itself_refuses_the_blocked_column_to_the_reader(reader_url: str) -> None:
    conn = await asyncpg.connect(reader_url)
    try:
        assert await conn.fetchval("SELECT note FROM public.orders WHERE id = 10") == "public note 10"
        assert await conn.fetchval("SELECT total FROM sales.orders WHERE id = 20") == 100
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT note FROM sales.orders WHERE id = 20")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT email FROM customers WHERE id = 1")
    finally:
        await conn.close()


# -- grants and blocked lists -----------------------------------------------------------------------------


async def test_grants_name_each_table_with_its_schema(two_schema_url: str, tmp_path: Path) -> None:
    settings = make_settings(two_schema_url, tmp_path)
    script = grant_script(settings, await reflect_schema(settings))
    grants = sorted(line for line in script.splitlines() if line.startswith("GRANT SELECT"))
    assert grants == [
        'GRANT SELECT ("id", "customer_id", "amount", "note") ON "public"."orders" TO "sqlmode_reader";',
        'GRANT SELECT ("id", "customer_id", "total") ON "sales"."orders" TO "sqlmode_reader";  '
        "-- not: note (blocked)",
        'GRANT SELECT ("id", "name") ON "public"."customers" TO "sqlmode_reader";  -- not: email (blocked)',
        'GRANT SELECT ("id", "order_id", "paid") ON "sales"."invoices" TO "sqlmode_reader";',
    ]


@pytest.mark.parametrize(
    ("blocked", "visible"),
    [
        (["sales.orders"], {"customers", "invoices", "public.orders"}),
        (["public.orders"], {"customers", "invoices", "sales.orders"}),
        (["orders"], {"customers", "invoices"}),  # a bare name blocks every table of that name
        (["sales.invoices"], {"customers", "public.orders", "sales.orders"}),
    ],
)
async def test_blocked_tables_take_qualified_names(
    two_schema_url: str, tmp_path: Path, blocked: list[str], visible: set[str]
) -> None:
    settings = make_settings(two_schema_url, tmp_path, {"blocked_tables": blocked})
    # As `sqlmode db grants --apply` leaves it for these blocks, with a reader of their own: the
    # superuser connection switches to a role whose grants match them (engines/_postgres_role.py).
    role = f"sqlmode_ms_{secrets.token_hex(3)}"
    settings.database.reader_role = role
    await apply_grants(two_schema_url, grant_script(settings, await reflect_schema(settings), role=role))
    async with CodeModeService(settings) as svc:
        bounded = (await svc.schema()).bounded()
        assert {bounded.display_name(k) for k in bounded.tables} == visible
        text = render_schema(bounded)
        for name in {"customers", "invoices", "public.orders", "sales.orders"} - visible:
            assert not re.search(rf"^{re.escape(name)}\b", text, re.M)
        grants = grant_script(settings, await svc.schema())
        for name in {"public.orders", "sales.orders", "sales.invoices"}:
            schema, table = name.split(".")
            shown = "invoices" if table == "invoices" else name
            granted = f'ON "{schema}"."{table}"' in grants
            assert granted == (shown in visible), name
        for key in ("public.orders", "sales.orders"):
            sql = f"SELECT id FROM {key}"
            v = await svc.validate(sql)
            assert v.is_valid == (key in visible), (sql, v.violations)
            if key not in visible:
                assert [x.code for x in v.violations] == ["TABLE_BLOCKED"]


# -- the Cedar layer names tables as the schema resource does ------------------------------------------------


@pytest.mark.parametrize(
    ("blocked", "denied"),
    [
        (["sales.orders"], {"sales.orders"}),
        (["public.orders"], {"public.orders"}),
        (["orders"], {"public.orders", "sales.orders"}),
        (["sales.invoices"], {"sales.invoices"}),
        (["shop.sales.invoices"], {"sales.invoices"}),
    ],
)
async def test_server_policies_forbid_exactly_the_configured_table(
    two_schema_url: str, tmp_path: Path, blocked: list[str], denied: set[str]
) -> None:
    """The Cedar server policies alone (the analyzer's own blocks left out) refuse the same tables."""
    from sqlmode.analyze import Analyzer
    from sqlmode.policy import build_evaluator

    open_settings = make_settings(two_schema_url, tmp_path)
    snapshot = await reflect_schema(open_settings)
    analyzer = Analyzer(open_settings)
    evaluator = build_evaluator(make_settings(two_schema_url, tmp_path, {"blocked_tables": blocked}))
    async with CodeModeService(open_settings) as svc:
        principal = svc.principal(None, None, None)
    for name in ("public.orders", "sales.orders", "sales.invoices"):
        analysis = analyzer.analyze(f"SELECT id FROM {name}", snapshot)
        assert analysis.ok, analysis.violations
        decision = evaluator.evaluate(principal, analysis)
        assert decision.allowed == (name not in denied), (name, decision)
        if name in denied:
            assert [v.code for v in decision.violations] == ["TABLE_BLOCKED"]
