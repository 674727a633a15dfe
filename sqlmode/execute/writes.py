"""The write connection: one INSERT/UPDATE (or, when allowed, DELETE/MERGE) per transaction, capped.

Used only when ``code_mode.allow_writes`` is true (opening it otherwise is a ConfigError), and
never through the read pool:

- each engine opens its own (``Engine.open_write_executor``): e.g. a separate small pool on
  ``database.write_url`` (engines/_postgres_writes.py), or the configured file opened read-write
  and shared in-process with the read executor (engines/_duckdb_writes.py);
- this module holds what every engine's writer obeys: the text and verb checks and the caps.

Each call runs exactly one statement inside a transaction. It is rolled back, and nothing
changes, when the statement is not an INSERT/UPDATE (DELETE and MERGE need
``code_mode.allow_deletes``), when it fails or runs out of time, or when it affects more rows
than the cap (``code_mode.max_write_rows``, lowered per call): then WriteLimitExceededError.

    async with open_write_executor(settings) as writer:
        result = await writer.run_write("UPDATE orders SET status = 'void' WHERE id = 7", max_affected=1)
        result.affected_rows  # 1
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import Field

from ..config import Settings
from ..engines.base import Engine, engine_for_url
from ..errors import ConfigError, NotAQueryError, PermissionDeniedError, WriteLimitExceededError
from ..models import QueryResult
from .base import leading_keyword

__all__ = ["WriteResult", "check_verb", "check_write_text", "open_write_executor", "over_cap", "write_limits"]

_WRITE_WORDS = frozenset({"insert", "update", "delete", "merge", "with"})
_DELETE_WORDS = re.compile(r"\b(delete|merge|truncate)\b", re.I)


class WriteResult(QueryResult):
    """A write's outcome: rows changed, the statement kind, and RETURNING rows if any."""

    affected_rows: int = Field(description="Rows inserted, updated or deleted (committed).")
    statement: str = Field(description="INSERT, UPDATE, DELETE or MERGE.")


def write_limits(settings: Settings, max_affected: int | None, timeout_ms: int | None) -> tuple[int, int]:
    cm = settings.code_mode
    cap = cm.max_write_rows if max_affected is None else max(0, min(int(max_affected), cm.max_write_rows))
    ms = cm.query_timeout_ms if timeout_ms is None else max(1, min(int(timeout_ms), cm.query_timeout_ms))
    return cap, ms


def check_write_text(settings: Settings, sql: str) -> None:
    word = leading_keyword(sql)
    if word not in _WRITE_WORDS:
        raise NotAQueryError(
            f"Only INSERT, UPDATE, DELETE or MERGE can run on the write connection; this starts with "
            f"{word.upper() or repr(sql.strip()[:20])}.",
            hint="Send one data-changing statement; schema changes and other commands are not allowed.",
        )
    # The command tag names only the outer statement, so a DELETE inside a data-modifying CTE
    # would pass as INSERT/UPDATE. Without allow_deletes the words themselves are refused
    # (a string literal containing them is refused too: failing closed is the point).
    if not settings.code_mode.allow_deletes and _DELETE_WORDS.search(sql):
        raise PermissionDeniedError(
            "DELETE, MERGE and TRUNCATE are not allowed: code_mode.allow_deletes is false. "
            "Nothing was changed.",
            hint="Deleting rows is disabled in this server's configuration.",
        )


def check_verb(settings: Settings, verb: str) -> None:
    if verb in ("INSERT", "UPDATE"):
        return
    if verb in ("DELETE", "MERGE"):
        if settings.code_mode.allow_deletes:
            return
        raise PermissionDeniedError(
            f"{verb} is not allowed: code_mode.allow_deletes is false. Nothing was changed.",
            hint="Deleting rows is disabled in this server's configuration.",
        )
    raise NotAQueryError(
        f"Only INSERT, UPDATE, DELETE or MERGE can run on the write connection; this was {verb}. "
        "Nothing was changed."
    )


def over_cap(verb: str, affected: int | None, cap: int) -> WriteLimitExceededError:
    n = f"{affected}" if affected is not None else f"more than {cap}"
    return WriteLimitExceededError(
        f"The {verb} would change {n} rows, more than the {cap} allowed; "
        "it was rolled back and nothing changed."
    )


@asynccontextmanager
async def open_write_executor(settings: Settings, *, engine: Engine | None = None) -> AsyncIterator[Any]:
    """Open the write connection (only when ``code_mode.allow_writes`` is true)."""
    if not settings.code_mode.allow_writes:
        raise ConfigError(
            "writes are disabled",
            key="code_mode.allow_writes",
            hint="Set code_mode.allow_writes = true (and database.write_url on PostgreSQL) to allow writes.",
        )
    writer = await (engine or engine_for_url(settings.database.url)).open_write_executor(settings)
    try:
        yield writer
    finally:
        await writer.close()
