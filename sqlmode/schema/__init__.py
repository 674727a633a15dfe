"""Schema: reflection into a SchemaSnapshot, bounding to what may be seen, rendering."""

from .reflect import reflect_schema
from .render import render_schema, render_table
from .snapshot import ColumnInfo, ForeignKey, SchemaSnapshot, TableInfo

__all__ = [
    "ColumnInfo",
    "ForeignKey",
    "SchemaSnapshot",
    "TableInfo",
    "reflect_schema",
    "render_schema",
    "render_table",
]
