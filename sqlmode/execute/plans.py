"""Reading an engine's plan: the relations, columns and functions it touches, and how much work.

The facts are shared by both engines' readers and compared with the analyzer's sets in
confirm.py. Pure functions, no database:

- engines/_duckdb_plan.py: DuckDB's bound plan (``json_serialize_plan``, before the optimizer) decides
  what is read and called; the optimized physical plan gives estimates only.
- engines/_postgres_plan.py: PostgreSQL's ``EXPLAIN (VERBOSE, FORMAT JSON)``, its expressions lexed and
  parsed with PostgreSQL's own grammar (pglast).

Either reader fails closed: what it cannot account for goes to :attr:`PlanFacts.problems`, and
the confirmer refuses a plan with problems.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PlanFacts", "Scan", "TableLookup", "number", "split_name"]

# (schema, table) -> (the table's columns in order, its estimated row count) when the reflected
# schema knows the table, else None.
TableLookup = Callable[[str, str], "tuple[list[str], float | None] | None"]

_IDENT = re.compile(r'"(?:[^"]|"")+"|[A-Za-z_][\w$]*')


@dataclass(frozen=True, slots=True)
class Scan:
    """One read of a stored relation."""

    table: str
    schema: str
    catalog: str = ""
    alias: str = ""
    # Estimated rows this scan reads (a full scan: the table's size when known).
    rows: float = 0.0
    node: str = ""


@dataclass(slots=True)
class PlanFacts:
    """What one plan touches and its estimates."""

    scans: list[Scan] = field(default_factory=list)
    # (schema, table, column); column "*" is a whole-row reference.
    columns: set[tuple[str, str, str]] = field(default_factory=set)
    # Columns the plan reads only as an access path (an index-only scan returning its index keys
    # to a join or aggregate that uses none of them): a blocked one still counts, but the
    # analyzer need not have seen the query name them.
    access_path_columns: set[tuple[str, str, str]] = field(default_factory=set)
    # (schema or "", name) of every call the plan shows.
    functions: set[tuple[str, str]] = field(default_factory=set)
    rows: float = 0.0  # rows the root returns
    peak_rows: float = 0.0  # the largest row estimate of any step
    peak_node: str = ""
    cost: float = 0.0
    # What the reader could not account for: any entry refuses the query (fail closed).
    problems: list[str] = field(default_factory=list)


def split_name(text: str) -> list[str]:
    """``"sample".main.orders`` -> ["sample", "main", "orders"] (quotes honoured, others lower-cased)."""
    out = []
    for m in _IDENT.finditer(text):
        name = m.group(0)
        out.append(name[1:-1].replace('""', '"') if name.startswith('"') else name.lower())
    return out


def number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
