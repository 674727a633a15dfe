"""DuckDB's parser, on a private connection that only parses (never the warehouse)."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["parser_connection"]

_local = threading.local()


def parser_connection() -> Any:
    """A per-thread in-memory DuckDB used only to parse (and serialize) SQL, never the warehouse."""
    con = getattr(_local, "con", None)
    if con is None:
        import duckdb

        # Parsing only; external access and extension loading are off anyway so that
        # nothing this connection could ever be asked to do reaches files or network.
        con = duckdb.connect(
            ":memory:",
            config={
                "enable_external_access": False,
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
            },
        )
        con.execute("SET lock_configuration = true")
        _local.con = con
    return con
