"""DuckDB reflection from DuckDB's own catalog functions (no SQLAlchemy).

One read-only connection with the executor's exact configuration (DuckDB refuses to open a file twice
with different settings), three catalog queries: tables and views (with comments and sizes), columns, keys.
Types are DuckDB's own names (``DECIMAL(12,2)``, ``TIMESTAMP WITH TIME ZONE``, ``INTEGER[]``), which
the SQL the model writes uses too.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from ..errors import SchemaError
from ..schema.snapshot import ColumnInfo, ForeignKey, TableInfo

__all__ = ["reflect_duckdb"]


def missing_duckdb_hint(s: Settings) -> str:
    """What to do about a configured DuckDB file that does not exist."""
    if s.is_bundled_sample:
        return "Run `sqlmode sample-db` to build the sample warehouse, or fix database.url."
    written = s._duckdb_written or s.database.duckdb_path
    resolved = s.database.duckdb_path
    key = "database.path" if s.database.path is not None else "database.url"
    parts = [
        f"{key} names {written!r}, which resolves to {resolved}.",
        "duckdb:///name.duckdb (three slashes) is relative to the config file's folder "
        f"({s.base_dir}); for an absolute path write four slashes, duckdb:////abs/path.duckdb, "
        'or database.path = "/abs/path.duckdb".',
    ]
    if not Path(written).is_absolute() and Path("/" + written).exists():
        parts.insert(1, f"Did you mean the absolute path /{written}? Then write duckdb:////{written}.")
    return " ".join(parts)


# The user's objects of the file's own catalog in schema main, in a stable order.
_OWN = "schema_name = 'main' AND database_name = current_database() AND NOT internal"
_RELATIONS = (
    f"SELECT table_name, 'table', comment, estimated_size FROM duckdb_tables() WHERE {_OWN} "
    f"UNION ALL SELECT view_name, 'view', comment, NULL FROM duckdb_views() WHERE {_OWN} "
    "ORDER BY 1"
)
_COLUMNS = (
    f"SELECT table_name, column_name, data_type, is_nullable, comment FROM duckdb_columns() WHERE {_OWN} "
    "ORDER BY table_name, column_index"
)
_KEYS = (
    "SELECT table_name, constraint_type, constraint_column_names, referenced_table, referenced_column_names "
    "FROM duckdb_constraints() WHERE schema_name = 'main' AND database_name = current_database() "
    "AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') ORDER BY table_name, constraint_index"
)


def reflect_duckdb(settings: Settings) -> list[TableInfo]:
    import duckdb

    db = settings.database
    path = db.duckdb_path
    if path != ":memory:" and not Path(path).exists():
        raise SchemaError(
            f"DuckDB file {path} does not exist",
            code="DATABASE_NOT_FOUND",
            hint=missing_duckdb_hint(settings),
        )
    conn = duckdb.connect(path, read_only=path != ":memory:", config=dict(db.duckdb_config()))
    try:
        relations = conn.execute(_RELATIONS).fetchall()
        columns = conn.execute(_COLUMNS).fetchall()
        keys = conn.execute(_KEYS).fetchall()
    finally:
        conn.close()
    pks: dict[str, set[str]] = {}
    fks: dict[str, list[ForeignKey]] = {}
    for table, kind, cols, ref_table, ref_cols in keys:
        if kind == "PRIMARY KEY":
            pks.setdefault(table, set()).update(cols)
        else:
            fks.setdefault(table, []).append(ForeignKey(tuple(cols), ref_table, tuple(ref_cols)))
    by_table: dict[str, list[ColumnInfo]] = {}
    for table, name, type_, nullable, comment in columns:
        by_table.setdefault(table, []).append(
            ColumnInfo(name, str(type_), bool(nullable), name in pks.get(table, ()), comment)
        )
    return [
        TableInfo(
            name=name,
            columns=tuple(by_table.get(name, ())),
            schema="main",
            kind=kind,
            foreign_keys=tuple(fks.get(name, ())),
            comment=comment,
            row_count=size,
        )
        for name, kind, comment, size in relations
    ]
