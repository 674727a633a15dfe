"""DuckDB result types to column plans (execute/convert.py does the converting)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..execute.convert import ColumnPlan, Converter, common_converters

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
        kind = _DUCK_KINDS.get(type_id)
        convs.append(common[kind] if kind is not None else common["deep"])
    return ColumnPlan(convs, max_bytes)
