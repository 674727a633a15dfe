"""Mechanism 3: the plan's estimates gate the query before it runs.

A join on `<>` is a cross join in disguise: it has a join condition, so the analyzer's cartesian
check passes it, and it would make about 2.5 billion rows. The estimates also raise the risk
level, explain the work in the explanation and reach Cedar as context.estimated_rows / _cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService

from .conftest import PgWorld
from .util import codes, refused_by_engine

CROSS = "SELECT o1.id AS a, o2.id AS b FROM orders AS o1 JOIN orders AS o2 ON o1.id <> o2.id"
# The same product aggregated: with LIMIT the first form may stop early, this one cannot.
CROSS_TOTALS = (
    "SELECT o1.id AS a, count(*) AS n FROM orders AS o1 JOIN orders AS o2 ON o1.id <> o2.id GROUP BY o1.id"
)
SMALL = "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region"

BIG_PLANS_POLICY = """
@id("test.big-plans")
@code("PLAN_TOO_BIG")
@reason("Plans over a million rows need the data team.")
@hint("Filter earlier or ask the data team.")
forbid (principal, action, resource)
when { context has estimated_rows && context.estimated_rows > 1000000 }
unless { principal in Group::"data_team" };
"""


@pytest.fixture(params=["duckdb", "postgres"])
def service_for(
    request: pytest.FixtureRequest,
    make_duck: Callable[..., Path],
    duck_settings: Callable[..., Settings],
) -> Callable[..., CodeModeService]:
    """``service_for(overrides)``: a service over this dialect's warehouse with config overrides."""
    if request.param == "duckdb":
        path = make_duck()
        return lambda overrides=None: CodeModeService(duck_settings(path, overrides))
    world: PgWorld = request.getfixturevalue("pg_world")
    return lambda overrides=None: CodeModeService(world.settings(overrides=overrides))


async def test_cost_gate_refuses_a_disguised_cross_join_before_it_runs(
    service_for: Callable[..., CodeModeService],
) -> None:
    async with service_for({"code_mode": {"max_estimated_rows": 1_000_000}}) as svc:
        # The PostgreSQL world's audit log is shared by the test session: read only what this test adds.
        log = Path(svc.settings.audit.path)
        before = len(log.read_text().splitlines()) if log.exists() else 0  # noqa: ASYNC240 - small local file
        v = await refused_by_engine(svc, CROSS, "ESTIMATED_ROWS_TOO_HIGH")
        msg = next(x.message for x in v.violations if x.code == "ESTIMATED_ROWS_TOO_HIGH")
        assert "the limit is 1M" in msg and "Nothing was run" in msg
        assert (await svc.validate(SMALL)).is_valid
        lines = log.read_text().splitlines()[before:]  # noqa: ASYNC240 - a small local file
        events = [json.loads(line)["event"] for line in lines]
        assert events == ["validate", "validate"]  # decided on the plan alone: nothing executed


async def test_cost_limit(service_for: Callable[..., CodeModeService]) -> None:
    async with service_for({"code_mode": {"max_estimated_cost": 100_000}}) as svc:
        await refused_by_engine(svc, CROSS_TOTALS, "ESTIMATED_COST_TOO_HIGH")
        assert (await svc.validate(SMALL)).is_valid


async def test_estimates_feed_risk_and_explanation(service_for: Callable[..., CodeModeService]) -> None:
    # "always": the explanation's figures are wanted even though no rule reads them.
    async with service_for({"code_mode": {"plan_estimates": "always"}}) as svc:
        big = await svc.validate(CROSS)
        # No limit configured: allowed, but flagged (PostgreSQL estimates 2.5B rows, DuckDB 1.8M).
        assert big.is_valid and big.risk_level in ("medium", "high")
        assert "scans about 100K rows of orders; the largest step handles about" in big.explanation
        small = await svc.validate(SMALL)
        assert small.is_valid and small.risk_level == "low"
        assert "scans about 2K rows of customers" in small.explanation


async def test_cedar_policies_read_the_plan_estimates(
    service_for: Callable[..., CodeModeService], tmp_path: Path
) -> None:
    policy = tmp_path / "big-plans.cedar"
    policy.write_text(BIG_PLANS_POLICY)
    overrides: dict[str, Any] = {"policy": {"paths": [str(policy)]}}
    async with service_for(overrides) as svc:
        refused = await svc.validate(CROSS)
        assert not refused.is_valid and codes(refused) == ["PLAN_TOO_BIG"]
        assert (await svc.validate(CROSS, groups=["data_team"])).is_valid
        assert (await svc.validate(SMALL)).is_valid
