"""Schema: reflection into a SchemaSnapshot, bounding to what may be seen, rendering."""

from typing import Any

from ..config import Settings
from .render import parse_shown_name, render_schema, render_table, shown_names
from .snapshot import ColumnInfo, ForeignKey, SchemaSnapshot, TableInfo


async def reflect_schema(settings: Settings, catalog: Any = None) -> SchemaSnapshot:
    """The database's schema (reflect.py, where ``catalog`` is described); the engine's driver loads
    on first use, not at import."""
    from .reflect import reflect_schema as reflect

    return await reflect(settings, catalog)


__all__ = [
    "ColumnInfo",
    "ForeignKey",
    "SchemaSnapshot",
    "TableInfo",
    "parse_shown_name",
    "reflect_schema",
    "render_schema",
    "render_table",
    "shown_names",
]
