"""Reflect the configured database into a SchemaSnapshot with SQLAlchemy.

DuckDB goes through duckdb-engine; Postgres through SQLAlchemy's ``postgresql+asyncpg``
dialect on an async engine (asyncpg is already the executor's driver). duckdb-engine 0.17
cannot reflect primary and foreign keys on DuckDB 1.x/2.x (its pg_catalog queries use
REGCLASS), so for DuckDB keys, comments and sizes come from ``duckdb_constraints()`` and
``duckdb_tables()`` on the same SQLAlchemy connection. Columns are read with the
``get_multi_*`` inspector calls: one catalog query for all tables instead of one per table.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.reflection import ObjectKind

from ..config import Settings, missing_duckdb_hint
from ..dberrors import explain_db_error
from ..errors import SchemaError
from .describe import apply_descriptions, load_descriptions
from .snapshot import ColumnInfo, ForeignKey, SchemaSnapshot, TableInfo


def _type_name(t: Any) -> str:
    try:
        return str(t.compile()).upper()
    except Exception:  # some reflected types cannot compile without a dialect
        return type(t).__name__.upper()


def _columns(reflected: list[Any], pk: set[str]) -> tuple[ColumnInfo, ...]:
    return tuple(
        ColumnInfo(
            c["name"], _type_name(c["type"]), bool(c.get("nullable", True)), c["name"] in pk, c.get("comment")
        )
        for c in reflected
    )


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


def _reflect_duckdb(settings: Settings) -> list[TableInfo]:
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
                        columns=_columns(columns.get(name, []), pk),
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


async def _reflect_postgres(settings: Settings) -> list[TableInfo]:
    from sqlalchemy.ext.asyncio import create_async_engine

    url = sa.make_url(settings.database.url).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(url, poolclass=sa.pool.NullPool)
    schemas = settings.database.schemas or ["public"]

    def run(sync_conn: sa.Connection) -> list[TableInfo]:
        insp = sa.inspect(sync_conn)
        out: list[TableInfo] = []
        for schema in schemas:
            rows = sync_conn.exec_driver_sql(
                "SELECT c.relname, c.reltuples::bigint FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
                (schema,),
            ).fetchall()
            counts: dict[str, Any] = {r[0]: r[1] for r in rows}
            names = [(n, "table") for n in insp.get_table_names(schema=schema)]
            names += [(n, "view") for n in insp.get_view_names(schema=schema)]
            names += [(n, "view") for n in insp.get_materialized_view_names(schema=schema)]
            # The get_multi_* calls read the catalog once per schema instead of once per table.
            kind = ObjectKind.ANY
            columns = {k[1]: v for k, v in insp.get_multi_columns(schema=schema, kind=kind).items()}
            pks: dict[str, Any] = {
                k[1]: v for k, v in insp.get_multi_pk_constraint(schema=schema, kind=kind).items()
            }
            fks = {k[1]: v for k, v in insp.get_multi_foreign_keys(schema=schema, kind=kind).items()}
            comments: dict[str, Any] = {
                k[1]: v for k, v in insp.get_multi_table_comment(schema=schema, kind=kind).items()
            }
            for name, kind_name in names:
                pk = set((pks.get(name) or {}).get("constrained_columns") or [])
                rc = counts.get(name)
                out.append(
                    TableInfo(
                        name=name,
                        columns=_columns(columns.get(name, []), pk),
                        schema=schema,
                        kind=kind_name,  # type: ignore[arg-type]
                        foreign_keys=tuple(
                            ForeignKey(
                                tuple(fk["constrained_columns"]),
                                fk["referred_table"],
                                tuple(fk["referred_columns"]),
                                # None means the connection's default schema, not the table's own.
                                fk.get("referred_schema") or insp.default_schema_name,
                            )
                            for fk in fks.get(name, [])
                        ),
                        comment=(comments.get(name) or {}).get("text"),
                        row_count=int(rc) if rc is not None and rc >= 0 else None,
                    )
                )
        return out

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(run)
    finally:
        await engine.dispose()


async def reflect_schema(settings: Settings) -> SchemaSnapshot:
    """Reflect the configured database and apply the config's allow and block lists."""
    try:
        if settings.dialect == "duckdb":
            tables = await asyncio.to_thread(_reflect_duckdb, settings)
            database = Path(settings.database.duckdb_path).stem or "memory"
        else:
            tables = await _reflect_postgres(settings)
            database = sa.make_url(settings.database.url).database or "postgres"
    except SchemaError:
        raise
    except Exception as e:
        # A connection failure (no such database, wrong password, nothing listening) says which.
        raise explain_db_error(e, settings.database.url, doing="read the schema of") from e
    curated = load_descriptions(settings.database.descriptions) if settings.database.descriptions else None
    tables = apply_descriptions(tables, curated, {t.name: t.description for t in settings.database.tables})
    return SchemaSnapshot.build(
        settings.dialect,
        settings.server.name or database,
        tables,
        blocked_tables=settings.code_mode.blocked_tables,
        blocked_fields=settings.code_mode.blocked_fields,
        allowed_tables=[t.name for t in settings.database.tables] or None,
    )
