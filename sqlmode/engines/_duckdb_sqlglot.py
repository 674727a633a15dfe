"""Fixes to sqlglot's DuckDB generator, applied once when the DuckDB analyzer is built.

**PIVOT over a join.**

DuckDB refuses qualified columns in a PIVOT's own clauses (``ON o.status``: "PIVOT expression
cannot contain qualified columns"), so sqlglot 30's DuckDB generator unqualifies every column
under a PIVOT node. For the statement form, ``PIVOT (SELECT ... FROM orders o JOIN customers c
ON c.id = o.customer_id) ON status USING sum(total)``, that node holds the source query too:
its qualifiers go, ``c.id = o.customer_id`` becomes ``id = customer_id``, and the rendering
means something else (DuckDB then refuses an ambiguous ``id``; with other names it could bind
to the wrong table). The round-trip check refuses such a rendering, so a legitimate PIVOT over
a join was refused.

The replacement unqualifies what DuckDB requires and nothing more: the columns of the pivot's
own clauses (ON, IN lists, USING, GROUP BY), not its source (``this``) and not queries nested in
the clauses, which are scopes of their own. sqlglot compiles its generators (sqlglotc), so a
subclass cannot be instantiated; the entry of the generator's TRANSFORMS table is replaced
instead, for the process. The round-trip check still compares every rendering with the tree
that was analyzed.

**date_add with an interval expression.** DuckDB's ``date_add(ts, x)`` takes an interval (or a
number of days) as ``x``. sqlglot renders it as ``ts + INTERVAL (x) DAY``, right for a number
but not for an interval-valued expression: ``date_add(ts, -INTERVAL 30 DAY)`` became
``ts + INTERVAL (-INTERVAL '30' DAY) DAY``, which DuckDB binds and then fails on when it runs
(INTERVAL -> DOUBLE). The text form and the tree both read the same columns, so nothing else
caught it; the query validated and could not run. A number of days is no better served:
``date_add(d, 7)`` on a DATE is a DATE to DuckDB, ``d + INTERVAL 7 DAY`` a TIMESTAMP (and that
text read back as another tree, so the round trip refused the query). When the call has no unit
(DuckDB's own two-argument form) and its argument is not an INTERVAL literal, it is rendered as
the ``date_add`` call it was written as.

**approx_top_k.** sqlglot 30 reads DuckDB's ``approx_top_k(x, k)`` into its ApproxTopK node
(Snowflake's, which answers counts too) and its DuckDB generator warns that it "cannot be
transpiled" before rendering the call as written. Read and written in DuckDB, nothing is
transpiled: the call is rendered as written, without the warning, so the analyzer's strict
rendering (which refuses anything sqlglot calls unsupported) keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp, transforms
from sqlglot.generators.duckdb import DuckDBGenerator


def unqualify_pivot_clauses(node: exp.Expr) -> exp.Expr:
    """``node`` (a Pivot) with its own clauses' columns unqualified; its source left as written."""
    if not isinstance(node, exp.Pivot):
        return node
    for key, value in node.args.items():
        if key == "this":
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, exp.Expr):
                _unqualify(item)
    return node


def _unqualify(root: exp.Expr) -> None:
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, exp.Column):
            for part in node.parts[:-1]:
                part.pop()
            continue
        if isinstance(node, (exp.Query, exp.Subquery)):
            continue  # a scope of its own: its columns mean what they say there
        stack.extend(node.iter_expressions())


def install() -> None:
    """Replace sqlglot's PIVOT, date_add and approx_top_k transforms for DuckDB (idempotent)."""
    DuckDBGenerator.TRANSFORMS[exp.Pivot] = _PIVOT
    DuckDBGenerator.TRANSFORMS[exp.DateAdd] = _date_add
    DuckDBGenerator.TRANSFORMS[exp.ApproxTopK] = _as_written


# sqlglot's own, taken when this module loads (before install() can replace it).
_SQLGLOT_DATE_ADD: Callable[[Any, exp.DateAdd], str] = DuckDBGenerator.TRANSFORMS[exp.DateAdd]


def _date_add(gen: Any, node: exp.DateAdd) -> str:
    """``date_add(this, x)`` as written unless x is an INTERVAL literal; sqlglot's rendering then."""
    value = node.expression
    if node.args.get("unit") is None and value is not None and not isinstance(value, exp.Interval):
        return str(gen.func("DATE_ADD", node.this, value))
    return _SQLGLOT_DATE_ADD(gen, node)


def _as_written(gen: Any, node: exp.Func) -> str:
    """The call under the name and arguments it was written with."""
    return str(gen.function_fallback_sql(node))


_PIVOT = transforms.preprocess([unqualify_pivot_clauses])
