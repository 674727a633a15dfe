"""The golden fixtures: every attack refused with its codes, every legit query accepted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sqlmode.analyze import VIOLATION_CODES, Analyzer
from tests.analyze.conftest import EXTRA_TABLES, make_settings, sample_snapshot
from tests.fixtures.cases import Case, attack_cases, legit_cases

DIALECTS = ("duckdb", "postgres")
ANALYZERS = {d: Analyzer(make_settings(d)) for d in DIALECTS}
SNAPSHOTS = {d: sample_snapshot(d, EXTRA_TABLES) for d in DIALECTS}


def _params(loader: Callable[[str], list[Case]]) -> list[object]:
    return [pytest.param(d, c, id=f"{d}:{c.name}") for d in DIALECTS for c in loader(d)]


@pytest.mark.parametrize(("dialect", "case"), _params(attack_cases))
def test_attack_is_refused_with_expected_codes(dialect: str, case: Case) -> None:
    analysis = ANALYZERS[dialect].analyze(case.sql, SNAPSHOTS[dialect])
    got = [v.code for v in analysis.violations]
    assert got, f"{case.path}:{case.line} {case.name} was accepted: {analysis.normalized_code}"
    missing = set(case.expect) - set(got)
    assert not missing, f"{case.name}: expected {case.expect}, got {got}"
    assert analysis.normalized_code == "" and analysis.row_limit == 0
    for v in analysis.violations:
        assert v.code in VIOLATION_CODES and v.message and v.hint


@pytest.mark.parametrize(("dialect", "case"), _params(legit_cases))
def test_legit_query_is_accepted(dialect: str, case: Case) -> None:
    analysis = ANALYZERS[dialect].analyze(case.sql, SNAPSHOTS[dialect])
    assert analysis.violations == [], f"{case.path}:{case.line} {case.name}"
    assert analysis.normalized_code and analysis.explanation
    assert 0 < analysis.row_limit <= 1000
    expected_columns = case.listed("columns")
    if expected_columns is not None:
        assert analysis.columns == expected_columns
    expected_tables = case.listed("tables")
    if expected_tables is not None:
        assert analysis.tables == expected_tables
    for column in analysis.columns:
        assert column != "customers.ssn"


def test_corpus_sizes_meet_the_issue() -> None:
    attacks = sum(len(attack_cases(d)) for d in DIALECTS)
    legit = sum(len(legit_cases(d)) for d in DIALECTS)
    assert attacks >= 200 and legit >= 100


def test_every_expected_code_is_registered() -> None:
    for d in DIALECTS:
        for case in attack_cases(d):
            assert case.expect, case.name
            assert set(case.expect) <= set(VIOLATION_CODES), case.name
