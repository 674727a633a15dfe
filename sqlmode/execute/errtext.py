"""What of a database's error text may reach the caller: nothing the query did not already say.

A failing write makes the database describe the row it refused: a DETAIL can carry the whole
row image ("Failing row contains (...)", "Key (ssn)=(...) already exists"), a primary message
names the column that failed even when the query never mentioned it, and some engines put keys,
values and CHECK expressions in the message itself (each engine's rules: engines/_*_errtext.py).
Any of these can hand a caller a blocked column's name or value. So, for every error text that goes
back to a caller:

- a database DETAIL is never passed on;
- integrity-constraint failures get a fixed sentence per kind, naming the column and table only
  when the query text itself names them;
- anything else (syntax, data conversion, hints) keeps its words, but every quoted token or number
  that does not occur in the query text is replaced by an ellipsis, so values and identifiers the
  engine read from stored rows or the catalog cannot come through. A qualified name the engine
  spells out (``"orders.created_at"`` for a query that wrote ``created_at`` from ``orders``) is kept
  when each of its parts is an identifier the query names: it tells nothing the query did not.

The rules over-approximate on purpose: a helpful value is sometimes hidden, a stored one never shown.
"""

from __future__ import annotations

import re

__all__ = ["HIDDEN", "named_in", "scrub", "where_named"]

HIDDEN = "…"
_QUOTED = re.compile(r"\"((?:[^\"]|\"\")*)\"|'((?:[^']|'')*)'")
_IDENTIFIER = re.compile(r"[A-Za-z_][\w$]*")
_NUMBER = re.compile(r"(?<!LINE )(?<![\w$.])-?\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w$])")


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
        keep = inner == "" or named_in(inner, sql) or _qualified_and_named(inner, sql)
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


def _qualified_and_named(text: str, sql: str | None) -> bool:
    """``schema.table.column``-like text whose every part is an identifier the query names."""
    parts = text.split(".")
    return len(parts) > 1 and all(_IDENTIFIER.fullmatch(p) and named_in(p, sql) for p in parts)


def where_named(column: str | None, table: str | None, sql: str | None) -> str:
    col = column if named_in(column, sql) else None
    tab = table if named_in(table, sql) else None
    if col and tab:
        return f" on column {col} of {tab}"
    if col:
        return f" on column {col}"
    return f" on {tab}" if tab else ""
