"""Reflect the configured database into a SchemaSnapshot.

The engine reads its catalog (``Engine.reflect_tables``: tables, views, columns, keys, comments,
sizes); this module applies the curated descriptions and the config's allow and block lists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..config import Settings
from ..engines.base import engine_for_url
from ..errors import SchemaError
from .describe import apply_descriptions, load_descriptions
from .snapshot import SchemaSnapshot, TableInfo

__all__ = ["Catalog", "reflect_schema"]


# Reads the engine's catalog as Engine.reflect_tables does, on a connection the caller already holds.
Catalog = Callable[[], Awaitable[tuple[list[TableInfo], str]]]


async def reflect_schema(settings: Settings, catalog: Catalog | None = None) -> SchemaSnapshot:
    """Reflect the configured database and apply the config's allow and block lists.

    ``catalog`` reads the tables instead of ``Engine.reflect_tables`` (which opens a connection of
    its own): an executor reflects on a session it has open (engines/_postgres_exec.py).
    """
    engine = engine_for_url(settings.database.url)
    try:
        tables, database = await (catalog() if catalog is not None else engine.reflect_tables(settings))
    except SchemaError:
        raise
    except Exception as e:
        # A connection failure (no such database, wrong password, nothing listening) says which.
        raise engine.connect_error(e, settings.database.url, "read the schema of") from e
    curated = load_descriptions(settings.database.descriptions) if settings.database.descriptions else None
    tables = apply_descriptions(tables, curated, {t.name: t.description for t in settings.database.tables})
    return SchemaSnapshot.build(
        engine.traits.name,
        settings.server.name or database,
        tables,
        blocked_tables=settings.code_mode.blocked_tables,
        blocked_fields=settings.code_mode.blocked_fields,
        allowed_tables=[t.name for t in settings.database.tables] or None,
    )
