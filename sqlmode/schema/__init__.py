"""Schema: reflection into a SchemaSnapshot, bounding to what may be seen, rendering."""

from ..config import Settings
from .render import render_schema, render_table
from .snapshot import ColumnInfo, ForeignKey, SchemaSnapshot, TableInfo


async def reflect_schema(settings: Settings) -> SchemaSnapshot:
    """The database's schema (reflect.py); its drivers (SQLAlchemy) load on first use, not at import."""
    from .reflect import reflect_schema as reflect

    return await reflect(settings)


__all__ = [
    "ColumnInfo",
    "ForeignKey",
    "SchemaSnapshot",
    "TableInfo",
    "reflect_schema",
    "render_schema",
    "render_table",
]
