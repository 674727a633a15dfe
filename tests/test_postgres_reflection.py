"""PostgreSQL reflection from pg_catalog (asyncpg) gives what SQLAlchemy's inspector gave.

The reference below is the SQLAlchemy reflection sqlmode used before (``postgresql+asyncpg``,
``get_multi_*``), kept here only as the oracle: both must produce the same TableInfo list on the
sample warehouse (as the superuser and the reader role), the two-schema database and a database
with many types, odd names, a partitioned table, a view, a materialized view, comments and a
composite foreign key across schemas. Type names differ on purpose where SQLAlchemy's compile
lost facts (see LOST_BY_SQLALCHEMY); everything else is identical.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import asyncpg
import pytest

from sqlmode.config import settings_from_dict
from sqlmode.engines._postgres_reflect import reflect_postgres, type_name
from sqlmode.schema.snapshot import ColumnInfo, ForeignKey, TableInfo
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


async def sa_reflect(url: str, schemas: list[str]) -> list[TableInfo]:
    """The reflection sqlmode shipped before (SQLAlchemy's inspector), as the oracle."""
    import sqlalchemy as sa
    from sqlalchemy.engine.reflection import ObjectKind
    from sqlalchemy.ext.asyncio import create_async_engine

    def type_text(t: Any) -> str:
        try:
            return str(t.compile()).upper()
        except Exception:
            return type(t).__name__.upper()

    engine = create_async_engine(
        sa.make_url(url).set(drivername="postgresql+asyncpg"), poolclass=sa.pool.NullPool
    )

    def run(sync_conn: sa.Connection) -> list[TableInfo]:
        insp = sa.inspect(sync_conn)
        out: list[TableInfo] = []
        for schema in schemas:
            rows = sync_conn.exec_driver_sql(
                "SELECT c.relname, c.reltuples::bigint FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
                (schema,),
            ).fetchall()
            counts = {r[0]: r[1] for r in rows}
            names = [(n, "table") for n in sorted(insp.get_table_names(schema=schema))]
            names += [(n, "view") for n in sorted(insp.get_view_names(schema=schema))]
            names += [(n, "view") for n in sorted(insp.get_materialized_view_names(schema=schema))]
            kind = ObjectKind.ANY
            columns = {k[1]: v for k, v in insp.get_multi_columns(schema=schema, kind=kind).items()}
            pks: dict[str, Any] = {
                k[1]: v for k, v in insp.get_multi_pk_constraint(schema=schema, kind=kind).items()
            }
            fks = {k[1]: v for k, v in insp.get_multi_foreign_keys(schema=schema, kind=kind).items()}
            comments: dict[str, Any] = {
                k[1]: v for k, v in insp.get_multi_table_comment(schema=schema, kind=kind).items()
            }
            for name, kind_name in names:
                pk = set((pks.get(name) or {}).get("constrained_columns") or [])
                rc = counts.get(name)
                out.append(
                    TableInfo(
                        name=name,
                        columns=tuple(
                            ColumnInfo(
                                c["name"],
                                type_text(c["type"]),
                                bool(c.get("nullable", True)),
                                c["name"] in pk,
                                c.get("comment"),
                            )
                            for c in columns.get(name, [])
                        ),
                        schema=schema,
                        kind=kind_name,  # type: ignore[arg-type]
                        foreign_keys=tuple(
                            ForeignKey(
                                tuple(fk["constrained_columns"]),
                                fk["referred_table"],
                                tuple(fk["referred_columns"]),
                                fk.get("referred_schema") or insp.default_schema_name,
                            )
                            for fk in fks.get(name, [])
                        ),
                        comment=(comments.get(name) or {}).get("text"),
                        row_count=int(rc) if rc is not None and rc >= 0 else None,
                    )
                )
        return out

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(run)
    finally:
        await engine.dispose()


# SQLAlchemy compiled the reflected types without the PostgreSQL dialect, which lost facts the
# model needs: the time zone and precision of TIMESTAMP/TIME, INTERVAL's fields, BIT's length, an
# array's element type (ARRAY), an enum's or domain's name (VARCHAR(longest label), DOMAIN), and a
# type it did not know (NULL). The catalog reflection keeps them; this is the one mapping from its
# names to those, and every other column, table and key must be identical.
LOST_BY_SQLALCHEMY = {
    "MOOD": "VARCHAR(5)",
    "REF.LEVEL": "VARCHAR(4)",
    "POSITIVE_INT": "DOMAIN",
    "EMAIL": "DOMAIN",
}


def as_sqlalchemy_compiled(t: str) -> str:
    if t in LOST_BY_SQLALCHEMY:
        return LOST_BY_SQLALCHEMY[t]
    if t.endswith("[]"):
        return "ARRAY"
    for word in ("TIMESTAMP", "TIME", "INTERVAL", "BIT"):
        if t == word or t.startswith((word + "(", word + " ")):
            return word
    if t in ("POINT", "XML"):
        return "NULL"
    return t


def settings_for(url: str, schemas: list[str]) -> Any:
    return settings_from_dict(
        {"database": {"url": url, "schemas": schemas}, "code_mode": {"token_secret": "x" * 32}}
    )


@pytest.fixture(scope="module")
async def many_types_url(pg_admin_url: str) -> str:
    url = await create_database(pg_admin_url, "sqlmode_reflect")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(MANY_TYPES_DDL)
    finally:
        await conn.close()
    return url


@pytest.fixture(scope="module")
async def two_schema_url(pg_admin_url: str) -> str:
    url = await create_database(pg_admin_url, "sqlmode_reflect2")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(TWO_SCHEMA_DDL)
    finally:
        await conn.close()
    return url


def assert_same(ours: list[TableInfo], theirs: list[TableInfo]) -> None:
    def lossy(t: TableInfo) -> TableInfo:
        cols = tuple(
            ColumnInfo(c.name, as_sqlalchemy_compiled(c.type), c.nullable, c.primary_key, c.comment)
            for c in t.columns
        )
        return dataclasses.replace(t, columns=cols)

    assert [(t.schema, t.name) for t in ours] == [(t.schema, t.name) for t in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert lossy(a) == b, (a.schema, a.name)
        # ForeignKey.ref_schema is not part of its equality: compare it too.
        assert [f.ref_schema for f in a.foreign_keys] == [f.ref_schema for f in b.foreign_keys]


async def test_many_types_reflect_as_sqlalchemy_did(many_types_url: str) -> None:
    schemas = ["public", "Odd Schema", "ref"]
    ours = await reflect_postgres(settings_for(many_types_url, schemas))
    assert_same(ours, await sa_reflect(many_types_url, schemas))
    by_name = {(t.schema, t.name): t for t in ours}
    kitchen = by_name[("public", "kitchen")]
    types = {c.name: c.type for c in kitchen.columns}
    assert types["money_"] == "NUMERIC(12, 2)" and types["vc"] == "VARCHAR(200)"
    assert types["tstz"] == "TIMESTAMP WITH TIME ZONE" and types["ts"] == "TIMESTAMP WITHOUT TIME ZONE"
    assert types["ints"] == "INTEGER[]" and types["feeling"] == "MOOD" and types["lvl"] == "REF.LEVEL"
    assert types["pt"] == "POINT" and types["x"] == "XML"
    assert "i" not in types  # dropped
    assert [c.name for c in kitchen.columns][:3] == ["id", "small", "r"]
    assert {c.name: c.nullable for c in kitchen.columns}["pos"] is False  # the domain's NOT NULL
    assert kitchen.comment == "Every type at once."
    assert {c.name: c.comment for c in kitchen.columns}["money_"] == "Amount in euros."
    assert kitchen.foreign_keys == (ForeignKey(("a", "b"), "pairs", ("a", "b")),)
    assert kitchen.foreign_keys[0].ref_schema == "ref"
    assert by_name[("public", "measures")].kind == "table"
    assert by_name[("public", "measures_2026")].kind == "table"
    assert by_name[("public", "kitchen_mat")].kind == "view"
    assert by_name[("public", "nothing")].columns == ()
    assert by_name[("ref", "pairs")].row_count == 1
    mixed = by_name[("Odd Schema", "Mixed Table")]
    assert (mixed.columns[0].name, mixed.columns[0].primary_key) == ("Id", True)
    assert mixed.foreign_keys[0].ref_schema == "public"


async def test_sample_and_two_schemas_reflect_as_sqlalchemy_did(
    pg_sample_url: str, pg_reader_url: str, two_schema_url: str
) -> None:
    # The reader role `db grants --apply` made may not run set_config (asyncpg's type introspection).
    cases = [(pg_sample_url, ["public"]), (pg_reader_url, ["public"]), (two_schema_url, ["public", "sales"])]
    for url, schemas in cases:
        ours = await reflect_postgres(settings_for(url, schemas))
        assert len(ours) >= 4
        assert_same(ours, await sa_reflect(url, schemas))


@pytest.mark.parametrize(
    ("format_type", "special", "expected"),
    [
        ("character varying(200)", False, "VARCHAR(200)"),
        ("character varying", False, "VARCHAR"),
        ("character(3)", False, "CHAR(3)"),
        ("numeric(12,2)", False, "NUMERIC(12, 2)"),
        ("numeric", False, "NUMERIC"),
        ("timestamp(3) without time zone", False, "TIMESTAMP(3) WITHOUT TIME ZONE"),
        ("time with time zone", False, "TIME WITH TIME ZONE"),
        ("interval day to second(3)", False, "INTERVAL DAY TO SECOND(3)"),
        ("double precision", False, "DOUBLE PRECISION"),
        ("character varying(20)[]", False, "VARCHAR(20)[]"),
        ("mood[]", True, "MOOD[]"),
        ('"Odd Schema"."My Enum"', True, '"ODD SCHEMA"."MY ENUM"'),
        ("point", False, "POINT"),
        ("geometry(Point,4326)", False, "GEOMETRY(POINT,4326)"),
    ],
)
def test_type_names(format_type: str, special: bool, expected: str) -> None:
    assert type_name(format_type, special) == expected


def test_reflection_does_not_import_sqlalchemy() -> None:
    import subprocess

    code = (
        "import sys, sqlmode.engines._postgres_reflect, sqlmode.engines.postgres\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
