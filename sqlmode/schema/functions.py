"""The function catalog: what the database says about every function a query may call.

The analyzer's allowlist works on names; the catalog knows what a name resolves to. Two facts
matter for a read-only query (see sqlmode/execute/confirm.py for the rule that uses them):

- volatility: whether a call may change the database or return different results within one
  statement (each engine's catalog says it its own way);
- origin: a built-in or a user-defined function or macro, which can shadow a built-in name.

Loaded through the executor as the reader by the engine (``Engine.function_catalog``, which
builds it with :func:`catalog_from_rows`), so the visible schemas are the reader's own search
path; kept on the SchemaSnapshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FunctionCatalog", "FunctionInfo", "catalog_from_rows"]


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """One catalog entry (one overload)."""

    schema: str
    name: str
    volatile: bool
    builtin: bool
    kind: str = ""


@dataclass(slots=True)
class FunctionCatalog:
    """Functions by lower-case name, and the schemas searched for unqualified names."""

    dialect: str
    by_name: dict[str, tuple[FunctionInfo, ...]] = field(default_factory=dict)
    search_path: tuple[str, ...] = ()
    # The database's own name for itself (PostgreSQL database, DuckDB catalog of the file).
    database: str = ""
    _user_pattern: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def lookup(self, name: str, schema: str | None = None) -> tuple[FunctionInfo, ...]:
        """Overloads a call to ``[schema.]name`` can resolve to (unqualified: the visible ones)."""
        found = self.by_name.get(name.lower(), ())
        if schema:
            s = schema.lower()
            return tuple(f for f in found if f.schema == s)
        visible = self.search_path
        return tuple(f for f in found if f.schema in visible) if visible else found

    def has_builtin(self, name: str) -> bool:
        return any(f.builtin for f in self.by_name.get(name.lower(), ()))

    def user_calls_in(self, sql: str) -> set[tuple[str, str]]:
        """("", name) for each user-defined function or macro named as a call in ``sql``.

        DuckDB expands macros before anything else sees them, so their names are found in the
        text (string literals removed); usually there are none and this costs nothing.
        """
        pattern = self._user_pattern
        if pattern is None:
            names = sorted({f.name for fs in self.by_name.values() for f in fs if not f.builtin})
            alternation = "|".join(re.escape(n) for n in names) or "(?!)"
            pattern = re.compile(rf'(?<![\w$."])"?({alternation})"?\s*\(', re.IGNORECASE)
            self._user_pattern = pattern
        text = re.sub(r"'(?:[^']|'')*'", "''", sql)
        return {("", m.group(1).lower()) for m in pattern.finditer(text)}

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_name.values())


def catalog_from_rows(
    dialect: str, rows: Iterable[Sequence[Any]], search_path: Iterable[str] | None = None, database: str = ""
) -> FunctionCatalog:
    """A FunctionCatalog from (schema, name, volatile, builtin, kind) rows and the reader's search path."""
    grouped: dict[str, list[FunctionInfo]] = {}
    for schema, name, volatile, builtin, kind in rows:
        info = FunctionInfo(str(schema).lower(), str(name).lower(), bool(volatile), bool(builtin), str(kind))
        grouped.setdefault(info.name, []).append(info)
    path = tuple(dict.fromkeys(s.lower() for s in (search_path or ()) if s))
    return FunctionCatalog(dialect, {k: tuple(v) for k, v in grouped.items()}, path, database.lower())
