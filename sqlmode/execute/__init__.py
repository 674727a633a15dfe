"""Engine-independent execution: limits, the engine check, conversion, the write connection's rules.

    from sqlmode.execute import open_executor
    async with open_executor(settings) as executor:
        result = await executor.run(sql, max_rows=None, timeout_ms=None)  # -> QueryResult

Each engine opens its own executors (sqlmode/engines/); this package holds what they share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Executor, check_read_query, effective_limits, open_executor

if TYPE_CHECKING:
    from .writes import WriteResult, open_write_executor

__all__ = [
    "Executor",
    "WriteResult",
    "check_read_query",
    "effective_limits",
    "open_executor",
    "open_write_executor",
]

_LAZY = {
    "WriteResult": ".writes",
    "open_write_executor": ".writes",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
