"""A fix to sqlglot's DuckDB generator, applied once when the DuckDB engine loads.

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
"""

from __future__ import annotations

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
    """Replace sqlglot's PIVOT transform for DuckDB (idempotent)."""
    DuckDBGenerator.TRANSFORMS[exp.Pivot] = _PIVOT


_PIVOT = transforms.preprocess([unqualify_pivot_clauses])
