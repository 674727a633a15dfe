"""The limits every run obeys, the leading-keyword check, and ``open_executor``.

An executor (the :class:`~sqlmode.engines.base.Executor` protocol) runs one read query under hard
limits and returns a :class:`~sqlmode.models.QueryResult`. It holds even when the analyzer in
front of it was fooled: the database session is read-only, limited and cleaned between uses
(each engine does it its own way: ``Engine.open_executor``).

    async with open_executor(settings) as executor:
        result = await executor.run(sql, max_rows=100, timeout_ms=2000)

A per-call ``max_rows`` / ``timeout_ms`` can only lower ``code_mode.max_rows`` /
``code_mode.query_timeout_ms``, never raise them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..config import Settings
from ..engines.base import Engine, Executor, engine_for_url
from ..errors import NotAQueryError
from ..schema.snapshot import SchemaSnapshot

__all__ = ["Executor", "check_read_query", "effective_limits", "leading_keyword", "open_executor"]


def effective_limits(settings: Settings, max_rows: int | None, timeout_ms: int | None) -> tuple[int, int]:
    """(max_rows, timeout_ms) for one call: the configured limits, lowered (never raised) per call."""
    cm = settings.code_mode
    rows = cm.max_rows if max_rows is None else max(0, min(int(max_rows), cm.max_rows))
    ms = cm.query_timeout_ms if timeout_ms is None else max(1, min(int(timeout_ms), cm.query_timeout_ms))
    return rows, ms


# Leading noise a query may start with: whitespace, comments and opening parentheses. A nested
# /* /* */ */ comment stops this pattern early and leaves "*/" as the first word: refused, which
# is the safe way to fail.
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.S)
_WORD = re.compile(r"[A-Za-z_]+")
_READ_WORDS = frozenset({"select", "with", "values", "table"})


def leading_keyword(sql: str) -> str:
    """The first word of ``sql`` after whitespace, comments and opening parentheses, lower-case;
    "" when the text starts with anything else. The read and the write path both judge by it."""
    m = _WORD.match(sql, _LEADING.match(sql).end())  # type: ignore[union-attr]
    return m.group(0).lower() if m else ""


def check_read_query(sql: str) -> None:
    """Refuse text that does not start like a row-returning query (SELECT, WITH, VALUES, TABLE).

    A cheap guard independent of the analyzer: CALL, SET, BEGIN, PREPARE, DECLARE, LISTEN, COPY
    and friends never reach the database through the read path.
    """
    word = leading_keyword(sql)
    if word not in _READ_WORDS:
        shown = word.upper() if word else repr(sql.strip()[:20])
        raise NotAQueryError(
            "Only a read query can run here (SELECT, WITH, VALUES or TABLE); "
            f"this statement starts with {shown}."
        )


@asynccontextmanager
async def open_executor(
    settings: Settings, snapshot: SchemaSnapshot | None = None, *, engine: Engine | None = None
) -> AsyncIterator[Executor]:
    """Open the read executor of ``settings.database.url``'s engine (or ``engine``), close it after.

    ``snapshot`` (reflected when not given, where the engine needs it) says what the query role
    must not read; start-up fails when the database does not stop it (e.g. _postgres_role.py).
    """
    executor = await (engine or engine_for_url(settings.database.url)).open_executor(settings, snapshot)
    try:
        yield executor
    finally:
        await executor.close()
