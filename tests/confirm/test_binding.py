"""The engine's binding decides what was read (issue 11 item 2, issue 14 item 1).

- The plan readers see a blocked column however it is quoted or disguised: quoted aliases holding
  ``'`` or ``"``, literals holding ``"c".ssn``, scalar subqueries, views; end to end through
  validate + execute, no SSN comes back (PostgreSQL connected as the superuser and as the reader).
- DuckDB's verdict does not depend on the data: the bound plan's column sets are the same for
  every probe value and on an empty copy of the database.
- DuckDB's binder-inserted ``error`` of a scalar subquery is not the query's call; a written one is.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlmode.config import Settings
from sqlmode.engines import _postgres_plan
from sqlmode.engines._duckdb_plan import read_bound_plan
from sqlmode.engines._postgres_plan import column_aliases, postgres_plan_facts
from sqlmode.service import CodeModeService

from .conftest import PgWorld
from .util import codes

# Every SSN of the world is nine zero-padded digits (conftest.BASE_SQL).
SSN = re.compile(r"\b\d{9}\b")

ATTACKS = {
    "quoted_alias_with_quote": (
        "SELECT name, (SELECT \"a'b\".ssn || '' FROM orders LIMIT 1) AS leak "
        'FROM customers AS "a\'b" LIMIT 3'
    ),
    "quoted_alias_filter": 'SELECT "a\'b".name FROM customers AS "a\'b" WHERE "a\'b".ssn > \'0\' LIMIT 3',
    "alias_with_double_quote": 'SELECT name FROM customers AS "x""y" WHERE "x""y".ssn LIKE \'0%\' LIMIT 3',
    "literal_naming_the_column": (
        "SELECT c.name FROM customers c WHERE c.name <> '\"c\".ssn' AND c.ssn > '0' LIMIT 3"
    ),
    "scalar_subquery_outer_ssn": (
        "SELECT (SELECT c.ssn FROM orders o WHERE o.customer_id = c.id LIMIT 1) AS m FROM customers c"
    ),
    "view_renaming_ssn": "SELECT name, tax_id FROM customer_cards",
}
PG_ONLY = {
    # The example: the output alias `ssn` of the subquery makes the bare `ssn` look local.
    "issue_example": (
        "SELECT name, (SELECT ssn || '' AS ssn FROM orders LIMIT 1) AS leak FROM customers AS \"a'b\" LIMIT 3"
    ),
}
DUCK_ONLY = {
    "comprehension_probe": (
        "SELECT len([ssn FOR ssn IN (SELECT list(id) FROM customers WHERE ssn < '950')]) AS r"
    ),
}


def _leaks(rows: list[list[Any]]) -> list[str]:
    return [str(v) for row in rows for v in row if SSN.search(str(v))]


async def _no_ssn_returned(svc: CodeModeService, sql: str) -> None:
    """Validate and, if a token comes back, execute: no SSN value may be returned."""
    v = await svc.validate(sql)
    if v.is_valid:
        result = await svc.execute(v.normalized_code, v.approval_token or "")
        assert not _leaks(result.rows), (sql, result.rows[:3])
    else:
        assert {"COLUMN_BLOCKED", "TABLE_BLOCKED", "ENGINE_REFUSED"} & set(codes(v)), v.violations
        assert v.approval_token is None


@pytest.fixture
async def duck(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> AsyncIterator[CodeModeService]:
    async with CodeModeService(duck_settings(make_duck())) as svc:
        yield svc


@pytest.mark.parametrize("sql", [*ATTACKS.values(), *DUCK_ONLY.values()], ids=[*ATTACKS, *DUCK_ONLY])
async def test_duckdb_attack_returns_no_blocked_value_and_the_engine_sees_it(
    duck: CodeModeService, sql: str
) -> None:
    await _no_ssn_returned(duck, sql)
    # The engine alone: the bound plan reads customers.ssn, whatever the analyzer concluded.
    rows = await duck.executor.catalog_query("SELECT json_serialize_plan(?::VARCHAR)", [sql])
    bound = read_bound_plan(rows[0][0])
    assert bound.problems == [] and ("main", "customers", "ssn") in bound.columns, bound


@pytest.mark.postgres
@pytest.mark.parametrize("login", ["superuser", "reader"])
@pytest.mark.parametrize("sql", [*ATTACKS.values(), *PG_ONLY.values()], ids=[*ATTACKS, *PG_ONLY])
async def test_postgres_attack_returns_no_blocked_value_and_the_engine_sees_it(
    pg_world: PgWorld, login: str, sql: str, tmp_path: Path
) -> None:
    url = pg_world.admin_url if login == "superuser" else pg_world.reader_url
    async with CodeModeService(pg_world.settings(url, _own_audit(tmp_path))) as svc:
        await _no_ssn_returned(svc, sql)
        snapshot = await svc.schema()
        try:
            plan = await svc.executor.explain(sql)
        except Exception as e:  # the reader may not even plan it: the database's own refusal
            assert login == "reader" and "permission denied" in str(e), e
            return
        lookup = _lookup(snapshot)
        facts = postgres_plan_facts(plan, lookup, column_aliases(sql))
        assert facts.problems == [] and ("public", "customers", "ssn") in facts.columns, facts


@pytest.mark.postgres
@pytest.mark.parametrize("sql", [*ATTACKS.values(), *PG_ONLY.values()], ids=[*ATTACKS, *PG_ONLY])
async def test_postgres_plan_reads_the_same_parsed_afresh_or_from_the_tree_cache(
    pg_world: PgWorld, sql: str, tmp_path: Path
) -> None:
    from pglast import parser as pg

    async with CodeModeService(pg_world.settings(pg_world.admin_url, _own_audit(tmp_path))) as svc:
        plan = await svc.executor.explain(sql)
        lookup = _lookup(await svc.schema())
        _postgres_plan._trees.clear()
        cold = postgres_plan_facts(plan, lookup, column_aliases(sql))
        assert _postgres_plan._trees  # the expressions that parsed are kept...
        # ...and read back, with the query's own parse handed over (the engine check parses it once).
        warm = postgres_plan_facts(plan, lookup, column_aliases(sql, json.loads(pg.parse_sql_json(sql))))
        assert cold == warm and cold.problems == [] and ("public", "customers", "ssn") in warm.columns


def _own_audit(tmp_path: Path) -> dict[str, Any]:
    # The session's PostgreSQL settings share one audit log; other tests read theirs.
    return {"audit": {"path": str(tmp_path / "audit.jsonl")}}


def _lookup(snapshot: Any) -> Callable[[str, str], Any]:
    def lookup(schema: str, table: str) -> Any:
        info = snapshot.table(table)
        return None if info is None else ([c.name for c in info.columns], None)

    return lookup


@pytest.mark.postgres
async def test_postgres_column_aliases_cannot_swap_a_blocked_column(
    pg_world: PgWorld, tmp_path: Path
) -> None:
    """``customers AS c(id, name, region, ssn)``: the plan prints c.region for the stored ssn."""
    sql = "SELECT c.region FROM customers AS c(id, name, region, ssn) LIMIT 3"
    async with CodeModeService(pg_world.settings(pg_world.admin_url, _own_audit(tmp_path))) as svc:
        plan = await svc.executor.explain(sql)
        facts = postgres_plan_facts(plan, _lookup(await svc.schema()), column_aliases(sql))
        assert ("public", "customers", "ssn") in facts.columns and (
            "public",
            "customers",
            "region",
        ) not in facts.columns
        await _no_ssn_returned(svc, sql)


# -- DuckDB: verdicts independent of the data -----------------------------------------------------

SHAPES = [
    "SELECT len([ssn FOR ssn IN (SELECT list(id) FROM customers WHERE ssn < {p})]) AS r",
    "SELECT count(*) AS n FROM customers WHERE ssn < {p}",
    "SELECT id FROM orders WHERE customer_id = (SELECT id FROM customers WHERE ssn = {p})",
    "SELECT count(*) AS n FROM customers WHERE region = {p} OR name < {p}",
]


@pytest.fixture
def duck_pair(make_duck: Callable[..., Path]) -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]:
    full = duckdb.connect(str(make_duck()), read_only=True)
    empty = duckdb.connect(
        str(
            make_duck(
                ["DELETE FROM orders", "DELETE FROM customers", "DELETE FROM credentials"], name="empty"
            )
        ),
        read_only=True,
    )
    return full, empty


def _bound(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    row = con.execute("SELECT json_serialize_plan(?::VARCHAR)", [sql]).fetchone()
    assert row is not None, sql
    b = read_bound_plan(row[0])
    return (tuple(b.problems), frozenset(b.columns), frozenset(b.functions), len(b.scans))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(probe=st.text(alphabet="0123456789az'% ", max_size=6), shape=st.sampled_from(SHAPES))
def test_duckdb_bound_plan_is_the_same_for_every_probe_and_on_an_empty_copy(
    duck_pair: tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection], probe: str, shape: str
) -> None:
    full, empty = duck_pair
    literal = "'" + probe.replace("'", "''") + "'"
    baseline = _bound(full, shape.format(p="'950'"))
    assert _bound(full, shape.format(p=literal)) == baseline
    assert _bound(empty, shape.format(p=literal)) == baseline
    assert ("main", "customers", "ssn") in baseline[1] or "region" in shape


async def test_duckdb_verdict_is_the_same_for_every_probe(duck: CodeModeService) -> None:
    verdicts = set()
    for probe in ("800", "950", "999z", "", "000000001"):
        v = await duck.validate(SHAPES[0].format(p=f"'{probe}'"))
        verdicts.add((v.is_valid, tuple(sorted(set(codes(v))))))
    assert len(verdicts) == 1 and not next(iter(verdicts))[0], verdicts


# -- issue 14: the binder's scalar-subquery guard ----------------------------------------------------


async def test_duckdb_scalar_subquery_is_not_a_volatile_call(
    duck: CodeModeService, make_duck: Callable[..., Path]
) -> None:
    sql = (
        "SELECT id, total FROM orders WHERE customer_id = "
        "(SELECT id FROM customers WHERE name = 'customer 7') ORDER BY id"
    )
    result, expected = await _run_and_direct(duck, make_duck, sql)
    assert [r[0] for r in result.rows] == [r[0] for r in expected] and len(expected) > 0


async def _run_and_direct(
    duck: CodeModeService, make_duck: Callable[..., Path], sql: str
) -> tuple[Any, list[tuple[Any, ...]]]:
    """``sql`` validated and executed through the service, and its rows straight from DuckDB."""
    v = await duck.validate(sql)
    assert v.is_valid, v.violations
    result = await duck.execute(v.normalized_code, v.approval_token or "")
    con = duckdb.connect(str(make_duck(name="direct")), read_only=True)
    try:
        return result, con.execute(sql).fetchall()
    finally:
        con.close()


async def test_duckdb_written_error_call_stays_refused(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> None:
    """Even allowed by name, a written error() is volatile: only the binder's own guard passes."""
    settings = duck_settings(make_duck(), {"code_mode": {"functions": {"allow": ["error"]}}})
    async with CodeModeService(settings) as svc:
        scalar = "SELECT (SELECT id FROM customers WHERE name = 'customer 7') AS x, error('boom') AS y"
        v = await svc.validate(scalar)
        assert not v.is_valid and "FUNCTION_VOLATILE" in codes(v), v.violations
        # The guard's shape written by hand carries source locations: still the query's call.
        forged = "SELECT CASE WHEN count(*) > 1 THEN error('many') ELSE min(id) END AS x FROM customers"
        v = await svc.validate(forged)
        assert not v.is_valid and "FUNCTION_VOLATILE" in codes(v), v.violations


async def test_duckdb_builtin_macro_guard_is_not_a_volatile_call(
    duck: CodeModeService, make_duck: Callable[..., Path]
) -> None:
    """json_group_object is a built-in macro whose body guards NULL keys with error('<constant>'):
    the query wrote json_group_object, not error, and it was FUNCTION_VOLATILE `error`."""
    sql = (
        "SELECT json_group_object(status, n) AS o "
        "FROM (SELECT status, count(*) AS n FROM orders GROUP BY status)"
    )
    result, direct = await _run_and_direct(duck, make_duck, sql)
    expected = json.loads(direct[0][0])
    assert result.rows == [[expected]] and expected
    # A blocked column through the macro is still a blocked column.
    v = await duck.validate("SELECT json_group_object(ssn, id) AS o FROM customers")
    assert not v.is_valid and "COLUMN_BLOCKED" in codes(v)


def test_bound_plan_documents_are_json() -> None:
    assert (
        read_bound_plan(json.dumps({"error": False, "plans": [{"type": "LOGICAL_DUMMY_SCAN"}]})).problems
        == []
    )


# -- issue 11 item 5: the engine's work during validation is bounded like execution -------------


async def test_duckdb_constant_folding_during_validation_is_bounded(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> None:
    """A constant the binder and optimizer would fold into a gigabyte: refused, not built.

    The analyzer is bypassed (its own bound on constant builders is another layer): the engine's
    check alone must stop at the memory limit or the deadline, and the service keeps working.
    """
    overrides = {"database": {"memory_limit": "256MB"}, "code_mode": {"query_timeout_ms": 2000}}
    async with CodeModeService(duck_settings(make_duck(), overrides)) as svc:
        assert svc.confirmer is not None
        snapshot = await svc.schema()
        analysis = svc.analyzer.analyze("SELECT length(name) AS n FROM customers", snapshot)
        assert analysis.ok
        analysis.normalized_code = "SELECT length(repeat(repeat(repeat('x', 1000), 1000), 1000)) AS n"
        result = await svc.confirmer.confirm(analysis, snapshot)
        assert [v.code for v in result.violations] == ["ENGINE_REFUSED"], result.violations
        v = await svc.validate("SELECT count(*) AS n FROM customers")
        assert v.is_valid
        assert (await svc.execute(v.normalized_code, v.approval_token or "")).rows == [[2000]]
