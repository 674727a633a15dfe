"""Schema reflection, bounding, descriptions, the schema hash, and the golden rendering of the sample.

Regenerate the golden file after an intended change with
``SQLMODE_UPDATE_GOLDEN=1 pytest tests/test_schema.py -k golden``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import asyncpg
import duckdb
import pytest

from sqlmode.config import Settings, bundled_path
from sqlmode.errors import ConfigError
from sqlmode.schema import ColumnInfo, ForeignKey, SchemaSnapshot, TableInfo, reflect_schema, render_schema
from sqlmode.schema.describe import apply_descriptions, load_descriptions, unknown_entries
from sqlmode.schema.render import approx_rows
from sqlmode.service import CodeModeService
from tests.plugins.postgres import create_database

GOLDEN = bundled_path("schema_resources") / "sample.schema.txt"
HIDDEN = ("ssn", "credentials", "audit_log", "secret", "actor")


@pytest.fixture(scope="module")
async def sample_snapshot(sample_duckdb_path: Path, sample_config_data: dict) -> SchemaSnapshot:
    from sqlmode.config import sample_config_path, settings_from_dict
    from tests.plugins.sample import deep_merge

    data = deep_merge(sample_config_data, {"database": {"url": f"duckdb:///{sample_duckdb_path}"}})
    return await reflect_schema(settings_from_dict(data, source=str(sample_config_path())))


@pytest.fixture
def duckdb_copy(sample_duckdb_path: Path, tmp_path: Path) -> Path:
    """A writable copy of the sample warehouse (the session file is shared and read-only)."""
    dst = tmp_path / "copy.duckdb"
    shutil.copy(sample_duckdb_path, dst)
    return dst


def test_rendered_sample_schema_matches_the_golden_file(sample_snapshot: SchemaSnapshot) -> None:
    text = render_schema(sample_snapshot.bounded())
    if os.environ.get("SQLMODE_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), (
        "rendering changed; SQLMODE_UPDATE_GOLDEN=1 regenerates the golden file"
    )


def test_reflection_covers_keys_nullability_comments_and_counts(sample_snapshot: SchemaSnapshot) -> None:
    s = sample_snapshot
    exposed = {"customers", "products", "orders", "order_items", "support_tickets", "contacts"}
    assert set(s.tables) == exposed | {"credentials", "audit_log"}
    items = s.table("order_items")
    assert items is not None
    assert [c.name for c in items.columns if c.primary_key] == ["order_id", "product_id"]
    assert {(fk.columns, fk.ref_table, fk.ref_columns) for fk in items.foreign_keys} == {
        (("order_id",), "orders", ("id",)),
        (("product_id",), "products", ("id",)),
    }
    tickets = s.table("support_tickets")
    assert tickets is not None
    closed, opened = tickets.column("closed_at"), tickets.column("opened_at")
    assert closed is not None and closed.nullable and opened is not None and not opened.nullable
    orders = s.table("orders")
    assert orders is not None and orders.row_count is not None and 25_000 < orders.row_count < 35_000
    total = orders.column("total")
    assert total is not None and total.type == "DECIMAL(12,2)" and total.comment
    # The blocked table is reflected in full (the analyzer needs it) but never exposed.
    creds = s.table("credentials")
    assert creds is not None and creds.column("secret") is not None and not s.is_table_exposed("credentials")


def test_bounded_schema_shows_no_blocked_name_anywhere(sample_snapshot: SchemaSnapshot) -> None:
    bounded = sample_snapshot.bounded()
    assert "credentials" not in bounded.tables and "audit_log" not in bounded.tables
    customers = bounded.table("customers")
    assert customers is not None and customers.column("ssn") is None
    text = render_schema(bounded).lower()
    for hidden in HIDDEN:
        assert hidden not in text, hidden


async def test_views_are_reflected_and_marked(
    duckdb_copy: Path, make_settings: Callable[..., Settings]
) -> None:
    con = duckdb.connect(str(duckdb_copy))
    con.execute("CREATE VIEW big_orders AS SELECT id, customer_id, total FROM orders WHERE total > 1000")
    con.close()
    settings = make_settings({"database": {"url": f"duckdb:///{duckdb_copy}", "tables": []}})
    snap = await reflect_schema(settings)
    view = snap.table("big_orders")
    assert view is not None and view.kind == "view"
    assert [c.name for c in view.columns] == ["id", "customer_id", "total"]
    assert "big_orders (view)" in render_schema(snap.bounded())


async def _hash_of(path: Path, make_settings: Callable[..., Settings]) -> str:
    settings = make_settings({"database": {"url": f"duckdb:///{path}"}})
    return (await reflect_schema(settings)).schema_hash


@pytest.mark.parametrize(
    ("ddl", "changes"),
    [
        ("ALTER TABLE orders ADD COLUMN discount DOUBLE", True),
        ("ALTER TABLE contacts RENAME COLUMN rep TO agent", True),
        ("ALTER TABLE credentials ADD COLUMN rotated_at TIMESTAMP", False),  # blocked table: invisible
        ("CREATE TABLE scratch (x INTEGER)", False),  # not in [[database.tables]]: invisible
        ("COMMENT ON TABLE orders IS 'changed words'", False),  # descriptions do not bind tokens
    ],
)
async def test_schema_hash_changes_exactly_when_the_visible_schema_changes(
    duckdb_copy: Path, make_settings: Callable[..., Settings], ddl: str, changes: bool
) -> None:
    before = await _hash_of(duckdb_copy, make_settings)
    con = duckdb.connect(str(duckdb_copy))
    con.execute(ddl)
    con.close()
    after = await _hash_of(duckdb_copy, make_settings)
    assert (before != after) is changes


async def test_hash_changes_when_config_hides_a_column(
    duckdb_copy: Path, make_settings: Callable[..., Settings]
) -> None:
    before = await _hash_of(duckdb_copy, make_settings)
    settings = make_settings(
        {
            "database": {"url": f"duckdb:///{duckdb_copy}"},
            "code_mode": {"blocked_fields": ["customers.email"]},
        }
    )
    assert (await reflect_schema(settings)).schema_hash != before


# -- descriptions ------------------------------------------------------------------------------


def _table(name: str, *cols: str, comment: str | None = None) -> TableInfo:
    return TableInfo(name, tuple(ColumnInfo(c, "INTEGER", comment=f"db {c}") for c in cols), comment=comment)


def test_description_precedence_config_then_curated_then_comment(tmp_path: Path) -> None:
    f = tmp_path / "d.toml"
    f.write_text(
        '[a]\ndescription = "curated a"\n[a.columns]\nx = "curated x"\n[b]\ndescription = "curated b"\n'
    )
    tables = apply_descriptions(
        [
            _table("a", "x", "y", comment="db a"),
            _table("b", "z", comment="db b"),
            _table("c", "w", comment="db c"),
        ],
        load_descriptions(f),
        {"b": "config b"},
    )
    a, b, c = tables
    assert (a.description, b.description, c.description) == ("curated a", "config b", "db c")
    assert [col.description for col in a.columns] == ["curated x", "db y"]


def test_curated_text_of_a_blocked_column_is_not_shown(sample_snapshot: SchemaSnapshot) -> None:
    curated = {"customers": load_descriptions(bundled_path("schema_resources") / "sample.toml")["customers"]}
    curated["customers"].columns["ssn"] = "Social security number, secret"
    tables = apply_descriptions(list(sample_snapshot.tables.values()), curated)
    snap = SchemaSnapshot.build(
        "duckdb",
        "analytics",
        tables,
        blocked_tables=["credentials", "audit_log"],
        blocked_fields=["customers.ssn"],
    )
    assert "ssn" not in render_schema(snap.bounded()).lower()


def test_sample_descriptions_name_only_real_columns(sample_snapshot: SchemaSnapshot) -> None:
    curated = load_descriptions(bundled_path("schema_resources") / "sample.toml")
    assert unknown_entries(list(sample_snapshot.tables.values()), curated) == []
    assert unknown_entries([_table("a", "x")], {"a": curated["orders"]}) == [
        "a.created_at",
        "a.status",
        "a.total",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[a]\ncolour = 1\n", "unknown keys"),
        ('a = "x"\n', "expected a table"),
        ("[a]\ndescription = 3\n", "must be a string"),
        ("[a]\ncolumns = 3\n", "columns must map"),
        ("[a\n", "cannot read descriptions"),
    ],
)
def test_malformed_descriptions_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "d.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_descriptions(f)


def test_bounding_drops_foreign_keys_into_hidden_tables() -> None:
    t = TableInfo(
        "logins",
        (ColumnInfo("id", "INTEGER", primary_key=True), ColumnInfo("cred_id", "INTEGER")),
        foreign_keys=(ForeignKey(("cred_id",), "credentials", ("id",)),),
    )
    creds = TableInfo("credentials", (ColumnInfo("id", "INTEGER", primary_key=True),))
    snap = SchemaSnapshot.build("duckdb", "db", [t, creds], blocked_tables=["credentials"])
    text = render_schema(snap.bounded())
    assert "credentials" not in text and "cred_id INTEGER" in text


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0"), (999, "999"), (1000, "1.0k"), (2049, "2.0k"), (80841, "81k"), (1_250_000, "1.2M")],
)
def test_row_counts_are_rounded(n: int, text: str) -> None:
    assert approx_rows(n) == text


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_postgres_reflection_matches_duckdb(
    pg_sample_url: str, pg_settings: Callable[..., Settings], sample_snapshot: SchemaSnapshot
) -> None:
    pg = await reflect_schema(pg_settings(pg_sample_url))
    assert set(pg.tables) == set(sample_snapshot.tables)
    for name, duck in sample_snapshot.tables.items():
        t = pg.tables[name]
        assert [(c.name, c.nullable, c.primary_key) for c in t.columns] == [
            (c.name, c.nullable, c.primary_key) for c in duck.columns
        ], name
        assert set(t.foreign_keys) == set(duck.foreign_keys), name
        assert t.row_count is not None and abs(t.row_count - (duck.row_count or 0)) <= 0.1 * (
            duck.row_count or 1
        )
    orders = pg.table("orders")
    assert orders is not None
    total = orders.column("total")
    assert total is not None and total.comment
    text = render_schema(pg.bounded())
    assert "(postgres)" in text and "customer_id INTEGER NOT NULL -> customers.id" in text
    for hidden in HIDDEN:
        assert hidden not in text.lower(), hidden


@pytest.mark.postgres
async def test_postgres_schema_hash_follows_ddl(
    pg_admin_url: str, pg_settings: Callable[..., Settings]
) -> None:
    url = await create_database(pg_admin_url, "sqlmode_schema")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, ssn text);"
            "CREATE TABLE credentials (id int PRIMARY KEY, secret text);"
            "CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id));"
            "CREATE VIEW named AS SELECT id, name FROM customers;"
        )
        settings = pg_settings(url, {"database": {"tables": []}})
        first = await reflect_schema(settings)
        named = first.table("named")
        assert named is not None and named.kind == "view"
        await conn.execute("ALTER TABLE credentials ADD COLUMN note text")
        assert (await reflect_schema(settings)).schema_hash == first.schema_hash
        await conn.execute("ALTER TABLE orders ADD COLUMN total numeric(12,2)")
        assert (await reflect_schema(settings)).schema_hash != first.schema_hash
    finally:
        await conn.close()


def _named(dialect: str) -> SchemaSnapshot:
    people = TableInfo(
        "People",
        (ColumnInfo("ID", "INTEGER"), ColumnInfo("order", "INTEGER"), ColumnInfo("user", "TEXT")),
        schema="Sales",
    )
    order = TableInfo(
        "order",
        (ColumnInfo("id", "INTEGER"), ColumnInfo("naïve col", "TEXT"), ColumnInfo("people_id", "INTEGER")),
        foreign_keys=(ForeignKey(("people_id",), "People", ("ID",), ref_schema="Sales"),),
    )
    return SchemaSnapshot.build(dialect, "db", [people, order])


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        # PostgreSQL folds unquoted names to lower case: capitals are quoted; `user` is reserved there
        ("postgres", ['"People"', '  "ID" INTEGER', '  "order" INTEGER', '  "user" TEXT', '"order"']),
        # DuckDB matches names in any case; `user` is no reserved word of DuckDB's
        ("duckdb", ["People", "  ID INTEGER", '  "order" INTEGER', "  user TEXT", '"order"']),
    ],
)
def test_a_name_a_query_must_quote_is_shown_quoted(dialect: str, expected: list[str]) -> None:
    """The schema resource shows each name as a query writes it, so that a model can copy it."""
    text = render_schema(_named(dialect).bounded())
    lines = text.splitlines()
    for line in expected:
        assert any(x == line or x.startswith(line + " ") for x in lines), (line, text)
    assert '  "naïve col" TEXT' in lines
    assert 'A name in double quotes ("order") must be written with them.' in text
    people = '"People"' if dialect == "postgres" else "People"
    identifier = '"ID"' if dialect == "postgres" else "ID"
    assert f"  people_id INTEGER -> {people}.{identifier}" in lines


def test_plain_names_are_not_quoted_and_the_header_says_nothing_of_quotes(
    sample_snapshot: SchemaSnapshot,
) -> None:
    text = render_schema(sample_snapshot.bounded())
    assert "double quotes" not in text
    assert not any(line.startswith(('"', '  "')) for line in text.splitlines())


async def test_names_copied_from_the_schema_resource_run(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """Keyword and non-ASCII names, written as the resource shows them, validate and run on DuckDB."""
    db = tmp_path / "words.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        'CREATE TABLE "order" (id INT, "select" TEXT, "group" TEXT, "naïve col" INT); '
        """INSERT INTO "order" VALUES (1, 's', 'g', 7)"""
    )
    con.close()
    settings = make_settings(
        {
            "database": {"url": f"duckdb:///{db}", "tables": [], "descriptions": None},
            "code_mode": {"blocked_tables": [], "blocked_fields": []},
        }
    )
    async with CodeModeService(settings) as svc:
        lines = (await svc.schema_text()).splitlines()
        table = next(x for x in lines if x.startswith('"order"')).split(" ")[0]
        cols = [x.strip().rsplit(" ", 1)[0] for x in lines if x.startswith("  ")][1:]
        assert cols == ['"select"', '"group"', '"naïve col"']
        assert (await svc.schema_text(table)).startswith(f"{table} (~1 rows)")  # looked up as shown
        sql = f"SELECT {', '.join(cols)} FROM {table}"
        v = await svc.validate(sql)
        assert v.is_valid, v.violations
        r = await svc.execute(v.normalized_code, v.approval_token or "")
    assert r.rows == [["s", "g", 7]]
