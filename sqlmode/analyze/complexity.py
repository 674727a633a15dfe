"""Complexity score with its breakdown, and the risk level derived from action and score."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import ScopeType

from ..models import Action, Complexity, RiskLevel
from .classify import Inventory
from .references import References

# Points per occurrence; a typical one-join report scores about 30, the long-tail
# question's query (five CTEs, windows, anti-join) about 200.
WEIGHTS = {
    "tables": 5,
    "joins": 8,
    "subqueries": 10,
    "ctes": 6,
    "aggregations": 2,
    "window_functions": 6,
    "set_operations": 8,
    "depth": 10,  # per level beyond the first
    "fields": 0.5,
    "conditions": 1,
    "recursive_ctes": 25,
}
_NESTED = (ScopeType.SUBQUERY, ScopeType.DERIVED_TABLE, ScopeType.UDTF)
READ_MEDIUM_AT = 80
READ_HIGH_AT = 250


def measure(inventory: Inventory, refs: References, blocks: list[Block] | None = None) -> Complexity:
    """Weigh the parts of a query (counted during classification) into one score.

    The breakdown also has the join count of the block with the most joins
    (``max_block_joins``, what max_joins limits).
    """
    counts = {
        "tables": len(refs.tables),
        "joins": inventory.joins,
        "subqueries": sum(1 for s in refs.scopes if s.scope_type in _NESTED),
        "ctes": inventory.ctes,
        "aggregations": inventory.aggregations,
        "window_functions": inventory.windows,
        "set_operations": inventory.set_operations,
        "depth": refs.depth + 1,
        "fields": refs.output_fields,
        "conditions": inventory.conditions,
        "recursive_ctes": inventory.recursive_ctes,
    }
    score = 0.0
    for key, value in counts.items():
        score += WEIGHTS[key] * (max(value - 1, 0) if key == "depth" else value)
    heavy = blocks[0] if blocks else None
    # The breakdown is integers only (the MCP output schema): the block's name goes in hints.
    extra = {"max_block_joins": heavy.joins if heavy else 0}
    return Complexity.model_validate({"score": round(score), **counts, **extra})


def points(complexity: Complexity) -> list[tuple[str, int]]:
    """The score's parts, largest first: (counter, points)."""
    out = []
    for key, weight in WEIGHTS.items():
        value = getattr(complexity, key, 0) or 0
        p = weight * (max(value - 1, 0) if key == "depth" else value)
        if p:
            out.append((key, round(p)))
    return sorted(out, key=lambda kv: -kv[1])


@dataclass(slots=True)
class Block:
    """One query block (a SELECT with its own FROM): where max_joins applies.

    Counting joins per block rather than over the whole query is what makes the usual advice
    ("aggregate in a CTE first") work: TPC-DS query 14 has 16 joins in all, at most 5 in any
    one SELECT. The whole query stays bounded by the complexity score.
    """

    node: exp.Select
    label: str
    joins: int = 0
    sources: list[str] = field(default_factory=list)


def query_blocks(inventory: Inventory) -> list[Block]:
    """The blocks that join something, heaviest first (ties in query order)."""
    found: dict[int, Block] = {}
    for join in inventory.join_nodes:
        select = join.find_ancestor(exp.Select)
        if select is None:
            continue
        block = found.get(id(select))
        if block is None:
            block = found[id(select)] = Block(select, block_label(select), sources=_sources(select))
        block.joins += 1
    return sorted(found.values(), key=lambda b: -b.joins)


def block_label(select: exp.Expr) -> str:
    """How a hint names a block: the main query, the CTE `x`, the subquery `y`, a subquery in WHERE."""
    node: exp.Expr = select
    branch = False
    while True:
        parent = node.parent
        if parent is None:
            return "a branch of the main query" if branch else "the main query"
        if isinstance(parent, exp.SetOperation):
            branch = True
        elif isinstance(parent, exp.CTE):
            name = f"the CTE `{parent.alias_or_name}`"
            return f"a branch of {name}" if branch else name
        elif isinstance(parent, exp.Subquery) and not isinstance(node, exp.Subquery):
            inner = f"the subquery `{parent.alias}`" if parent.alias else None
            if inner is None:
                outer = parent.find_ancestor(exp.Select)
                clause = _clause_of(parent, outer)
                where = f" of {block_label(outer)}" if outer is not None else ""
                inner = f"a subquery in {clause}{where}"
            return f"a branch of {inner}" if branch else inner
        node = parent


_CLAUSES = {
    "where": "WHERE",
    "having": "HAVING",
    "expressions": "the SELECT list",
    "joins": "a JOIN",
    "from_": "FROM",
    "qualify": "QUALIFY",
    "order": "ORDER BY",
    "group": "GROUP BY",
}


def _clause_of(node: exp.Expr, select: exp.Expr | None) -> str:
    while node.parent is not None and node.parent is not select:
        node = node.parent
    return _CLAUSES.get(node.arg_key or "", "an expression")


def _sources(select: exp.Select) -> list[str]:
    from_ = select.args.get("from_")
    items = [from_.this] if from_ is not None else []
    items += [j.this for j in select.args.get("joins") or []]
    out = []
    for item in items:
        if isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
            alias = item.alias
            out.append(f"{item.name} {alias}" if alias and alias != item.name else item.name)
        else:
            out.append(item.alias_or_name or "a subquery")
    return out


def risk_level(action: Action, score: int, max_complexity: int) -> RiskLevel:
    """Reads are low/medium/high by score; writes high; deletes and admin critical."""
    if action == Action.READ:
        if score >= min(READ_HIGH_AT, max_complexity):
            return RiskLevel.HIGH
        if score >= READ_MEDIUM_AT:
            return RiskLevel.MEDIUM
        return RiskLevel.LOW
    if action == Action.WRITE:
        return RiskLevel.HIGH
    return RiskLevel.CRITICAL
