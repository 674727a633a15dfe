"""DuckDB reflection through duckdb-engine (SQLAlchemy).

duckdb-engine 0.17 cannot reflect primary and foreign keys on DuckDB 1.x/2.x (its pg_catalog
queries use REGCLASS), so keys, comments and sizes come from ``duckdb_constraints()`` and
``duckdb_tables()`` on the same SQLAlchemy connection. Columns are read with the
``get_multi_*`` inspector calls: one catalog query for all tables instead of one per table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.reflection import ObjectKind

from ..config import Settings
from ..errors import SchemaError
from ..schema.snapshot import ForeignKey, TableInfo
from ._reflect import reflected_columns

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


def _duckdb_engine(settings: Settings) -> sa.Engine:
    import duckdb
    from duckdb_engine import ConnectionWrapper

    db = settings.database
    path = db.duckdb_path
    if path != ":memory:" and not Path(path).exists():
        raise SchemaError(
            f"DuckDB file {path} does not exist",
            code="DATABASE_NOT_FOUND",
            hint=missing_duckdb_hint(settings),
        )
    cfg = db.duckdb_config()

    def creator() -> Any:
        # The executor opens the same file with this exact config; DuckDB refuses a mix.
        return ConnectionWrapper(duckdb.connect(path, read_only=path != ":memory:", config=dict(cfg)))

    return sa.create_engine("duckdb://", creator=creator, poolclass=sa.pool.NullPool)


def reflect_duckdb(settings: Settings) -> list[TableInfo]:
    engine = _duckdb_engine(settings)
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            names = [(n, "table") for n in insp.get_table_names()] + [
                (n, "view") for n in insp.get_view_names()
            ]
            cons = conn.exec_driver_sql(
                "SELECT table_name, constraint_type, constraint_column_names, referenced_table, "
                "referenced_column_names FROM duckdb_constraints() "
                "WHERE schema_name = 'main' AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')"
            ).fetchall()
            meta = {
                r[0]: (r[1], r[2])
                for r in conn.exec_driver_sql(
                    "SELECT table_name, comment, estimated_size FROM duckdb_tables() "
                    "WHERE schema_name = 'main'"
                ).fetchall()
            }
            pks: dict[str, set[str]] = {}
            fks: dict[str, list[ForeignKey]] = {}
            for table, kind, cols, ref_table, ref_cols in cons:
                if kind == "PRIMARY KEY":
                    pks.setdefault(table, set()).update(cols)
                else:
                    fks.setdefault(table, []).append(ForeignKey(tuple(cols), ref_table, tuple(ref_cols)))
            # One catalog query for every table's columns: per-table get_columns costs ~30 ms each here.
            columns = {key[1]: cols for key, cols in insp.get_multi_columns(kind=ObjectKind.ANY).items()}
            out = []
            for name, kind in names:
                pk = pks.get(name, set())
                comment, size = meta.get(name, (None, None))
                out.append(
                    TableInfo(
                        name=name,
                        columns=reflected_columns(columns.get(name, []), pk),
                        schema="main",
                        kind=kind,  # type: ignore[arg-type]
                        foreign_keys=tuple(fks.get(name, ())),
                        comment=comment,
                        row_count=size,
                    )
                )
            return out
    finally:
        engine.dispose()
