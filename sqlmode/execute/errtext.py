"""What of a database's error text may reach the caller: nothing the query did not already say.

A failing write makes the database describe the row it refused: PostgreSQL's DETAIL carries the
whole row image ("Failing row contains (...)", "Key (ssn)=(...) already exists") and its primary
message names the column that failed even when the query never mentioned it; DuckDB puts keys,
values and CHECK expressions in the message itself. Any of these can hand a caller a blocked
column's name or value. So, for every error text that goes back to a caller:

- a database DETAIL is never passed on;
- integrity-constraint failures get a fixed sentence per kind, naming the column and table only
  when the query text itself names them;
- anything else (syntax, data conversion, hints) keeps its words, but every quoted token or number
  that does not occur in the query text is replaced by an ellipsis, so values and identifiers the
  engine read from stored rows or the catalog cannot come through.

The rules over-approximate on purpose: a helpful value is sometimes hidden, a stored one never shown.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["duckdb_error_text", "named_in", "pg_error_text", "scrub"]

HIDDEN = "…"
_QUOTED = re.compile(r"\"((?:[^\"]|\"\")*)\"|'((?:[^']|'')*)'")
_NUMBER = re.compile(r"(?<!LINE )(?<![\w$.])-?\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w$])")

_PG_INTEGRITY = {
    "23502": "a NOT NULL constraint",
    "23503": "a foreign key constraint",
    "23505": "a unique or primary key constraint",
    "23514": "a CHECK constraint",
    "23P01": "an exclusion constraint",
}


def named_in(name: str | None, sql: str | None) -> bool:
    """Whether the query text mentions ``name`` as a whole word (case-insensitive)."""
    if not name or not sql:
        return False
    return re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", sql, re.I) is not None


def scrub(text: str, sql: str | None) -> str:
    """``text`` with each quoted token and number the query does not contain replaced by an ellipsis."""

    def quoted(m: re.Match[str]) -> str:
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        q = m.group(0)[0]
        keep = inner == "" or named_in(inner, sql)
        return m.group(0) if keep else f"{q}{HIDDEN}{q}"

    def number(m: re.Match[str]) -> str:
        return m.group(0) if named_in(m.group(0), sql) else HIDDEN

    parts: list[str] = []
    last = 0
    for m in _QUOTED.finditer(text):
        parts.append(_NUMBER.sub(number, text[last : m.start()]))
        parts.append(quoted(m))
        last = m.end()
    parts.append(_NUMBER.sub(number, text[last:]))
    return "".join(parts)


def _where(column: str | None, table: str | None, sql: str | None) -> str:
    col = column if named_in(column, sql) else None
    tab = table if named_in(table, sql) else None
    if col and tab:
        return f" on column {col} of {tab}"
    if col:
        return f" on column {col}"
    return f" on {tab}" if tab else ""


def pg_error_text(e: Any, sql: str | None) -> tuple[str, str | None]:
    """(message, hint) of a PostgreSQL error, fit for the caller (no DETAIL, nothing unnamed)."""
    state = getattr(e, "sqlstate", None) or ""
    if state.startswith("23"):
        kind = _PG_INTEGRITY.get(state, "an integrity constraint")
        where = _where(getattr(e, "column_name", None), getattr(e, "table_name", None), sql)
        return f"the change violates {kind}{where}", None
    hint = getattr(e, "hint", None)
    return scrub(str(e), sql), scrub(hint, sql) if hint else None


_DUCK_NOT_NULL = re.compile(r"NOT NULL constraint failed: (?:\"?([\w$]+)\"?\.)?\"?([\w$]+)\"?")
_DUCK_KINDS = (
    ("NOT NULL", "a NOT NULL constraint"),
    ("primary key", "a unique or primary key constraint"),
    ("unique", "a unique or primary key constraint"),
    ("Duplicate key", "a unique or primary key constraint"),
    ("CHECK", "a CHECK constraint"),
    ("foreign key", "a foreign key constraint"),
)


def duckdb_error_text(e: BaseException, sql: str | None) -> str:
    """A DuckDB error's message, fit for the caller: constraint failures by kind, the rest scrubbed."""
    import duckdb

    msg = str(e)
    if isinstance(e, duckdb.ConstraintException):
        kind = next((k for word, k in _DUCK_KINDS if word.lower() in msg.lower()), "a constraint")
        m = _DUCK_NOT_NULL.search(msg)
        where = _where(m.group(2), m.group(1), sql) if m else ""
        return f"Constraint Error: the change violates {kind}{where}"
    text = scrub(msg, sql)
    # "... when casting from source column ssn": the column is the engine's, not the query's words.
    return re.sub(
        r"(source column )([\w$]+)",
        lambda m: m.group(0) if named_in(m.group(2), sql) else m.group(1) + HIDDEN,
        text,
    )
