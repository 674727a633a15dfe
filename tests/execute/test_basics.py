"""Both executors: results, limits that only go down, refusals, errors users understand."""

from __future__ import annotations

import json

import pytest

from sqlmode.errors import ExecutionError, NotAQueryError, QueryTimeoutError
from sqlmode.execute import check_read_query, effective_limits
from sqlmode.execute.base import leading_keyword
from sqlmode.models import QueryResult


async def test_runs_a_query_and_reports_columns(executor) -> None:
    r = await executor.run("SELECT id, status, total FROM orders ORDER BY id LIMIT 3")
    assert isinstance(r, QueryResult)
    assert [c.name for c in r.columns] == ["id", "status", "total"]
    assert r.row_count == 3 and len(r.rows) == 3 and not r.truncated
    assert [row[0] for row in r.rows] == [1, 2, 3]
    assert r.code_hash == "" and r.elapsed_ms > 0
    json.dumps(r.model_dump())


async def test_max_rows_truncates_and_flags(executor) -> None:
    r = await executor.run("SELECT id FROM orders ORDER BY id", max_rows=7)
    assert r.row_count == 7 and r.truncated
    exact = await executor.run("SELECT id FROM orders ORDER BY id LIMIT 7", max_rows=7)
    assert exact.row_count == 7 and not exact.truncated


async def test_per_call_limits_only_lower_the_configured_ones(executor) -> None:
    configured = executor.settings.code_mode.max_rows
    r = await executor.run("SELECT id FROM orders", max_rows=configured * 10)
    assert r.row_count == configured and r.truncated
    rows, ms = effective_limits(executor.settings, 10**9, 10**9)
    assert (rows, ms) == (configured, executor.settings.code_mode.query_timeout_ms)
    assert effective_limits(executor.settings, 3, 50) == (3, 50)


@pytest.mark.parametrize(
    "sql",
    [
        "SET threads = 1",
        "BEGIN",
        "PREPARE p AS SELECT 1",
        "CALL x()",
        "COPY orders TO '/tmp/x'",
        "  -- c\n ;",
    ],
)
async def test_refuses_text_that_is_not_a_read_query(executor, sql: str) -> None:
    with pytest.raises(NotAQueryError) as ei:
        await executor.run(sql)
    assert ei.value.code == "NOT_A_QUERY"


def test_leading_keyword_guard_skips_comments_and_parentheses() -> None:
    check_read_query("/* x */ -- y\n ((SELECT 1))")
    check_read_query("with a as (select 1) select * from a")
    for bad in ["/* /* */ */ SELECT 1", "EXPLAIN ANALYZE SELECT 1", "", "DECLARE c CURSOR FOR SELECT 1"]:
        with pytest.raises(NotAQueryError):
            check_read_query(bad)


@pytest.mark.parametrize(
    ("sql", "word"),
    [
        ("SELECT 1", "select"),
        ("/* x */ -- y\n ((Select 1))", "select"),
        ("\n\t(WITH a AS (SELECT 1) SELECT * FROM a)", "with"),
        ("-- only a comment", ""),
        ("/* /* */ */ DELETE FROM t", ""),  # a nested comment ends early: no word, refused
        ("  insert into t values (1)", "insert"),
        ("1 + 1", ""),
        ("", ""),
    ],
)
def test_leading_keyword_is_the_first_word_after_noise(sql: str, word: str) -> None:
    # The read path (check_read_query) and the write path (writes._check_write_text) both use it.
    assert leading_keyword(sql) == word


async def test_several_statements_are_refused(executor) -> None:
    with pytest.raises(ExecutionError):
        await executor.run("SELECT 1; SELECT 2")


async def test_database_errors_carry_the_database_message(executor) -> None:
    with pytest.raises(ExecutionError) as ei:
        await executor.run("SELECT no_such_column FROM orders")
    assert "no_such_column" in ei.value.message
    assert ei.value.code == "EXECUTION_FAILED"


async def test_deadline_stops_a_long_query(executor) -> None:
    sql = (
        "SELECT count(*) FROM range(1000000000) a, range(1000) b"
        if executor.dialect == "duckdb"
        else ("SELECT pg_sleep(5)")
    )
    with pytest.raises(QueryTimeoutError) as ei:
        await executor.run(sql, timeout_ms=200)
    assert "200 ms" in ei.value.message
    r = await executor.run("SELECT 1 AS one")
    assert r.rows == [[1]]


async def test_explain_returns_a_plan_without_running(executor) -> None:
    plan = await executor.explain("SELECT status, count(*) FROM orders GROUP BY status")
    assert isinstance(plan, dict) and "Plan" in plan
    with pytest.raises(NotAQueryError):
        await executor.explain("DELETE FROM orders")


async def test_catalog_query_takes_parameters(executor) -> None:
    param = "?" if executor.dialect == "duckdb" else "$1"
    sql = (
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_name = {param} ORDER BY ordinal_position"
    )
    rows = await executor.catalog_query(sql, ["orders"])
    assert [r[0] for r in rows] == ["id", "customer_id", "status", "total", "created_at"]
