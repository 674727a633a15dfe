"""DuckDB error text fit for the caller: constraint failures by kind, the rest scrubbed.

The rules are execute/errtext.py's.
"""

from __future__ import annotations

import re

from ..execute.errtext import HIDDEN, named_in, scrub, where_named

__all__ = ["duckdb_error_text", "duckdb_text"]

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
        where = where_named(m.group(2), m.group(1), sql) if m else ""
        return f"Constraint Error: the change violates {kind}{where}"
    return duckdb_text(msg, sql)


def duckdb_text(msg: str, sql: str | None) -> str:
    """DuckDB's words for anything but a constraint failure, with what the query did not say hidden.

    Binder and catalog errors name candidates the query never wrote ("Candidate bindings:
    \"ssn\"", "Did you mean \"credentials\"?"): those are hidden like stored values.
    """
    text = scrub(msg, sql)
    # "... when casting from source column ssn": the column is the engine's, not the query's words.
    text = re.sub(
        r"(source column )([\w$]+)",
        lambda m: m.group(0) if named_in(m.group(2), sql) else m.group(1) + HIDDEN,
        text,
    )
    return _fewer_candidates(text)


# A binder error lists every overload it tried (56 for `+`, about 3 KB): the first few say enough.
MAX_CANDIDATES = 4


def _fewer_candidates(text: str) -> str:
    head, sep, rest = text.partition("Candidate functions:")
    if not sep:
        return text
    lines = [line for line in rest.splitlines() if line.strip()]
    if len(lines) <= MAX_CANDIDATES:
        return text
    shown = "".join(f"\n\t{line.strip()}" for line in lines[:MAX_CANDIDATES])
    return f"{head}{sep}{shown}\n\t... and {len(lines) - MAX_CANDIDATES} more"
