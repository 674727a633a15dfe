"""PostgreSQL reflection from pg_catalog (asyncpg): every relation, column, type, key and comment.

Goldens on a database with many types, odd names, a partitioned table, a view, a materialized
view, comments and a composite foreign key across schemas; the two-schema database; the sample
warehouse as the superuser and as the reader role (which may not run set_config). These goldens
were first proven equal to SQLAlchemy's inspector (the reflection before; the comparison test is
in this file's history) except type names where SQLAlchemy's compile lost facts: TIMESTAMP/TIME
without their zone and precision, INTERVAL without fields, BIT without length, ARRAY without the
element type, VARCHAR(n)/DOMAIN instead of an enum's/domain's name, NULL for unknown types.
"""

from __future__ import annotations

import sys
from typing import Any

import asyncpg
import pytest

from sqlmode.config import settings_from_dict
from sqlmode.engines._postgres_connect import search_path
from sqlmode.engines._postgres_reflect import reflect_postgres, type_name
from sqlmode.schema.snapshot import TableInfo
from tests.plugins.postgres import create_database
from tests.test_multi_schema import DDL as TWO_SCHEMA_DDL

pytestmark = pytest.mark.timeout(120)

MANY_TYPES_DDL = """
CREATE SCHEMA "Odd Schema";
CREATE SCHEMA ref;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE ref.level AS ENUM ('low', 'high');
CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0) NOT NULL;
CREATE DOMAIN email AS varchar(120);
CREATE TABLE ref.pairs (a int, b text, label text, PRIMARY KEY (a, b));
CREATE TABLE public.kitchen (
    id bigint PRIMARY KEY,
    small smallint NOT NULL,
    i integer,
    r real,
    d double precision,
    n numeric,
    money_ numeric(12, 2),
    vc varchar(200),
    vc_free varchar,
    ch char(3),
    ch1 character,
    t text,
    flag boolean,
    day date,
    ts timestamp,
    ts3 timestamp(3),
    tstz timestamptz,
    tstz0 timestamp(0) with time zone,
    tm time,
    tmtz time with time zone,
    iv interval,
    iv_ds interval day to second(3),
    iv_y interval year,
    blob bytea,
    j json,
    jb jsonb,
    u uuid,
    ip inet,
    net cidr,
    mac macaddr,
    cash money,
    bits bit(4),
    vbits bit varying(8),
    ints integer[],
    matrix integer[][],
    texts text[],
    vcs varchar(20)[],
    nums numeric(5, 1)[],
    feeling mood,
    feelings mood[],
    lvl ref.level,
    pos positive_int,
    mail email,
    span int4range,
    periods tstzrange,
    doc tsvector,
    pt point,
    x xml,
    a int, b text,
    "Mixed Case" text,
    FOREIGN KEY (a, b) REFERENCES ref.pairs (a, b)
);
COMMENT ON TABLE public.kitchen IS 'Every type at once.';
COMMENT ON COLUMN public.kitchen.money_ IS 'Amount in euros.';
ALTER TABLE public.kitchen DROP COLUMN i;
CREATE TABLE "Odd Schema"."Mixed Table" (
    "Id" int PRIMARY KEY, "select" text, kitchen_id bigint REFERENCES public.kitchen (id)
);
CREATE TABLE "Odd Schema".self_ref (id int PRIMARY KEY, parent int REFERENCES "Odd Schema".self_ref (id));
CREATE TABLE public.measures (at date NOT NULL, v numeric) PARTITION BY RANGE (at);
CREATE TABLE public.measures_2026 PARTITION OF public.measures
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.nothing ();
CREATE VIEW public.kitchen_view AS SELECT id, vc, feeling FROM public.kitchen;
COMMENT ON VIEW public.kitchen_view IS 'A view.';
CREATE MATERIALIZED VIEW public.kitchen_mat AS SELECT id, tstz FROM public.kitchen;
INSERT INTO ref.pairs VALUES (1, 'x', 'one');
ANALYZE ref.pairs;
"""


def settings_for(url: str, schemas: list[str]) -> Any:
    return settings_from_dict(
        {"database": {"url": url, "schemas": schemas}, "code_mode": {"token_secret": "x" * 32}}
    )


@pytest.fixture(scope="module")
async def many_types_url(pg_admin_url: str) -> str:
    return await create_database(pg_admin_url, "sqlmode_reflect", MANY_TYPES_DDL)


@pytest.fixture(scope="module")
async def two_schema_url(pg_admin_url: str) -> str:
    return await create_database(pg_admin_url, "sqlmode_reflect2", TWO_SCHEMA_DDL)


KITCHEN = [
    ("id", "BIGINT", False, True),
    ("small", "SMALLINT", False, False),
    ("r", "REAL", True, False),
    ("d", "DOUBLE PRECISION", True, False),
    ("n", "NUMERIC", True, False),
    ("money_", "NUMERIC(12, 2)", True, False),
    ("vc", "VARCHAR(200)", True, False),
    ("vc_free", "VARCHAR", True, False),
    ("ch", "CHAR(3)", True, False),
    ("ch1", "CHAR(1)", True, False),
    ("t", "TEXT", True, False),
    ("flag", "BOOLEAN", True, False),
    ("day", "DATE", True, False),
    ("ts", "TIMESTAMP WITHOUT TIME ZONE", True, False),
    ("ts3", "TIMESTAMP(3) WITHOUT TIME ZONE", True, False),
    ("tstz", "TIMESTAMP WITH TIME ZONE", True, False),
    ("tstz0", "TIMESTAMP(0) WITH TIME ZONE", True, False),
    ("tm", "TIME WITHOUT TIME ZONE", True, False),
    ("tmtz", "TIME WITH TIME ZONE", True, False),
    ("iv", "INTERVAL", True, False),
    ("iv_ds", "INTERVAL DAY TO SECOND(3)", True, False),
    ("iv_y", "INTERVAL YEAR", True, False),
    ("blob", "BYTEA", True, False),
    ("j", "JSON", True, False),
    ("jb", "JSONB", True, False),
    ("u", "UUID", True, False),
    ("ip", "INET", True, False),
    ("net", "CIDR", True, False),
    ("mac", "MACADDR", True, False),
    ("cash", "MONEY", True, False),
    ("bits", "BIT(4)", True, False),
    ("vbits", "BIT VARYING(8)", True, False),
    ("ints", "INTEGER[]", True, False),
    ("matrix", "INTEGER[]", True, False),
    ("texts", "TEXT[]", True, False),
    ("vcs", "VARCHAR(20)[]", True, False),
    ("nums", "NUMERIC(5, 1)[]", True, False),
    ("feeling", "mood", True, False),
    ("feelings", "mood[]", True, False),
    ("lvl", "level", True, False),  # ref is on the search path
    ("pos", "positive_int", False, False),  # the domain's NOT NULL
    ("mail", "email", True, False),
    ("span", "INT4RANGE", True, False),
    ("periods", "TSTZRANGE", True, False),
    ("doc", "TSVECTOR", True, False),
    ("pt", "POINT", True, False),
    ("x", "XML", True, False),
    ("a", "INTEGER", True, False),
    ("b", "TEXT", True, False),
    ("Mixed Case", "TEXT", True, False),
]


def shape(t: TableInfo) -> tuple[Any, ...]:
    """Everything reflected about a table, the foreign keys' referred schemas included."""
    return (
        t.schema,
        t.name,
        t.kind,
        t.comment,
        t.row_count,
        [(c.name, c.type, c.nullable, c.primary_key, c.comment) for c in t.columns],
        [(fk.columns, fk.ref_schema, fk.ref_table, fk.ref_columns) for fk in t.foreign_keys],
    )


async def test_many_types_odd_names_partitions_views_and_keys(many_types_url: str) -> None:
    ours = await reflect_postgres(settings_for(many_types_url, ["public", "Odd Schema", "ref"]))
    got = [shape(t) for t in ours]
    kitchen_cols = [(*c, "Amount in euros." if c[0] == "money_" else None) for c in KITCHEN]
    assert got == [
        (
            "public",
            "kitchen",
            "table",
            "Every type at once.",
            None,
            kitchen_cols,
            [(("a", "b"), "ref", "pairs", ("a", "b"))],
        ),
        (
            "public",
            "measures",
            "table",
            None,
            None,
            [("at", "DATE", False, False, None), ("v", "NUMERIC", True, False, None)],
            [],
        ),
        (
            "public",
            "measures_2026",
            "table",
            None,
            None,
            [("at", "DATE", False, False, None), ("v", "NUMERIC", True, False, None)],
            [],
        ),
        ("public", "nothing", "table", None, None, [], []),
        (
            "public",
            "kitchen_view",
            "view",
            "A view.",
            None,
            [
                ("id", "BIGINT", True, False, None),
                ("vc", "VARCHAR(200)", True, False, None),
                ("feeling", "mood", True, False, None),
            ],
            [],
        ),
        (
            "public",
            "kitchen_mat",
            "view",
            None,
            None,
            [("id", "BIGINT", True, False, None), ("tstz", "TIMESTAMP WITH TIME ZONE", True, False, None)],
            [],
        ),
        (
            "Odd Schema",
            "Mixed Table",
            "table",
            None,
            None,
            [
                ("Id", "INTEGER", False, True, None),
                ("select", "TEXT", True, False, None),
                ("kitchen_id", "BIGINT", True, False, None),
            ],
            [(("kitchen_id",), "public", "kitchen", ("id",))],
        ),
        (
            "Odd Schema",
            "self_ref",
            "table",
            None,
            None,
            [("id", "INTEGER", False, True, None), ("parent", "INTEGER", True, False, None)],
            [(("parent",), "Odd Schema", "self_ref", ("id",))],
        ),
        (
            "ref",
            "pairs",
            "table",
            None,
            1,
            [
                ("a", "INTEGER", False, True, None),
                ("b", "TEXT", False, True, None),
                ("label", "TEXT", True, False, None),
            ],
            [],
        ),
    ]


async def test_two_schemas(two_schema_url: str) -> None:
    ours = await reflect_postgres(settings_for(two_schema_url, ["sales", "public"]))
    # Schemas in the configured order; the row counts are unknown until the tables are analyzed.
    assert [shape(t) for t in ours] == [
        (
            "sales",
            "invoices",
            "table",
            None,
            None,
            [
                ("id", "INTEGER", False, True, None),
                ("order_id", "INTEGER", True, False, None),
                ("paid", "BOOLEAN", True, False, None),
            ],
            [(("order_id",), "sales", "orders", ("id",))],
        ),
        (
            "sales",
            "orders",
            "table",
            "Orders booked by the sales team.",
            None,
            [
                ("id", "INTEGER", False, True, None),
                ("customer_id", "INTEGER", True, False, None),
                ("total", "NUMERIC(10, 2)", True, False, None),
                ("note", "TEXT", True, False, None),
            ],
            [(("customer_id",), "public", "customers", ("id",))],
        ),
        (
            "public",
            "customers",
            "table",
            None,
            None,
            [
                ("id", "INTEGER", False, True, None),
                ("name", "TEXT", False, False, None),
                ("email", "TEXT", True, False, None),
            ],
            [],
        ),
        (
            "public",
            "orders",
            "table",
            None,
            None,
            [
                ("id", "INTEGER", False, True, None),
                ("customer_id", "INTEGER", True, False, None),
                ("amount", "NUMERIC(10, 2)", True, False, None),
                ("note", "TEXT", True, False, None),
            ],
            [(("customer_id",), "public", "customers", ("id",))],
        ),
    ]


async def test_the_reader_role_reflects_what_the_superuser_does(
    pg_sample_url: str, pg_reader_url: str
) -> None:
    # The reader `db grants --apply` made may not run set_config, which asyncpg's type
    # introspection would: the catalog queries must not need it.
    as_admin = await reflect_postgres(settings_for(pg_sample_url, ["public"]))
    as_reader = await reflect_postgres(settings_for(pg_reader_url, ["public"]))
    assert [shape(t) for t in as_reader] == [shape(t) for t in as_admin]
    orders = next(t for t in as_admin if t.name == "orders")
    assert orders.row_count and orders.row_count > 0
    assert any(c.primary_key for c in orders.columns) and orders.foreign_keys


ODD_TYPES_DDL = """
CREATE SCHEMA "Odd Schema";
CREATE SCHEMA ext;
CREATE EXTENSION citext SCHEMA ext;
CREATE EXTENSION hstore;
CREATE EXTENSION vector;
CREATE TYPE "MoodType" AS ENUM ('sad', 'happy');
CREATE TYPE "my enum" AS ENUM ('x', 'y');
CREATE TYPE "Sad, Happy" AS ENUM ('z');
CREATE TYPE "Odd Schema"."My Enum" AS ENUM ('a');
CREATE TYPE "Odd Schema".plain AS ENUM ('b');
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN int_list AS integer[];
CREATE DOMAIN "Tags" AS "my enum"[] NOT NULL;
CREATE DOMAIN "Odd Schema"."Short Text" AS varchar(10);
CREATE TABLE public.odd (
    id int PRIMARY KEY,
    m "MoodType", ms "MoodType"[], e "my enum", es "my enum"[][], sh "Sad, Happy",
    oe "Odd Schema"."My Enum", oes "Odd Schema"."My Enum"[], op "Odd Schema".plain,
    il int_list, tags "Tags", st "Odd Schema"."Short Text", sts "Odd Schema"."Short Text"[],
    ci ext.citext, cis ext.citext[], h hstore, v vector(3), pr pair, pts point[]
);
CREATE TABLE "Odd Schema"."Mixed" ("My Col" "Odd Schema"."My Enum", s "Odd Schema"."Short Text");
"""

# (column, type) of public.odd; "Odd Schema"'s names are bare when it is on the search path.
ODD = [
    ("id", "INTEGER"),
    ("m", '"MoodType"'),
    ("ms", '"MoodType"[]'),
    ("e", '"my enum"'),
    ("es", '"my enum"[]'),
    ("sh", '"Sad, Happy"'),
    ("oe", '{odd}"My Enum"'),
    ("oes", '{odd}"My Enum"[]'),
    ("op", "{odd}plain"),
    ("il", "int_list"),  # a domain over an array is the domain
    ("tags", '"Tags"'),
    ("st", '{odd}"Short Text"'),
    ("sts", '{odd}"Short Text"[]'),
    ("ci", "ext.citext"),  # ext is on no search path
    ("cis", "ext.citext[]"),
    ("h", "hstore"),
    ("v", "vector(3)"),
    ("pr", "pair"),
    ("pts", "POINT[]"),
]


@pytest.fixture(scope="module")
async def odd_types_urls(pg_admin_url: str) -> tuple[str, str]:
    """(superuser URL, reader URL) of a database of user-defined and extension types."""
    from sqlmode.engines._postgres_grants import apply_grants, grant_script
    from sqlmode.schema.reflect import reflect_schema

    url = await create_database(pg_admin_url, "sqlmode_reflect_odd")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(ODD_TYPES_DDL)
    finally:
        await conn.close()
    settings = settings_for(url, ["public", "Odd Schema"])
    script = grant_script(settings, await reflect_schema(settings), role="sqlmode_odd_reader")
    return url, await apply_grants(url, script)


@pytest.mark.parametrize("as_reader", [False, True], ids=["superuser", "reader"])
@pytest.mark.parametrize("schemas", [["public"], ["public", "Odd Schema"]], ids=["public", "both"])
async def test_user_types_are_named_as_postgres_prints_them(
    odd_types_urls: tuple[str, str], as_reader: bool, schemas: list[str]
) -> None:
    from sqlmode.schema import reflect_schema, render_schema

    url = odd_types_urls[as_reader]
    odd_on_path = "Odd Schema" in schemas
    odd = "" if odd_on_path else '"Odd Schema".'
    tables = await reflect_postgres(settings_for(url, schemas))
    got = {(t.schema, t.name): [(c.name, c.type, c.nullable) for c in t.columns] for t in tables}
    expected = [(c, t.format(odd=odd), c not in ("id", "tags")) for c, t in ODD]
    assert got[("public", "odd")] == expected
    if odd_on_path:
        assert got[("Odd Schema", "Mixed")] == [("My Col", '"My Enum"', True), ("s", '"Short Text"', True)]
    else:
        assert ("Odd Schema", "Mixed") not in got
    # Each name is the column's type to PostgreSQL in a session with the same search path, so
    # the model can write it in a cast as shown (as the superuser: the reader may not use ext).
    admin = odd_types_urls[0]
    conn = await asyncpg.connect(admin, server_settings=search_path(settings_for(admin, schemas)))
    try:
        for col, shown, _ in expected:
            same = await conn.fetchval(
                "SELECT $1::text::regtype = atttypid FROM pg_attribute "
                "WHERE attrelid = 'public.odd'::regclass AND attname = $2",
                shown,
                col,
            )
            assert same, (col, shown)
    finally:
        await conn.close()
    # The schema text shows them as they are (no comma squeezed out of a quoted name).
    text = render_schema((await reflect_schema(settings_for(url, schemas))).bounded()).splitlines()
    for col, shown, _ in expected:
        assert any(line == f"  {col} {shown}" or line.startswith(f"  {col} {shown} ") for line in text), col


@pytest.mark.parametrize(
    ("format_type", "builtin", "expected"),
    [
        ("character varying(200)", True, "VARCHAR(200)"),
        ("character varying", True, "VARCHAR"),
        ("character(3)", True, "CHAR(3)"),
        ("numeric(12,2)", True, "NUMERIC(12, 2)"),
        ("numeric", True, "NUMERIC"),
        ("timestamp(3) without time zone", True, "TIMESTAMP(3) WITHOUT TIME ZONE"),
        ("time with time zone", True, "TIME WITH TIME ZONE"),
        ("interval day to second(3)", True, "INTERVAL DAY TO SECOND(3)"),
        ("double precision", True, "DOUBLE PRECISION"),
        ("character varying(20)[]", True, "VARCHAR(20)[]"),
        ("point", True, "POINT"),
        ("xml[]", True, "XML[]"),
        # Not built in: PostgreSQL's text as it is (its case and quotes name the type).
        ("mood[]", False, "mood[]"),
        ('"Odd Schema"."My Enum"', False, '"Odd Schema"."My Enum"'),
        ('"MoodType"[]', False, '"MoodType"[]'),
        ("geometry(Point,4326)", False, "geometry(Point,4326)"),
        ("vector(3)", False, "vector(3)"),
    ],
)
def test_type_names(format_type: str, builtin: bool, expected: str) -> None:
    assert type_name(format_type, builtin) == expected


def test_postgres_reflection_imports_no_sqlalchemy() -> None:
    import subprocess

    code = (
        "import sys, sqlmode.engines._postgres_reflect, sqlmode.engines.postgres\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
