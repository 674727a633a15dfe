"""Limits on the query's shape: max_depth, max_joins (per query block), max_fields; each
refusal names the part to change."""

from __future__ import annotations

from sqlglot import exp

from ...models import Violation
from ..codes import violation
from ..complexity import Block, block_label
from ..references import References
from .base import RuleContext


def limits(ctx: RuleContext) -> list[Violation]:
    """The configured shape limits: nesting depth, joins per query block, output fields."""
    refs, rules, blocks, depth = ctx.refs, ctx.rules, ctx.blocks, ctx.complexity.depth
    out = []
    if depth > rules.max_depth:
        msg = f"Queries are nested {depth} levels deep; at most {rules.max_depth}."
        out.append(violation("TOO_DEEP", msg, _too_deep_hint(refs)))
    out += [_too_many_joins(b, rules.max_joins) for b in blocks if b.joins > rules.max_joins][:3]
    if refs.output_fields > rules.max_fields:
        out.append(
            violation(
                "TOO_MANY_FIELDS",
                f"The query returns {refs.output_fields} columns; at most {rules.max_fields}.",
            )
        )
    return out


def _too_deep_hint(refs: References) -> str | None:
    """Name the most deeply nested block and how to lift it out (None: the default hint)."""
    deepest, level = None, -1
    for scope in refs.scopes:
        d, s = 0, scope.parent
        while s is not None:
            d, s = d + 1, s.parent
        if d > level:
            deepest, level = scope, d
    if deepest is None:
        return None
    node = deepest.expression
    select = node if isinstance(node, exp.Select) else node.find(exp.Select)
    if select is None:
        return None
    return (
        f"The most deeply nested part is {block_label(select)}. Define the inner "
        "subqueries as CTEs (WITH name AS (...)) and read them by name, or join instead of "
        "nesting: a CTE read by another CTE adds no nesting."
    )


def _too_many_joins(block: Block, limit: int) -> Violation:
    """The block, its joins and a concrete split: which sources to join in a CTE of their own."""
    name = block.label[0].upper() + block.label[1:]
    msg = (
        f"{name} joins {block.joins + 1} tables ({block.joins} joins); "
        f"at most {limit} joins per query block (code_mode.max_joins)."
    )
    # The smallest first CTE that leaves the block itself within the limit.
    sources = block.sources
    take = min(limit + 1, max(2, len(sources) - limit))
    first, rest = sources[:take], sources[take:]
    hint = (
        f"Split {block.label}: join {', '.join(first)} in a CTE of its own (pre-aggregate there "
        f"if the answer allows), then join that CTE with {', '.join(rest)}"
    )
    hint += "." if len(rest) <= limit else " (split again the same way: it is still too many)."
    hint += f" The limit counts the joins of each SELECT: a CTE or subquery may join {limit + 1} tables."
    return violation("TOO_MANY_JOINS", msg, hint)
