"""Complexity score with its breakdown, and the risk level derived from action and score."""

from __future__ import annotations

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


def measure(inventory: Inventory, refs: References) -> Complexity:
    """Weigh the parts of a query (counted during classification) into one score."""
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
    return Complexity(score=round(score), **counts)


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
