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

__all__ = ["database_name", "read_catalog", "reflect_duckdb", "schemas_of"]


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


# The user's objects of the file's own catalog in the configured schemas (``$1``: main unless
# database.schemas names others), schemas in the configured order, then names.
_OWN = "schema_name = ANY($1::VARCHAR[]) AND database_name = current_database() AND NOT internal"
_ORDER = "list_position($1::VARCHAR[], schema_name)"
_RELATIONS = (
    f"SELECT schema_name, table_name, 'table', comment, estimated_size, {_ORDER} AS o FROM duckdb_tables() "
    f"WHERE {_OWN} UNION ALL SELECT schema_name, view_name, 'view', comment, NULL, {_ORDER} AS o "
    f"FROM duckdb_views() WHERE {_OWN} ORDER BY o, 2"
)
_COLUMNS = (
    "SELECT schema_name, table_name, column_name, data_type, is_nullable, comment FROM duckdb_columns() "
    f"WHERE {_OWN} ORDER BY schema_name, table_name, column_index"
)
_KEYS = (
    "SELECT schema_name, table_name, constraint_type, constraint_column_names, referenced_table, "
    "referenced_column_names FROM duckdb_constraints() WHERE schema_name = ANY($1::VARCHAR[]) "
    "AND database_name = current_database() AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') "
    "ORDER BY schema_name, table_name, constraint_index"
)


def schemas_of(settings: Settings) -> list[str]:
    """The schemas to expose: database.schemas, else main."""
    return list(settings.database.schemas or ["main"])


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
        return read_catalog(conn, schemas_of(settings))
    finally:
        conn.close()


def read_catalog(conn: Any, schemas: list[str] | None = None) -> list[TableInfo]:
    """The user's tables and views in ``schemas`` (main by default), read on ``conn`` (a DuckDB
    connection or cursor)."""
    wanted = [schemas or ["main"]]
    relations = conn.execute(_RELATIONS, wanted).fetchall()
    columns = conn.execute(_COLUMNS, wanted).fetchall()
    keys = conn.execute(_KEYS, wanted).fetchall()
    pks: dict[tuple[str, str], set[str]] = {}
    fks: dict[tuple[str, str], list[ForeignKey]] = {}
    for schema, table, kind, cols, ref_table, ref_cols in keys:
        if kind == "PRIMARY KEY":
            pks.setdefault((schema, table), set()).update(cols)
        else:
            # DuckDB's foreign keys reference a table of the same schema.
            fks.setdefault((schema, table), []).append(
                ForeignKey(tuple(cols), ref_table, tuple(ref_cols), schema)
            )
    by_table: dict[tuple[str, str], list[ColumnInfo]] = {}
    for schema, table, name, type_, nullable, comment in columns:
        by_table.setdefault((schema, table), []).append(
            ColumnInfo(name, str(type_), bool(nullable), name in pks.get((schema, table), ()), comment)
        )
    return [
        TableInfo(
            name=name,
            columns=tuple(by_table.get((schema, name), ())),
            schema=schema,
            kind=kind,
            foreign_keys=tuple(fks.get((schema, name), ())),
            comment=comment,
            row_count=size,
        )
        for schema, name, kind, comment, size, _order in relations
    ]
