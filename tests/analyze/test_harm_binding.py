"""Issue 11: a name that can bind to a blocked column in more than one way.

Each attack of the "binding" section of the fixtures runs verbatim on the engine first
(Postgres connected as the superuser, DuckDB with default settings), which shows what it
would reveal: SSNs, or which customers satisfy a predicate on the SSN. Then it goes
through the whole service (validate, and execute if a token came back), connected as the
Postgres superuser, as the reader role, and to DuckDB: it is refused, and nothing that
comes back carries a blocked value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService
from tests.fixtures.cases import attack_cases

SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
ORACLE = "SELECT {key} FROM customers WHERE {predicate}"
LIKE_95 = "ssn LIKE '95%'"

# name -> None (the rows carry SSNs) or an oracle: (key column, the attack's predicate on
# the SSN); the rows are exactly the customers matching it ("count": just how many).
Harm = tuple[str, str] | None
PG_HARM: dict[str, Harm] = {
    "ssn_outer_behind_inner_alias": None,
    "ssn_outer_behind_alias_in_where": ("name", LIKE_95),
    "ssn_outer_behind_generate_series": None,
    "ssn_outer_behind_unnest": None,
    "ssn_outer_behind_values": None,
    "ssn_outer_behind_jsonb_each": None,
    "ssn_outer_in_having_of_subquery": ("id", LIKE_95),
    "ssn_outer_via_quoted_case_qualifier": None,
    "ssn_outer_from_derived_table_without_from": None,
    "ssn_outer_qualified_inside_same_named_derived_table": None,
}
DUCK_HARM: dict[str, Harm] = {
    "ssn_outer_behind_range": None,
    "ssn_outer_behind_unnest": None,
    "ssn_outer_behind_values": None,
    "ssn_outer_behind_json_each": ("name", LIKE_95),
    "ssn_through_pivot_in_subquery": None,
    "ssn_comprehension_iterator_subquery": ("count", "ssn < '950'"),
    "ssn_outer_from_derived_table_without_from": None,
    "ssn_outer_qualified_inside_same_named_derived_table": None,
}
PG_CASES = {c.name: c for c in attack_cases("postgres")}
DUCK_CASES = {c.name: c for c in attack_cases("duckdb")}
# Every attack of the section, including those the engines happen to reject or bind
# harmlessly today: the analyzer refuses them all (over-approximation).
PG_SECTION = [n for n in PG_CASES if n.startswith(("ssn_outer", "ssn_order_by", "ssn_in_group"))]
DUCK_SECTION = [
    n
    for n in DUCK_CASES
    if n in DUCK_HARM
    or n.startswith(("ssn_outer", "ssn_lambda", "ssn_comprehension", "ssn_alias_in", "ssn_order_by"))
]


def has_ssn(value: Any) -> bool:
    return bool(SSN.search(str(value)))


def _truth_sql(harm: Harm) -> str:
    assert harm is not None
    key, predicate = harm
    return ORACLE.format(key="id" if key == "count" else key, predicate=predicate)


def _holds(rows: list[Any], truth: list[Any], total: int, harm: Harm) -> bool:
    if harm is None:
        return has_ssn(rows)
    if harm[0] == "count":  # one number: how many rows matched
        return rows[0][0] == len(truth) and 0 < len(truth) < total
    return sorted(r[0] for r in rows) == sorted(r[0] for r in truth) and 0 < len(truth) < total


async def _through_service(settings: Settings, sql: str) -> None:
    async with CodeModeService(settings) as svc:
        result = await svc.validate(sql)
        shown = result.model_dump_json()
        assert not has_ssn(shown)
        if result.is_valid:  # would be a leak: run it and show what came back
            assert result.approval_token
            ran = await svc.execute(result.normalized_code, result.approval_token)
            assert not has_ssn(ran.rows), ran.rows
        assert not result.is_valid, f"refused: {sql}"
        assert {v.code for v in result.violations} & {"COLUMN_BLOCKED", "UNKNOWN_COLUMN"}


@pytest.mark.postgres
@pytest.mark.parametrize("name", sorted(PG_HARM))
async def test_postgres_attack_reveals_ssn_when_run_as_superuser(name: str, pg_sample_url: str) -> None:
    conn = await asyncpg.connect(pg_sample_url)
    try:
        rows = [tuple(r) for r in await conn.fetch(PG_CASES[name].sql)]
        harm = PG_HARM[name]
        truth = [tuple(r) for r in await conn.fetch(_truth_sql(harm))] if harm else []
        total = await conn.fetchval("SELECT count(*) FROM customers")
    finally:
        await conn.close()
    assert _holds(rows, truth, total, harm)


@pytest.mark.postgres
@pytest.mark.parametrize("role", ["superuser", "reader"])
@pytest.mark.parametrize("name", PG_SECTION)
async def test_postgres_attack_is_refused_and_returns_nothing_blocked(
    name: str,
    role: str,
    pg_sample_url: str,
    pg_reader_url: str,
    pg_settings_factory: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    url = pg_sample_url if role == "superuser" else pg_reader_url
    own_audit = {"audit": {"path": str(tmp_path / "audit.jsonl")}}  # the session's file is others'
    await _through_service(pg_settings_factory(url, own_audit), PG_CASES[name].sql)


@pytest.mark.parametrize("name", sorted(DUCK_HARM))
def test_duckdb_attack_reveals_ssn(name: str, sample_duckdb_path: Path) -> None:
    con = duckdb.connect(str(sample_duckdb_path), read_only=True)
    try:
        rows = con.execute(DUCK_CASES[name].sql).fetchall()
        harm = DUCK_HARM[name]
        truth = con.execute(_truth_sql(harm)).fetchall() if harm else []
        counted = con.execute("SELECT count(*) FROM customers").fetchone()
        assert counted is not None
        total = counted[0]
    finally:
        con.close()
    assert _holds(rows, truth, total, harm)


@pytest.mark.parametrize("name", DUCK_SECTION)
async def test_duckdb_attack_is_refused_and_returns_nothing_blocked(
    name: str, sample_settings: Settings
) -> None:
    await _through_service(sample_settings, DUCK_CASES[name].sql)


def test_sections_are_covered() -> None:
    assert set(PG_HARM) <= set(PG_SECTION) and len(PG_SECTION) >= 10
    assert set(DUCK_HARM) <= set(DUCK_SECTION) and len(DUCK_SECTION) >= 12
