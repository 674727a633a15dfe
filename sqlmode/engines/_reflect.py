"""Reflection helpers the engines share: SQLAlchemy inspector rows into TableInfo columns."""

from __future__ import annotations

from typing import Any

from ..schema.snapshot import ColumnInfo

__all__ = ["reflected_columns"]


def _type_name(t: Any) -> str:
    try:
        return str(t.compile()).upper()
    except Exception:  # some reflected types cannot compile without a dialect
        return type(t).__name__.upper()


def reflected_columns(reflected: list[Any], pk: set[str]) -> tuple[ColumnInfo, ...]:
    return tuple(
        ColumnInfo(
            c["name"], _type_name(c["type"]), bool(c.get("nullable", True)), c["name"] in pk, c.get("comment")
        )
        for c in reflected
    )
