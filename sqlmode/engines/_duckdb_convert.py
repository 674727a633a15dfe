"""DuckDB result types to column plans (execute/convert.py does the converting)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..execute.convert import ColumnPlan, Converter, common_converters, json_cell, json_safe, json_value

__all__ = ["duckdb_plan"]


_DUCK_KINDS = {
    **dict.fromkeys(
        ["tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint", "uinteger", "ubigint"], "int"
    ),
    **dict.fromkeys(["hugeint", "uhugeint"], "int"),
    "boolean": "bool",
    "varchar": "text",
    **dict.fromkeys(["float", "double"], "float"),
    "decimal": "decimal",
    **dict.fromkeys(
        ["timestamp", "timestamp with time zone", "timestamp_ms", "timestamp_ns", "timestamp_s"], "datetime"
    ),
    "date": "date",
    **dict.fromkeys(["time", "time with time zone", "time_ns"], "time"),
    "interval": "timedelta",
    "uuid": "str",
    "blob": "bytes",
    "json": "json",
}


def duckdb_plan(types: Sequence[Any], max_bytes: int) -> ColumnPlan:
    """Plan for DuckDB ``cursor.description`` types (``DuckDBPyType``; ``.id`` names the kind)."""
    key = tuple(str(t) for t in types)
    plan = _duck_plans.get((key, max_bytes))
    if plan is None:
        plan = _duck_plans[(key, max_bytes)] = _duckdb_plan(types, max_bytes)
        if len(_duck_plans) > 512:
            _duck_plans.clear()
    return plan


_duck_plans: dict[tuple[tuple[str, ...], int], ColumnPlan] = {}


def _duckdb_plan(types: Sequence[Any], max_bytes: int) -> ColumnPlan:
    common = common_converters(max_bytes)
    convs: list[Converter | str | None] = []
    for t in types:
        type_id = getattr(t, "id", None) or str(t).lower()
        if str(t) == "JSON":
            convs.append(common["json"])
            continue
        if str(t).startswith("JSON[") and str(t).endswith("]"):  # JSON[], JSON[][], JSON[3]
            convs.append(common["json_array"])
            continue
        nested = _with_json(t)
        if nested is not None:  # a STRUCT, LIST or MAP holding JSON somewhere inside
            convs.append(_cell(nested, max_bytes))
            continue
        kind = _DUCK_KINDS.get(type_id)
        convs.append(common[kind] if kind is not None else common["deep"])
    return ColumnPlan(convs, max_bytes)


# Converts one nested value (the driver's dict or list), given the per-cell cap.
_Nested = Callable[[Any, int], Any]


def _with_json(t: Any) -> _Nested | None:
    """For a STRUCT, LIST, ARRAY or MAP type with a JSON field, element or value somewhere inside:
    how to convert its value with those parsed (the driver hands JSON over as text). None when
    there is no JSON inside (the deep conversion serves), or for a UNION, whose value does not
    say which member it is."""
    if str(t) == "JSON":
        return json_value
    kind = getattr(t, "id", "")
    if kind not in ("struct", "list", "array", "map"):
        return None
    children = [(name, _with_json(child)) for name, child in t.children]
    if all(conv is None for _, conv in children):
        return None
    if kind == "struct":
        fields = {name: conv for name, conv in children if conv is not None}
        return lambda v, mb: (
            None
            if v is None
            else {str(k): (fields[k](x, mb) if k in fields else json_safe(x, mb)) for k, x in v.items()}
        )
    if kind == "map":
        value = dict(children).get("value") or json_safe
        return lambda v, mb: None if v is None else {str(k): value(x, mb) for k, x in v.items()}
    element = children[0][1]
    assert element is not None
    return lambda v, mb: None if v is None else [element(x, mb) for x in v]


def _cell(nested: _Nested, max_bytes: int) -> Converter:
    return lambda v: json_cell(nested(v, max_bytes), max_bytes)
