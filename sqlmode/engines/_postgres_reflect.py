"""PostgreSQL reflection from ``pg_catalog`` through asyncpg (no SQLAlchemy).

One connection, three catalog queries for all configured schemas: the relations with their
columns, the primary and foreign keys, and what each relation inherits from (a partition's
parent: blocks on a parent cover its partitions, schema/snapshot.py). It finds what
SQLAlchemy's inspector found before: ordinary and partitioned tables (a partition is a table of
its own), views and materialized views (kind ``view``); foreign tables are not reflected.

Type names: a built-in type (of ``pg_catalog``, or an array of one) in SQLAlchemy's PostgreSQL
spelling (``VARCHAR(200)``, ``NUMERIC(12, 2)``, ``TIMESTAMP WITH TIME ZONE``, ``INTEGER[]``); any
other type (an enum, a domain, an extension's ``citext`` or ``vector(3)``, arrays of them) exactly
as ``format_type`` prints it, which is how a query writes it: quoted where PostgreSQL quotes it
(``"MoodType"``), qualified where the schema is not on the search path (``ext.citext``). The
reflection connection has the query sessions' search path (``_postgres_connect.search_path``), so a name is
qualified exactly when a query must qualify it. See :func:`type_name`.

Every role reads the same catalog rows (pg_catalog is readable by PUBLIC; privileges hide data,
not definitions), so reflecting as the login role sees what the reader role sees.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from ..config import Settings
from ..schema.snapshot import ColumnInfo, ForeignKey, TableInfo

__all__ = ["Fetch", "database_name", "reflect_postgres", "type_name"]

# Relations and their columns, schemas in the configured order. A relation without columns
# still has one row (the LEFT JOIN). A domain's NOT NULL makes its columns not nullable. The last
# column says whether the type (an array's element type for a true array: a domain over an array
# is the domain) is a built-in one, from pg_catalog.
_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind::text, c.reltuples::bigint,
       obj_description(c.oid, 'pg_class'),
       a.attname, format_type(a.atttypid, a.atttypmod),
       NOT (a.attnotnull OR coalesce(t.typtype = 'd' AND t.typnotnull, false)),
       col_description(c.oid, a.attnum),
       coalesce(et.typnamespace, t.typnamespace) = 'pg_catalog'::regnamespace
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type et
       ON et.oid = t.typelem AND t.typsubscript = 'pg_catalog.array_subscript_handler'::regproc
WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'v', 'm')
ORDER BY array_position($1::text[], n.nspname::text), c.relname, a.attnum
"""

# Primary and foreign keys, their columns in key order (a composite key keeps its pairing). The
# arrays are text[]: asyncpg decodes those without introspecting types (which runs set_config,
# revoked from the reader role by `db grants --apply`).
_KEYS = """
SELECT n.nspname, c.relname, k.contype::text, k.conname,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(num, i)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num
             ORDER BY u.i),
       rn.nspname, rc.relname,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(num, i)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num
             ORDER BY u.i)
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_class rc ON rc.oid = k.confrelid
LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
WHERE n.nspname = ANY($1::text[]) AND k.contype IN ('p', 'f') AND c.relkind IN ('r', 'p', 'v', 'm')
ORDER BY n.nspname, c.relname, k.conname
"""

# What each relation inherits from: a partition's parent, an INHERITS child's parents (indexes,
# which have partitions too, left out).
_INHERITS = """
SELECT cn.nspname, c.relname, pn.nspname, p.relname
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
WHERE cn.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'f')
ORDER BY cn.nspname, c.relname, i.inhseqno
"""

# format_type's base names of built-in types (arguments and [] removed) as SQLAlchemy's PostgreSQL
# dialect spells them.
_NAMES = {
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "smallint": "SMALLINT",
    "character varying": "VARCHAR",
    "character": "CHAR",
    '"char"': "VARCHAR",
    "name": "VARCHAR",
    "text": "TEXT",
    "numeric": "NUMERIC",
    "real": "REAL",
    "double precision": "DOUBLE PRECISION",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "bytea": "BYTEA",
    "json": "JSON",
    "jsonb": "JSONB",
    "uuid": "UUID",
    "inet": "INET",
    "cidr": "CIDR",
    "macaddr": "MACADDR",
    "macaddr8": "MACADDR8",
    "money": "MONEY",
    "oid": "OID",
    "regclass": "REGCLASS",
    "regconfig": "REGCONFIG",
    "tsvector": "TSVECTOR",
    "tsquery": "TSQUERY",
    "int4range": "INT4RANGE",
    "int8range": "INT8RANGE",
    "numrange": "NUMRANGE",
    "daterange": "DATERANGE",
    "tsrange": "TSRANGE",
    "tstzrange": "TSTZRANGE",
    "int4multirange": "INT4MULTIRANGE",
    "int8multirange": "INT8MULTIRANGE",
    "nummultirange": "NUMMULTIRANGE",
    "datemultirange": "DATEMULTIRANGE",
    "tsmultirange": "TSMULTIRANGE",
    "tstzmultirange": "TSTZMULTIRANGE",
}
_ARGS = re.compile(r"\((.*?)\)")
_ARRAY = re.compile(r"((?:\[\])*)$")


def type_name(format_type: str, builtin: bool = True) -> str:
    """``format_type(atttypid, atttypmod)`` as the schema shows it.

    A type that is not ``builtin`` is PostgreSQL's own text, unchanged (changing its case or quotes
    would name another type, or none). A built-in type is spelled as SQLAlchemy's PostgreSQL dialect
    spells it; one SQLAlchemy does not know (``point``, ``xml``) is ``format_type`` uppercased.
    """
    if not builtin:
        return format_type
    dims = _ARRAY.search(format_type)
    suffix = dims.group(1) if dims else ""
    base = format_type[: len(format_type) - len(suffix)] if suffix else format_type
    m = _ARGS.search(base)
    args = [a.strip() for a in m.group(1).split(",")] if m else []
    bare = _ARGS.sub("", base).strip()
    if bare in (
        "timestamp with time zone",
        "timestamp without time zone",
        "time with time zone",
        "time without time zone",
    ):
        word, _, zone = bare.partition(" ")
        return f"{word.upper()}{f'({args[0]})' if args else ''} {zone.upper()}" + suffix
    if bare == "interval" or bare.startswith("interval "):
        fields = bare[len("interval") :].strip()
        return (
            "INTERVAL" + (f" {fields.upper()}" if fields else "") + (f"({args[0]})" if args else "") + suffix
        )
    if bare == "numeric":
        return ("NUMERIC" + (f"({args[0]}, {args[1]})" if len(args) == 2 else "")) + suffix
    if bare in ("bit", "bit varying"):
        return bare.upper() + (f"({args[0]})" if args else "") + suffix
    name = _NAMES.get(bare)
    if name is None:
        return format_type.upper()
    if bare in ("character varying", "character") and args:
        return f"{name}({args[0]})" + suffix
    return name + suffix


# Runs one catalog query with its parameters: asyncpg's fetch, or a pooled session's (executor).
Fetch = Callable[[str, list[Any]], Awaitable[Sequence[Any]]]


def database_name(url: str) -> str:
    """The database a URL names (the snapshot's name when server.name is not set)."""
    return unquote(urlsplit(url).path.lstrip("/")) or "postgres"


async def reflect_postgres(settings: Settings, fetch: Fetch | None = None) -> list[TableInfo]:
    """Every relation of the configured schemas, read with ``fetch`` (on a session whose search
    path is ``_postgres_connect.search_path``) or on a connection of its own, closed before returning."""
    schemas = list(settings.database.schemas or ["public"])
    if fetch is None:
        import asyncpg

        from ._postgres_connect import asyncpg_dsn, search_path

        own = await asyncpg.connect(
            asyncpg_dsn(settings.database.url),
            timeout=settings.database.connect_timeout_ms / 1000,
            server_settings={"application_name": "sqlmode", **search_path(settings)},
        )
        try:
            return await reflect_postgres(settings, lambda sql, args: own.fetch(sql, *args))
        finally:
            await own.close()
    rows = await fetch(_RELATIONS, [schemas])
    keys = await fetch(_KEYS, [schemas])
    parents: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, parent_schema, parent in await fetch(_INHERITS, [schemas]):
        parents.setdefault((schema, table), []).append((parent_schema, parent))
    pks: dict[tuple[str, str], set[str]] = {}
    fks: dict[tuple[str, str], list[ForeignKey]] = {}
    for schema, table, contype, _name, cols, ref_schema, ref_table, ref_cols in keys:
        if contype == "p":
            pks.setdefault((schema, table), set()).update(cols)
        else:
            fks.setdefault((schema, table), []).append(
                ForeignKey(tuple(cols), ref_table, tuple(ref_cols), ref_schema)
            )
    relations: dict[tuple[str, str], tuple[str, Any, Any]] = {}
    columns: dict[tuple[str, str], list[ColumnInfo]] = {}
    for schema, table, kind, reltuples, comment, col, ftype, nullable, col_comment, builtin in rows:
        key = (schema, table)
        if key not in relations:
            relations[key] = (kind, reltuples, comment)
            columns[key] = []
        if col is not None:
            pk = col in pks.get(key, ())
            columns[key].append(
                ColumnInfo(col, type_name(ftype, bool(builtin)), bool(nullable), pk, col_comment)
            )
    # Tables first, then views and materialized views, per schema: the order SQLAlchemy gave.
    order = {"r": 0, "p": 0, "v": 1, "m": 2}
    out = sorted(relations.items(), key=lambda kv: (schemas.index(kv[0][0]), order[kv[1][0]], kv[0][1]))
    return [
        TableInfo(
            name=table,
            columns=tuple(columns[(schema, table)]),
            schema=schema,
            kind="table" if kind in ("r", "p") else "view",
            foreign_keys=tuple(fks.get((schema, table), ())),
            comment=comment,
            row_count=int(reltuples) if reltuples is not None and reltuples >= 0 else None,
            parents=tuple(parents.get((schema, table), ())),
        )
        for (schema, table), (kind, reltuples, comment) in out
    ]
