"""DuckDB's bound plan, read as data: what the query reads and calls, independent of the data.

``json_serialize_plan(sql)`` (``optimize`` defaults to false) returns the logical plan as the
binder and planner built it, before the optimizer: views, macros and ``query()`` are expanded,
subqueries are planned as joins, and nothing depends on statistics (the optimized plan drops a
filter that zonemaps prove always true or false, so reading it made verdicts depend on the data).

- Tables: each ``LOGICAL_GET`` of ``seq_scan`` names catalog, schema and table, and its
  ``column_indexes`` list exactly the columns the binder bound (the row id and DuckDB's
  "empty" marker are not columns). Other ``LOGICAL_GET`` nodes are table functions, named by
  ``qname``.
- Calls: every expression node with a ``qname`` (scalar, aggregate, window and table
  functions by catalog path; operators and casts are marked ``is_operator`` or named ``__*``).
  The binder rewrites syntax into calls (comprehensions into ``list_apply``, SIMILAR TO into
  ``regexp_full_match``), so these are the engine's names, and it folds constant calls away.
- Columns a ``SELECT *`` bound that nothing downstream uses (a CTE or subquery whose outer
  query keeps a few of them) are dropped by following each column through the operators
  (plan_lineage.py); where that walk meets a shape it does not know, every bound column counts.
- Fail closed: exactly one plan, every operator and expression kind known, no serialization
  error; anything else is a problem the confirmer refuses.

One artefact is not the query's: ``error('<constant>')``. The binder plans a scalar subquery as
``first(x)`` and ``count_star()`` under ``CASE WHEN count > 1 THEN error('More than one row ...')
ELSE first END``, and built-in macros expand to the same guard (``json_group_object(k, v)``'s key
is ``CASE WHEN k IS NULL THEN error('json_group_object key cannot be NULL') ...``;
``histogram_values`` and ``assert_true`` likewise). Any ``error`` call whose one argument is a
constant is reported apart (:attr:`BoundPlan.binder_calls`): it ends the query with a message the
query did not choose, it has no side effect, and it reads nothing (the condition around it reads
what the plan shows it reads, checked like every other column). The confirmer counts it as the
query's call only when the analyzer saw an ``error`` call in the text.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..execute.plans import PlanFacts, Scan, TableLookup, number, split_name
from ._duckdb_lineage import Unknown, used_columns

__all__ = ["BOUND_PLAN_SQL", "MAX_PLAN_CHARS", "BoundPlan", "duckdb_estimates", "read_bound_plan"]

# The bound plan. Computed once: a wrapper that also measured it in SQL evaluated it three times.
# A plan holding a huge folded constant is refused on its length, before it is decoded (building
# it is bounded by the instance's memory_limit and the executor's deadline).
BOUND_PLAN_SQL = "SELECT json_serialize_plan(?::VARCHAR)"
MAX_PLAN_CHARS = 8_000_000

# Logical operators a read query plans into. Anything else (COPY, INSERT, PRAGMA, SET, EXPLAIN,
# an operator a future DuckDB adds) is not read, it is refused.
_OPERATORS = frozenset(
    {
        "LOGICAL_PROJECTION",
        "LOGICAL_FILTER",
        "LOGICAL_GET",
        "LOGICAL_AGGREGATE_AND_GROUP_BY",
        "LOGICAL_WINDOW",
        "LOGICAL_UNNEST",
        "LOGICAL_LIMIT",
        "LOGICAL_ORDER_BY",
        "LOGICAL_TOP_N",
        "LOGICAL_DISTINCT",
        "LOGICAL_SAMPLE",
        "LOGICAL_PIVOT",
        "LOGICAL_COMPARISON_JOIN",
        "LOGICAL_ANY_JOIN",
        "LOGICAL_CROSS_PRODUCT",
        "LOGICAL_POSITIONAL_JOIN",
        "LOGICAL_ASOF_JOIN",
        "LOGICAL_DELIM_JOIN",
        "LOGICAL_DEPENDENT_JOIN",
        "LOGICAL_DELIM_GET",
        "LOGICAL_UNION",
        "LOGICAL_EXCEPT",
        "LOGICAL_INTERSECT",
        "LOGICAL_RECURSIVE_CTE",
        "LOGICAL_MATERIALIZED_CTE",
        "LOGICAL_CTE_REF",
        "LOGICAL_EXPRESSION_GET",
        "LOGICAL_DUMMY_SCAN",
        "LOGICAL_EMPTY_RESULT",
    }
)
# Bound expression kinds. A parameter or DEFAULT has no place in a validated read; a subquery
# expression is planned away before serialization, so meeting one means an unknown shape.
_EXPRESSIONS = frozenset(
    {
        "BOUND_REF",
        "BOUND_COLUMN_REF",
        "BOUND_CONSTANT",
        "BOUND_FUNCTION",
        "BOUND_AGGREGATE",
        "BOUND_WINDOW",
        "BOUND_CASE",
        "BOUND_CAST",
        "BOUND_COMPARISON",
        "BOUND_CONJUNCTION",
        "BOUND_OPERATOR",
        "BOUND_BETWEEN",
        "BOUND_UNNEST",
        "BOUND_LAMBDA",
        "BOUND_LAMBDA_REF",
    }
)
# column_indexes entries that are not stored columns: the row id and the "no column needed"
# marker (count(*)). DuckDB's other virtual columns start at 2**63 (file names of readers).
_ROW_ID = 2**64 - 1
_EMPTY = 2**64 - 2


@dataclass(slots=True)
class BoundPlan:
    """What the binder bound: tables, columns, calls, and what it could not account for."""

    scans: list[Scan] = field(default_factory=list)
    columns: set[tuple[str, str, str]] = field(default_factory=set)
    functions: set[tuple[str, str]] = field(default_factory=set)
    # Calls the binder inserted itself (the scalar-subquery guard's ``error``).
    binder_calls: set[tuple[str, str]] = field(default_factory=set)
    # Table functions in FROM (their own check: they are not tables).
    table_functions: set[tuple[str, str]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def read_bound_plan(
    text: str | dict[str, Any] | None, size: int | None = None, default_catalog: str = ""
) -> BoundPlan:
    """The facts of one ``json_serialize_plan`` document, as text or decoded (None: refused for its size)."""
    out = BoundPlan()
    if isinstance(text, str) and len(text) > MAX_PLAN_CHARS:
        size = len(text)
        text = None
    if text is None:
        shown = f"{size:,} characters" if size is not None else "too large"
        out.problems.append(f"the bound plan is too large to read ({shown}; a huge constant?)")
        return out
    if isinstance(text, str):
        try:
            doc: Any = json.loads(text)
        except ValueError as e:
            out.problems.append(f"the bound plan is not JSON ({e})")
            return out
    else:
        doc = text
    if not isinstance(doc, dict) or doc.get("error"):
        kind = doc.get("error_type", "error") if isinstance(doc, dict) else "error"
        msg = str(doc.get("error_message", "")) if isinstance(doc, dict) else ""
        out.problems.append(f"DuckDB could not serialize the bound plan ({kind}: {msg[:200]})")
        return out
    plans = doc.get("plans")
    if not isinstance(plans, list) or len(plans) != 1:
        count = len(plans) if isinstance(plans, list) else 0
        out.problems.append(f"the text binds to {count} plans, not one")
        return out
    _operator(plans[0], out, default_catalog)
    if not out.problems:
        # Columns a SELECT * bound but nothing downstream uses are not read (plan_lineage.py);
        # on a shape the walk does not follow, every bound column counts.
        with contextlib.suppress(Unknown):
            out.columns &= used_columns(plans[0])
    return out


def _operator(node: Any, out: BoundPlan, default_catalog: str) -> None:
    if not isinstance(node, dict):
        out.problems.append("an operator of the bound plan is not an object")
        return
    kind = str(node.get("type", "?"))
    if kind not in _OPERATORS:
        out.problems.append(f"the bound plan has an operator sqlmode does not know ({kind})")
        return
    if kind == "LOGICAL_GET":
        _get(node, out, default_catalog)
    for key, value in node.items():
        if key != "children" and isinstance(value, _CONTAINERS):
            _expressions(value, out)
    for child in node.get("children") or ():
        _operator(child, out, default_catalog)


def _get(node: dict[str, Any], out: BoundPlan, default_catalog: str) -> None:
    path = [str(p).lower() for p in ((node.get("qname") or {}).get("path") or [])]
    if path != ["seq_scan"]:
        if not path:
            out.problems.append("a scan of the bound plan names no function")
        else:
            out.table_functions.add(_call_name(path))
        if node.get("column_indexes") is None:
            out.problems.append("a table function of the bound plan lists no columns")
        return
    data = node.get("function_data") or {}
    table, schema, catalog = data.get("table"), data.get("schema"), data.get("catalog")
    names = node.get("names")
    indexes = node.get("column_indexes")
    if not (isinstance(table, str) and isinstance(names, list) and isinstance(indexes, list)):
        out.problems.append("a table scan of the bound plan has no table, column names or column list")
        return
    filters = node.get("table_filters") or {}
    if filters.get("filters") or filters.get("multi_column_filters") or node.get("at_clause"):
        out.problems.append("a table scan carries filters or a time travel clause sqlmode does not read")
        return
    schema = str(schema or "main").lower()
    tname = table.lower()
    out.scans.append(Scan(tname, schema, str(catalog or default_catalog), tname, 0.0, "SEQ_SCAN"))
    for entry in indexes:
        index = entry.get("index") if isinstance(entry, dict) else None
        if not isinstance(index, int):
            out.problems.append("a table scan lists a column sqlmode cannot read")
        elif index in (_ROW_ID, _EMPTY):
            continue
        elif 0 <= index < len(names):
            out.columns.add((schema, tname, str(names[index])))
        else:
            out.problems.append("a table scan reads a virtual column")


# What can hold an expression; the walks skip other values (strings, numbers) without a
# call: most of a plan's values are leaves.
_CONTAINERS = (dict, list)


def _expressions(value: Any, out: BoundPlan) -> None:
    if isinstance(value, list):
        for item in value:
            if isinstance(item, _CONTAINERS):
                _expressions(item, out)
        return
    if not isinstance(value, dict):
        return
    cls = value.get("expression_class")
    if cls is not None:
        if cls not in _EXPRESSIONS:
            out.problems.append(f"the bound plan has an expression sqlmode does not know ({cls})")
            return
        qname = value.get("qname")
        if isinstance(qname, dict) and not value.get("is_operator"):
            path = [str(p).lower() for p in (qname.get("path") or [])]
            if _constant_error(value, path):
                out.binder_calls.add(("main", "error"))  # the binder's or a built-in macro's guard
            elif path and not path[-1].startswith("__"):
                out.functions.add(_call_name(path))
    for key, item in value.items():
        if key != "qname" and isinstance(item, _CONTAINERS):
            _expressions(item, out)


def _constant_error(node: dict[str, Any], path: list[str]) -> bool:
    """``error('<constant>')``, the built-in function: the guard built-in macros expand to."""
    args = node.get("children")
    return (
        node.get("expression_class") == "BOUND_FUNCTION"
        and path[-1:] == ["error"]
        and path[:-1] in ([], ["main"], ["system", "main"])
        and isinstance(args, list)
        and len(args) == 1
        and isinstance(args[0], dict)
        and args[0].get("expression_class") == "BOUND_CONSTANT"
    )


def _call_name(path: list[str]) -> tuple[str, str]:
    return (path[-2] if len(path) > 1 else "", path[-1])


# -- the physical plan: estimates only ------------------------------------------------------


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("children") or ():
        yield from _nodes(child)


def duckdb_estimates(doc: dict[str, Any] | None, bound: BoundPlan, lookup: TableLookup) -> PlanFacts:
    """PlanFacts: the bound plan's sets, with row estimates from the optimized physical plan.

    The physical plan (``EXPLAIN (FORMAT JSON)`` as ``{"Plan": root}``) decides nothing about
    what is read; it only says how much. The cost is the sum of every operator's estimated
    cardinality, a proxy for the rows the query moves (DuckDB has no cost model in the plan).
    Without it (``doc`` None: no estimates were asked for) the facts carry no figures.
    """
    root = doc["Plan"] if doc is not None else {}
    facts = PlanFacts(rows=number((root.get("extra_info") or {}).get("Estimated Cardinality")))
    physical: dict[str, float] = {}
    for node in _nodes(root) if doc is not None else ():
        info = node.get("extra_info") or {}
        rows = number(info.get("Estimated Cardinality"))
        facts.cost += rows
        name = str(node.get("name", "?")).strip()
        table = info.get("Table")
        if rows > facts.peak_rows:
            facts.peak_rows = rows
            facts.peak_node = f"{name} on {split_name(table)[-1]}" if isinstance(table, str) else name
        if isinstance(table, str):
            tname = split_name(table)[-1]
            physical[tname] = max(physical.get(tname, 0.0), rows)
    for scan in bound.scans:
        found = lookup(scan.schema, scan.table)
        size = found[1] if found is not None and found[1] else 0.0
        # A full scan reads every row, not just those it keeps.
        read = max(physical.get(scan.table, 0.0), size)
        facts.scans.append(Scan(scan.table, scan.schema, scan.catalog, scan.alias, read, scan.node))
    facts.columns = set(bound.columns)
    facts.functions = set(bound.functions) | set(bound.table_functions)
    facts.problems = list(bound.problems)
    return facts
