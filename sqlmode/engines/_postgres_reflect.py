"""PostgreSQL reflection through SQLAlchemy's ``postgresql+asyncpg`` dialect on an async engine.

asyncpg is already the executor's driver. Columns, keys and comments are read with the
``get_multi_*`` inspector calls: one catalog query per schema instead of one per table.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.reflection import ObjectKind

from ..config import Settings
from ..schema.snapshot import ForeignKey, TableInfo
from ._reflect import reflected_columns

__all__ = ["reflect_postgres"]


async def reflect_postgres(settings: Settings) -> list[TableInfo]:
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
                        columns=reflected_columns(columns.get(name, []), pk),
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
