"""The analyzer's rules: their documented order, and each rule's golden cases on its own.

Each rule's file under tests/fixtures/rules/ is SQL in and the codes that rule reports out
(tests/fixtures/rules/README.md); the rules before it run first, as in the Analyzer, since
a rule may read facts an earlier one recorded. The whole Analyzer must report them too.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sqlmode.analyze import VIOLATION_CODES, Analyzer
from sqlmode.analyze.classify import classify, survey
from sqlmode.analyze.parse import parse_one
from sqlmode.analyze.rules import RULES, Rule, RuleContext, RuleSet, run_rules
from sqlmode.config import Settings
from tests.analyze.conftest import EXTRA_TABLES, make_settings, sample_snapshot
from tests.fixtures.cases import FIXTURES, Case, load_cases

ROOT = Path(__file__).resolve().parents[2]
RULE_FIXTURES = FIXTURES / "rules"
DIALECTS = ("duckdb", "postgres")
EXTRA: dict[str, tuple[str, ...]] = dict(EXTRA_TABLES)
SNAPSHOTS = {d: sample_snapshot(d, EXTRA) for d in DIALECTS}
RULE_NAMES = [r.__name__ for r in RULES]


def documented_order() -> list[str]:
    """The numbered list under "## The order" in docs/analyzer-rules.md."""
    text = (ROOT / "docs" / "analyzer-rules.md").read_text(encoding="utf-8")
    section = text.split("## The order", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"(?m)^\d+\. `(\w+)`", section)


def test_rules_run_in_the_documented_order() -> None:
    assert documented_order() == RULE_NAMES


@pytest.mark.parametrize("rule", RULES, ids=RULE_NAMES)
def test_each_rule_is_its_own_module_named_after_it(rule: Rule) -> None:
    assert rule.__module__ == f"sqlmode.analyze.rules.{rule.__name__}"
    assert rule.__doc__


def test_every_rule_has_its_fixture_file_and_every_file_a_rule() -> None:
    assert sorted(p.stem for p in RULE_FIXTURES.glob("*.sql")) == sorted(RULE_NAMES)


@pytest.mark.parametrize("rule", RULES, ids=RULE_NAMES)
def test_every_rule_has_cases_it_refuses_and_cases_it_lets_through(rule: Rule) -> None:
    cases = load_cases(RULE_FIXTURES / f"{rule.__name__}.sql")
    assert any(c.expect for c in cases) and any(not c.expect for c in cases)
    for case in cases:
        assert set(case.expect) <= set(VIOLATION_CODES), case.name
        assert set(case.listed("dialects") or DIALECTS) <= set(DIALECTS), case.name


def _params() -> list[Any]:
    out = []
    for rule in RULES:
        for case in load_cases(RULE_FIXTURES / f"{rule.__name__}.sql"):
            for dialect in case.listed("dialects") or DIALECTS:
                out.append(pytest.param(rule, dialect, case, id=f"{rule.__name__}:{dialect}:{case.name}"))
    return out


@cache
def _settings(dialect: str, code_mode: str) -> Settings:
    return make_settings(dialect, **json.loads(code_mode or "{}"))


@cache
def _analyzer(dialect: str, code_mode: str) -> Analyzer:
    return Analyzer(_settings(dialect, code_mode))


def _facts(case: Case, ctx: RuleContext) -> dict[str, object]:
    """The facts the case names, as the rule recorded them."""
    recorded = {"tables": sorted(ctx.tables), "columns": ctx.columns, "functions": ctx.functions}
    got: dict[str, object] = {}
    for key, value in recorded.items():
        if key in case.meta:
            got[key] = value
    if "catalog" in case.meta:
        got["catalog"] = ctx.catalog
    return got


def _expected_facts(case: Case) -> dict[str, object]:
    want: dict[str, object] = {}
    for key in ("tables", "columns", "functions"):
        if key in case.meta:
            want[key] = [] if case.meta[key] == "-" else case.listed(key)
    if "catalog" in case.meta:
        want["catalog"] = {"true": True, "false": False}[case.meta["catalog"]]
    return want


@pytest.mark.parametrize(("rule", "dialect", "case"), _params())
def test_rule_golden_case(rule: Rule, dialect: str, case: Case) -> None:
    code_mode = case.meta.get("code_mode", "")
    ruleset = RuleSet.from_settings(_settings(dialect, code_mode))
    snapshot = SNAPSHOTS[dialect]
    root = parse_one(case.sql, dialect)
    cls = classify(root, allow_writes=ruleset.allow_writes, allow_deletes=ruleset.allow_deletes)
    assert not cls.violations, f"{case.path}:{case.line}: the statement itself is refused"
    ctx = RuleContext.build(case.sql, root, snapshot, ruleset, cls.inventory or survey(root)[1])
    run_rules(ctx, RULES[: RULES.index(rule)])
    found = rule(ctx)
    where = f"{case.path}:{case.line} {case.name}"
    assert [v.code for v in found] == case.expect, where
    for v in found:
        assert v.message and v.hint, where
    assert _facts(case, ctx) == _expected_facts(case), where
    # The rule in place: the whole analysis reports what it found, and refuses to run it.
    analysis = _analyzer(dialect, code_mode).analyze(case.sql, snapshot)
    reported = [v.code for v in analysis.violations]
    assert set(case.expect) <= set(reported), where
    if case.expect:
        assert analysis.normalized_code == "" and analysis.row_limit == 0
