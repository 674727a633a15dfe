"""The analyzer's rules over one resolved statement, in order (sqlglot's optimizer RULES style).

One concern per module, and the module is named after its one public function, the rule:
``rule(ctx: RuleContext) -> list[Violation]``. A rule never raises for bad SQL (the Analyzer
turns any exception into ANALYSIS_FAILED) and may record facts on ``ctx`` for the rules after
it and for the Analysis. The order is part of the contract: violations are reported in it,
and ``blocked_columns`` reads the tables ``blocked_tables`` recorded. docs/analyzer-rules.md
documents it (a test keeps the two equal) and how to add a rule with its golden fixtures.

Statement-level checks run before these, as stages of the Analyzer: one statement that both
parsers agree on (parse.py), its kind allowed (classify.py). The rules run only when the
statement is worth resolving.
"""

from __future__ import annotations

from collections.abc import Callable

from ...models import Violation
from .base import RuleContext, RuleSet
from .blocked_columns import blocked_columns
from .blocked_tables import blocked_tables
from .cartesian import cartesian
from .complexity import complexity
from .functions import functions
from .limits import limits
from .recursion import recursion

Rule = Callable[[RuleContext], list[Violation]]

RULES: tuple[Rule, ...] = (
    blocked_tables,
    blocked_columns,
    functions,
    limits,
    complexity,
    cartesian,
    recursion,
)

__all__ = ["RULES", "Rule", "RuleContext", "RuleSet", "run_rules"]


def run_rules(ctx: RuleContext, rules: tuple[Rule, ...] = RULES) -> list[Violation]:
    """Every rule's violations, in rule order."""
    out: list[Violation] = []
    for rule in rules:
        out += rule(ctx)
    return out
