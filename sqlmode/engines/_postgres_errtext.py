"""PostgreSQL error text fit for the caller: no DETAIL, integrity failures by kind (execute/errtext.py)."""

from __future__ import annotations

from typing import Any

from ..execute.errtext import scrub, where_named

__all__ = ["pg_error_text"]

_PG_INTEGRITY = {
    "23502": "a NOT NULL constraint",
    "23503": "a foreign key constraint",
    "23505": "a unique or primary key constraint",
    "23514": "a CHECK constraint",
    "23P01": "an exclusion constraint",
}


def pg_error_text(e: Any, sql: str | None) -> tuple[str, str | None]:
    """(message, hint) of a PostgreSQL error, fit for the caller (no DETAIL, nothing unnamed)."""
    state = getattr(e, "sqlstate", None) or ""
    if state.startswith("23"):
        kind = _PG_INTEGRITY.get(state, "an integrity constraint")
        where = where_named(getattr(e, "column_name", None), getattr(e, "table_name", None), sql)
        return f"the change violates {kind}{where}", None
    hint = getattr(e, "hint", None)
    return scrub(str(e), sql), scrub(hint, sql) if hint else None
