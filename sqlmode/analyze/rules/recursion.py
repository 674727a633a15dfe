"""Recursive CTEs must say how the recursion ends."""

from __future__ import annotations

from sqlglot import exp

from ...models import Violation
from ..codes import violation
from .base import RuleContext


def recursion(ctx: RuleContext) -> list[Violation]:
    """Recursive CTEs must be bounded: a WHERE, a join to a table, or a LIMIT in the recursive part,
    or PostgreSQL's CYCLE clause (the recursion stops where a row repeats).

    Without one, ``WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)`` runs until
    a limit kills it (DuckDB materializes the whole recursion before any outer LIMIT applies).
    """
    if not ctx.inventory.recursive_ctes:
        return []
    root = ctx.root
    out = []
    for with_ in root.find_all(exp.With):
        if not with_.args.get("recursive"):
            continue
        for cte in with_.expressions:
            if cte is with_.expressions[-1] and _has_cycle_clause(with_):
                continue  # sqlglot keeps CYCLE on the WITH, for its last CTE
            body = cte.this
            if not isinstance(body, exp.SetOperation) or body.args.get("limit") is not None:
                continue
            name = cte.alias_or_name.lower()
            step = body.expression.unnest() if isinstance(body.expression, exp.Subquery) else body.expression
            if not isinstance(step, exp.Select):
                continue
            refs = [t for t in step.find_all(exp.Table) if t.name.lower() == name and not t.args.get("db")]
            if not refs:
                continue  # not actually recursive
            others = [t for t in step.find_all(exp.Table) if t.name.lower() != name]
            if step.args.get("where") is None and step.args.get("limit") is None and not others:
                out.append(
                    violation(
                        "UNBOUNDED_RECURSION",
                        f"The recursive CTE `{cte.alias_or_name}` has no condition that ends the recursion.",
                    )
                )
    return out


def _has_cycle_clause(with_: exp.With) -> bool:
    """``CYCLE col SET mark USING path``: stored as the WITH's ``cycle``, or as its ``search``
    when it is the only clause."""
    search = with_.args.get("search")
    return with_.args.get("cycle") is not None or (
        isinstance(search, exp.RecursiveWithSearch) and str(search.args.get("kind") or "").upper() == "CYCLE"
    )
