"""Which policies can decide on the plan's estimates (the engine check asks for them only then)."""

from __future__ import annotations

import cedarpy
import pytest

from sqlmode.policy.engine import reads_estimates

HEAD = "forbid (principal, action, resource) when { "
CASES = {
    # The estimates set these or change them: the decision can depend on them.
    "reads estimated_rows": ("context.estimated_rows > 5", True),
    "tests estimated_cost": ("context has estimated_cost", True),
    "reads risk_rank": ("context.risk_rank >= 2", True),
    "risk equals high": ('context.risk == "high"', True),
    "risk is not low": ('context.risk != "low"', True),
    "risk in a like": ('context.risk like "h*"', True),
    "critical beside another level": ('context.risk == "critical" || context.risk == "medium"', True),
    "context as a whole": ('context == {"risk": "low"}', True),
    # The plan never rates a query critical: only the analyzer does.
    "risk equals critical": ('context.risk == "critical"', False),
    "critical on the left": ('"critical" != context.risk', False),
    "other attributes": ('context.joins > 3 && context.tables.contains("orders")', False),
    "tests another attribute": ("context has catalog && context.catalog", False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reads_estimates(case: str) -> None:
    body, expected = CASES[case]
    text = HEAD + body + " };"
    assert reads_estimates(cedarpy.policies_to_pst(text).static_policies) is expected


def test_no_policy_reads_nothing() -> None:
    assert reads_estimates({}) is False
