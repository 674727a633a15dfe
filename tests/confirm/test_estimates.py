"""The engine check asks for the plan's estimates only when something reads them, in one call.

DuckDB's bound plan (what is read and called) and, when needed, its optimized plan (the
estimates) come from one executor call on one worker hop. The estimates are needed for a cost
limit, an approval or elicitation risk level the plan can raise a query to, a Cedar rule that
reads the estimates or the risk, or ``code_mode.plan_estimates = "always"``. PostgreSQL's plan
always has them. Observed through the results: the estimates Cedar would read, the risk, the
explanation, and the executor's worker submissions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sqlmode.config import Settings
from sqlmode.errors import ConfigError
from sqlmode.models import Analysis
from sqlmode.service import CodeModeService
from tests.plugins.sample import deep_merge

from .conftest import PgWorld

# A join on `<>`: DuckDB estimates about 1.8M rows at one step (risk medium), PostgreSQL 2.5B.
CROSS = "SELECT o1.id AS a, o2.id AS b FROM orders AS o1 JOIN orders AS o2 ON o1.id <> o2.id"
SMALL = "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region"

# Reads the risk without ever matching: the decision could depend on it, so the estimates count.
READS_RISK = 'forbid (principal, action, resource) when { context.risk == "unrated" };\n'
READS_RANK = "forbid (principal, action, resource) when { context.risk_rank > 5 };\n"
TESTS_ROWS = (
    "forbid (principal, action, resource)\n"
    "when { context has estimated_rows && context.estimated_rows > 1000000000000 };\n"
)
APPROVAL_PERMIT = '@approval("audited")\npermit (principal in Group::"interns", action, resource);\n'
# Like the baseline's rule: the plan never rates a query critical, so it needs no estimates.
CRITICAL_ONLY = 'forbid (principal, action, resource) when { context.risk == "critical" };\n'


@pytest.fixture(params=["duckdb", "postgres"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings_for(
    dialect: str,
    make_duck: Callable[..., Path],
    duck_settings: Callable[..., Settings],
    tmp_path: Path,
    request: Any,
) -> Callable[..., Settings]:
    if dialect == "duckdb":
        path = make_duck()
        return lambda overrides=None: duck_settings(path, overrides)
    world: PgWorld = request.getfixturevalue("pg_world")
    # The session's PostgreSQL settings share one audit log, which other tests read: this one's own.
    own = {"audit": {"path": str(tmp_path / "audit.jsonl")}}
    return lambda overrides=None: world.settings(overrides=deep_merge(own, overrides or {}))


def _policy(tmp_path: Path, text: str) -> dict[str, Any]:
    path = tmp_path / f"rule-{abs(hash(text))}.cedar"
    path.write_text(text)
    return {"policy": {"paths": [str(path)], "reload_check_seconds": 0}}


async def _analysis(svc: CodeModeService, sql: str) -> Analysis:
    a = await svc.analyze(sql)
    assert a.ok, a.violations
    return a


def _has_estimates(a: Analysis) -> bool:
    return a.estimated_rows is not None and a.estimated_cost is not None


async def test_without_a_reader_duckdb_plans_once_and_invents_no_figures(
    dialect: str, settings_for: Callable[..., Settings]
) -> None:
    async with CodeModeService(settings_for()) as svc:
        big = await _analysis(svc, CROSS)
        small = await _analysis(svc, SMALL)
        if dialect == "postgres":  # its plan has them anyway: kept
            assert _has_estimates(big) and big.risk_level.value == "high"
            assert "scans about" in big.explanation
            return
        # Nothing reads them: no optimized plan, no figures, the analyzer's own risk.
        assert big.estimated_rows is None and big.estimated_cost is None
        assert big.risk_level.value == "low"
        assert "The database plans to read orders." in big.explanation
        assert "about" not in big.explanation
        assert "The database plans to read customers." in small.explanation
        v = await svc.validate(CROSS)
        assert v.is_valid and v.risk_level == "low"


TRIGGERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "plan_estimates always": lambda _: {"code_mode": {"plan_estimates": "always"}},
    "max_estimated_rows": lambda _: {"code_mode": {"max_estimated_rows": 1e15}},
    "max_estimated_cost": lambda _: {"code_mode": {"max_estimated_cost": 1e15}},
    "approval risk level": lambda _: {"approval": {"risk_levels": ["high"]}},
    "elicitation risk level": lambda _: {"server": {"elicit_risk_levels": ["medium"]}},
    "policy reads risk": lambda tmp: _policy(tmp, READS_RISK),
    "policy reads risk_rank": lambda tmp: _policy(tmp, READS_RANK),
    "policy tests estimated_rows": lambda tmp: _policy(tmp, TESTS_ROWS),
    # The approver's page shows the estimates.
    "reads wait for approval": lambda _: {"approval": {"actions": ["read"]}},
    "an @approval permit": lambda tmp: _policy(tmp, APPROVAL_PERMIT),
}
NOT_TRIGGERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "approval of critical only": lambda _: {"approval": {"risk_levels": ["critical"]}},
    "policy reads only risk == critical": lambda tmp: _policy(tmp, CRITICAL_ONLY),
}


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
async def test_each_reader_of_the_estimates_gets_them(
    dialect: str, settings_for: Callable[..., Settings], tmp_path: Path, trigger: str
) -> None:
    async with CodeModeService(settings_for(TRIGGERS[trigger](tmp_path))) as svc:
        a = await _analysis(svc, CROSS)
        assert _has_estimates(a)
        assert a.estimated_rows is not None and a.estimated_rows > 1_000_000
        assert a.risk_level.value in ("medium", "high")  # raised by the plan's row estimate
        assert "scans about 100K rows of orders" in a.explanation


@pytest.mark.parametrize("case", sorted(NOT_TRIGGERS))
async def test_rules_the_estimates_cannot_change_do_not_ask_for_them(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings], tmp_path: Path, case: str
) -> None:
    async with CodeModeService(duck_settings(make_duck(), NOT_TRIGGERS[case](tmp_path))) as svc:
        a = await _analysis(svc, CROSS)
        assert a.estimated_rows is None and a.risk_level.value == "low"


async def test_the_limit_forces_the_estimates_and_still_refuses(
    dialect: str, settings_for: Callable[..., Settings]
) -> None:
    async with CodeModeService(settings_for({"code_mode": {"max_estimated_rows": 1_000_000}})) as svc:
        v = await svc.validate(CROSS)
        assert not v.is_valid and v.approval_token is None
        assert [x.code for x in v.violations] == ["ESTIMATED_ROWS_TOO_HIGH"]
        assert (await svc.validate(SMALL)).is_valid


async def test_a_policy_that_starts_reading_the_risk_gets_the_estimates_without_a_restart(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    rule = tmp_path / "later.cedar"
    rule.write_text(CRITICAL_ONLY)
    overrides = {"policy": {"paths": [str(rule)], "reload_check_seconds": 0}}
    async with CodeModeService(duck_settings(make_duck(), overrides)) as svc:
        before = await svc.validate(CROSS)
        assert before.is_valid and before.risk_level == "low"
        # The same query again is answered from the confirmation cache...
        assert (await svc.validate(CROSS)).risk_level == "low"
        # ...until a rule reads what the estimates change: a different cache entry, asked anew.
        rule.write_text(READS_RISK)
        after = await svc.validate(CROSS)
        assert after.is_valid and after.risk_level in ("medium", "high"), after.violations
        assert "scans about 100K rows of orders" in after.explanation
        rule.write_text(TESTS_ROWS.replace("1000000000000", "1000000"))
        refused = await svc.validate(CROSS)
        assert not refused.is_valid and refused.approval_token is None


@contextmanager
def _counting_submits(svc: CodeModeService) -> Iterator[list[Any]]:
    """Every job the DuckDB executor hands its worker threads (the pool itself is real)."""
    pool = svc.executor._threads
    real = pool.submit
    calls: list[Any] = []

    def submit(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return real(fn, *args, **kwargs)

    pool.submit = submit
    try:
        yield calls
    finally:
        del pool.submit


@pytest.mark.parametrize("overrides", [None, {"code_mode": {"plan_estimates": "always"}}])
async def test_duckdb_engine_check_is_one_call_on_one_worker_hop(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings], overrides: Any
) -> None:
    async with CodeModeService(duck_settings(make_duck(), overrides)) as svc:
        await _analysis(svc, SMALL)  # the function catalog is loaded once per snapshot
        snapshot = await svc.schema()
        assert svc.confirmer is not None
        fresh = svc.analyzer.analyze(CROSS, snapshot)
        with _counting_submits(svc) as calls:
            c = await svc.confirmer.confirm(fresh, snapshot, policy_reads_estimates=False)
        assert c.ok and not c.cached
        assert [getattr(fn, "__name__", "") for fn in calls] == ["_bound_plan_sync"]
        assert (c.estimated_rows is not None) == (overrides is not None)
        assert "orders" in c.tables[0]


# A binder or catalog error that names what the query did not write: a blocked column offered as a
# "candidate binding", a blocked table as "did you mean". An analyzer slip lets such text reach the
# engine check (simulated here by handing the confirmer that normalized code directly).
SLIPS = {
    "candidate column": ("SELECT sn FROM customers", "ssn"),
    "did you mean table": ("SELECT * FROM credential", "credentials"),
}


@pytest.mark.parametrize("slip", sorted(SLIPS))
@pytest.mark.parametrize("estimates", [False, True])
async def test_duckdb_binder_errors_are_refused_uncached_and_scrubbed(
    make_duck: Callable[..., Path],
    duck_settings: Callable[..., Settings],
    slip: str,
    estimates: bool,
) -> None:
    sql, secret = SLIPS[slip]
    async with CodeModeService(duck_settings(make_duck())) as svc:
        snapshot = await svc.schema()
        assert svc.confirmer is not None
        base = svc.analyzer.analyze("SELECT name FROM customers", snapshot)
        slipped = dataclasses.replace(base, normalized_code=sql)
        # The raw engine does say it: the scrubbing is what keeps it out.
        raw = svc.executor._db.execute("SELECT json_serialize_plan(?::VARCHAR)", [sql]).fetchone()[0]
        assert secret in raw
        for attempt in range(2):
            c = await svc.confirmer.confirm(slipped, snapshot, policy_reads_estimates=estimates)
            assert [v.code for v in c.violations] == ["ENGINE_REFUSED"]
            msg = c.violations[0].message
            assert msg.startswith("The database could not plan the query: DuckDB rejected the query: ")
            assert "Error: " in msg and "…" in msg
            assert secret not in msg.lower()
            assert not c.cached, attempt  # a failure is asked again, never remembered


async def test_duckdb_not_one_select_is_a_round_trip_mismatch(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> None:
    async with CodeModeService(duck_settings(make_duck())) as svc:
        snapshot = await svc.schema()
        assert svc.confirmer is not None
        base = svc.analyzer.analyze("SELECT name FROM customers", snapshot)
        for sql in ("SELECT 1; SELECT 2", "PRAGMA version"):
            c = await svc.confirmer.confirm(dataclasses.replace(base, normalized_code=sql), snapshot)
            assert [v.code for v in c.violations] == ["ROUND_TRIP_MISMATCH"], sql


def test_plan_estimates_takes_auto_or_always(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().code_mode.plan_estimates == "auto"
    assert make_settings({"code_mode": {"plan_estimates": "always"}}).code_mode.plan_estimates == "always"
    with pytest.raises(ConfigError, match=r"plan_estimates.*'auto' or 'always'"):
        make_settings({"code_mode": {"plan_estimates": "never"}})
