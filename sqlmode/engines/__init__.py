"""Database engines: one module per engine, registered by URL scheme.

Everything engine-specific lives in this package; the rest of sqlmode asks an
:class:`~sqlmode.engines.base.Engine` (found with :func:`engine_for_url`) and reads its
:class:`~sqlmode.engines.base.EngineTraits`, and never compares engine names.

Adding a third engine
---------------------
1. Write one module (``engines/myengine.py``, or your own package) with a class that
   implements every member of :class:`~sqlmode.engines.base.Engine`: its traits, URL schemes,
   prompt notes, its own parser, and the runtime (executor, sessions, catalog, plans, grants).
   Keep imports of execute/ and other higher layers inside the methods: the registry is
   imported by low layers, and the module must load without them.
2. Register an instance: ``register_engine(MyEngine())`` (for a built-in, add it to the list
   below). A ``database.url`` with its scheme now selects it everywhere.
docs/engines.md walks through the protocol member by member; tests/engines/sqlite_engine.py is
a small read-only engine written this way.
"""

from __future__ import annotations

from . import duckdb as _duckdb
from . import postgres as _postgres
from .base import (
    BoundAccess,
    Engine,
    EngineTraits,
    Executor,
    NativeSyntaxError,
    NativeView,
    engine_for_url,
    engine_named,
    known_schemes,
    register_engine,
    settings_engine,
    unregister_engine,
    url_scheme,
)

__all__ = [
    "BoundAccess",
    "Engine",
    "EngineTraits",
    "Executor",
    "NativeSyntaxError",
    "NativeView",
    "engine_for_url",
    "engine_named",
    "known_schemes",
    "register_engine",
    "settings_engine",
    "unregister_engine",
    "url_scheme",
]

for _engine in (_postgres.ENGINE, _duckdb.ENGINE):
    register_engine(_engine)
