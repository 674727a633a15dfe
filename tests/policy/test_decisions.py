"""Decision tables (tests/fixtures/decisions/*.json), run for both dialects.

Each case is checked twice where possible: from the analysis summary written in the
table (what Cedar decides for exactly those facts), and from the case's SQL through
the real analyzer with a hand-built sample snapshot (that the analyzer reports the
facts the policies rely on). See tests/fixtures/decisions/README.md for the format.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sqlmode.models import Principal
from sqlmode.policy import CedarEvaluator

from .conftest import analysis_from, policy_settings, sample_snapshot

TABLES = Path(__file__).resolve().parents[1] / "fixtures" / "decisions"


def _cases() -> list[Any]:
    out = []
    for path in sorted(TABLES.glob("*.json")):
        table = json.loads(path.read_text())
        for case in table["cases"]:
            out.append(pytest.param(path.stem, case, id=f"{path.stem}: {case['name']}"))
    return out


CASES = _cases()


@cache
def _table(stem: str) -> dict[str, Any]:
    return json.loads((TABLES / f"{stem}.json").read_text())


@cache
def _evaluator(stem: str, dialect: str) -> CedarEvaluator:
    return CedarEvaluator(policy_settings(_table(stem)["config"], dialect=dialect))


def _principal(case: dict[str, Any]) -> Principal:
    p = case["principal"]
    return Principal(user=p["user"], groups=tuple(p.get("groups", ())), session=p.get("session", "s1"))


def _check(decision: Any, case: dict[str, Any]) -> None:
    expected_allow = case["decision"] == "allow"
    assert decision.allowed is expected_allow, decision
    assert list(decision.policy_ids) == case["policy_ids"], decision
    assert [v.code for v in decision.violations] == case.get("violation_codes", []), decision
    for v in decision.violations:
        assert v.message and v.hint, v


def test_tables_are_well_formed() -> None:
    assert len(CASES) >= 30
    for param in CASES:
        case = param.values[1]
        assert case["decision"] in ("allow", "deny")
        assert case["decision"] == "allow" or case.get("violation_codes"), case["name"]


@pytest.mark.parametrize(("stem", "case"), CASES)
def test_decision_from_analysis_summary(stem: str, case: dict[str, Any], dialect: str) -> None:
    analysis = analysis_from({**case["analysis"], "sql": case.get("sql", "SELECT 1")}, dialect=dialect)
    _check(_evaluator(stem, dialect).evaluate(_principal(case), analysis), case)


@pytest.mark.parametrize(("stem", "case"), [c for c in CASES if "sql" in c.values[1]])
def test_decision_from_sql_through_the_analyzer(stem: str, case: dict[str, Any], dialect: str) -> None:
    from sqlmode.analyze import Analyzer

    settings = policy_settings(_table(stem)["config"], dialect=dialect)
    analysis = Analyzer(settings).analyze(case["sql"], sample_snapshot(settings))
    if analysis.violations:
        # The analyzer refused on its own; defence in depth means the policy refuses too.
        assert case["decision"] == "deny", analysis.violations
        return
    _check(_evaluator(stem, dialect).evaluate(_principal(case), analysis), case)
