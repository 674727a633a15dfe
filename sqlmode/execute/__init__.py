"""Read-only execution with hard limits (PostgreSQL through asyncpg, DuckDB), and the write connection.

    from sqlmode.execute import open_executor
    async with open_executor(settings) as executor:
        result = await executor.run(sql, max_rows=None, timeout_ms=None)  # -> QueryResult

Engine modules are imported when an executor is opened, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Executor, check_read_query, effective_limits, open_executor

if TYPE_CHECKING:
    from .grants import apply_grants, grant_script
    from .writes import WriteResult, open_write_executor

__all__ = [
    "Executor",
    "WriteResult",
    "apply_grants",
    "check_read_query",
    "effective_limits",
    "grant_script",
    "open_executor",
    "open_write_executor",
]

_LAZY = {
    "apply_grants": ".grants",
    "grant_script": ".grants",
    "WriteResult": ".writes",
    "open_write_executor": ".writes",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
