"""DuckDB reflection from DuckDB's own catalog functions (no SQLAlchemy).

Three catalog queries (tables and views with comments and sizes, columns, keys) on a connection:
the executor's own instance once it is open (``DuckDBExecutor.reflect``: a refresh opens the file
no second time), else one of its own with the executor's exact configuration. DuckDB refuses, in
one process, a second connection to a file with another configuration, ``read_only`` included: a
file some part of this process holds read-write (writes on) is joined read-write and read inside
a read-only transaction.
Types are DuckDB's own names (``DECIMAL(12,2)``, ``TIMESTAMP WITH TIME ZONE``, ``INTEGER[]``), which
the SQL the model writes uses too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import SchemaError
from ..schema.snapshot import ColumnInfo, ForeignKey, TableInfo

__all__ = ["database_name", "read_catalog", "reflect_duckdb"]


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


def database_name(settings: Settings) -> str:
    """The snapshot's database name: the file's stem."""
    return Path(settings.database.duckdb_path).stem or "memory"


def reflect_duckdb(settings: Settings) -> list[TableInfo]:
    """The tables, on a connection of its own (before the executor opens, or without one)."""
    import duckdb

    db = settings.database
    path = db.duckdb_path
    if path != ":memory:" and not Path(path).exists():
        raise SchemaError(
            f"DuckDB file {path} does not exist",
            code="DATABASE_NOT_FOUND",
            hint=missing_duckdb_hint(settings),
        )
    config: dict[str, Any] = dict(db.duckdb_config())
    try:
        conn = duckdb.connect(path, read_only=path != ":memory:", config=config)
        in_transaction = False
    except duckdb.ConnectionException as e:
        if "different configuration" not in str(e):
            raise
        # This process holds the file read-write (an executor with writes on): join that instance
        # (same configuration, so nothing new is opened or locked) and only read.
        conn = duckdb.connect(path, read_only=False, config=config)
        in_transaction = True
    try:
        if in_transaction:
            conn.execute("BEGIN TRANSACTION READ ONLY")
        return read_catalog(conn)
    finally:
        conn.close()


def read_catalog(conn: Any) -> list[TableInfo]:
    """The user's tables and views in schema main, read on ``conn`` (a DuckDB connection or cursor)."""
    relations = conn.execute(_RELATIONS).fetchall()
    columns = conn.execute(_COLUMNS).fetchall()
    keys = conn.execute(_KEYS).fetchall()
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
