"""asyncpg result types to column plans (execute/convert.py does the converting)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..execute.convert import ColumnPlan, Converter, common_converters, iso_duration

__all__ = ["PG_SCALAR_TYPES", "PG_TEXT_TYPES", "pg_interval", "postgres_plan"]


def pg_interval(t: tuple[int, int, int]) -> str:
    """Decoder for asyncpg's exact ``format='tuple'`` interval codec: (months, days, microseconds)."""
    return iso_duration(t[0], t[1], t[2])


_PG_KINDS = {
    **dict.fromkeys(["int2", "int4", "int8", "oid", "xid", "cid", "regclass", "regtype", "regproc"], "int"),
    "bool": "bool",
    **dict.fromkeys(
        ["text", "varchar", "bpchar", "name", "char", "citext", "xml", "money", "macaddr"], "text"
    ),
    **dict.fromkeys(["macaddr8", "tsvector", "tsquery", "pg_lsn", "txid_snapshot", "pg_snapshot"], "text"),
    **dict.fromkeys(["float4", "float8"], "float"),
    "numeric": "decimal",
    **dict.fromkeys(["timestamp", "timestamptz"], "datetime"),
    "date": "date",
    **dict.fromkeys(["time", "timetz"], "time"),
    "interval": "interval",
    **dict.fromkeys(["uuid", "inet", "cidr"], "str"),
    "bytea": "bytes",
    **dict.fromkeys(["json", "jsonb"], "json"),
}


# Types the read pool decodes as the server's text (see _postgres_exec.py): already JSON-safe strings.
PG_TEXT_TYPES = frozenset({"numeric", "timestamp", "timestamptz", "date", "time", "timetz", "uuid"})
PG_SCALAR_TYPES = frozenset(_PG_KINDS) | PG_TEXT_TYPES


@lru_cache(maxsize=512)
def postgres_plan(types: tuple[Any, ...], max_bytes: int, text_codecs: bool = True) -> ColumnPlan:
    """Plan for asyncpg attribute types (``Type(oid, name, kind, schema)``).

    ``text_codecs``: the statement was decoded with the pool's custom codecs (text for
    :data:`PG_TEXT_TYPES`, exact ISO strings for intervals); False when they were bypassed.
    """
    common = common_converters(max_bytes)
    convs: list[Converter | str | None] = []
    for t in types:
        kind = _PG_KINDS.get(t.name) if t.kind == "scalar" else None
        if text_codecs and (t.name in PG_TEXT_TYPES or kind == "interval"):
            convs.append(None)
        elif kind == "interval":
            convs.append(common["timedelta"])
        elif kind is not None:
            convs.append(common[kind])
        elif t.kind == "array" and t.name in ("json[]", "jsonb[]"):
            convs.append(common["json_array"])  # each element parsed like a json column
        else:
            # Arrays, records, ranges, enums, domains, geometry, extension types: by Python value.
            convs.append(common["deep"])
    return ColumnPlan(convs, max_bytes)
