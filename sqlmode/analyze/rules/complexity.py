"""The whole-query bound (max_complexity) over the weighted score."""

from __future__ import annotations

from sqlglot import exp

from ...models import Violation
from ..codes import violation
from ..complexity import block_label, points
from .base import RuleContext


def complexity(ctx: RuleContext) -> list[Violation]:
    """The whole-query bound: the score, what it is made of and the part that weighs most."""
    root, complexity, rules = ctx.root, ctx.complexity, ctx.rules
    if complexity.score <= rules.max_complexity:
        return []
    top = points(complexity)[:4]
    parts = ", ".join(f"{k.replace('_', ' ')} {getattr(complexity, k)} ({p})" for k, p in top)
    msg = (
        f"The complexity score is {complexity.score}; at most {rules.max_complexity} "
        f"(code_mode.max_complexity): {parts}."
    )
    heavy = _heaviest_part(root)
    if heavy is not None:
        label, tables, joins = heavy
        hint = (
            f"The heaviest part is {label} ({tables} table reads, {joins} joins). Answer in "
            "steps: run it as a query of its own first, then ask the rest with its result in "
            "mind; or drop CTEs, subqueries and windows the answer does not need."
        )
    else:
        hint = "Answer in steps, or drop subqueries, set operations and windows the answer does not need."
    return [violation("TOO_COMPLEX", msg, hint)]


def _heaviest_part(root: exp.Expr) -> tuple[str, int, int] | None:
    """The CTE or subquery with the most table reads and joins below it (only on refusal)."""
    best: tuple[int, str, int, int] | None = None
    for node in root.find_all(exp.CTE, exp.Subquery):
        body = node.this
        if not isinstance(body, exp.Query):
            continue
        tables = sum(1 for _ in body.find_all(exp.Table))
        joins = sum(1 for _ in body.find_all(exp.Join))
        if best is None or tables + joins > best[0]:
            select = body if isinstance(body, exp.Select) else body.find(exp.Select)
            if select is None:
                continue
            best = (tables + joins, block_label(select).removeprefix("a branch of "), tables, joins)
    return None if best is None else best[1:]
