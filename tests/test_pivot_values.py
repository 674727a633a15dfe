"""DuckDB PIVOT without an IN list, through validate and execute on the sample warehouse.

The service lists the pivot's values at validation (analyze/pivot.py): the rows must be the ones
DuckDB returns for the original PIVOT, and a blocked read stays refused before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from sqlmode.analyze.pivot import MAX_PIVOT_VALUES
from sqlmode.config import Settings
from sqlmode.service import CodeModeService
from tests.fixtures.cases import FIXTURES, load_cases

# The attack fixtures for this path, run here through the service (the analyzer alone refuses them anyway).
ATTACKS = [c.sql for c in load_cases(FIXTURES / "attacks" / "duckdb.sql") if c.name.endswith("_no_in_list")]


def direct(path: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The original PIVOT run straight on DuckDB (before the service opens the file)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        cur = con.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()


def key(rows: Any) -> list[str]:
    # The executor hands decimals and dates back as text (JSON-safe): compare as text.
    return sorted(repr(tuple(None if c is None else str(c) for c in r)) for r in rows)


SMALL = "(SELECT customer_id, status, total, year(created_at) AS y FROM orders WHERE customer_id <= 40)"


@pytest.mark.parametrize(
    "sql",
    [
        f"PIVOT {SMALL} ON status USING sum(total) GROUP BY customer_id",
        f"PIVOT {SMALL} ON y USING count(*) GROUP BY customer_id",  # numbers: ordered as DuckDB does, as text
        f"PIVOT {SMALL} ON status, y USING sum(total) GROUP BY customer_id",
        f"PIVOT {SMALL} ON status IN ('completed') , y USING count(*) GROUP BY customer_id",
        "PIVOT customers ON region USING count(*) GROUP BY segment",
        "PIVOT customers ON upper(region) USING count(*) GROUP BY segment",
        # Inside a subquery and a CTE (the source filtered there: outer filters cannot name a
        # pivot's output columns yet, tests/fixtures/legit/README.md).
        f"SELECT * FROM (PIVOT {SMALL} ON status USING count(*) GROUP BY customer_id) p",
        f"WITH p AS (SELECT * FROM (PIVOT {SMALL} ON status USING sum(total) GROUP BY customer_id) q) "
        "SELECT * FROM p",
        # The PIVOT statement after a WITH clause naming its source.
        f"WITH s AS {SMALL} PIVOT s ON status USING count(*) GROUP BY customer_id",
        f"WITH s AS {SMALL}, t AS (SELECT * FROM s WHERE y > 2000) "
        "PIVOT t ON y USING sum(total) GROUP BY status",
        # The statement's own ORDER BY / LIMIT / OFFSET, after a WITH clause or not.
        f"PIVOT {SMALL} ON status USING sum(total) GROUP BY customer_id ORDER BY customer_id LIMIT 5",
        f"WITH s AS {SMALL} PIVOT s ON status USING count(*) GROUP BY customer_id "
        "ORDER BY customer_id DESC LIMIT 3 OFFSET 1",
    ],
)
async def test_pivot_without_in_list_returns_the_rows_of_the_original(
    sql: str, sample_settings: Settings, sample_duckdb_path: Path
) -> None:
    columns, rows = direct(sample_duckdb_path, sql)
    assert rows and len(columns) > 2
    async with CodeModeService(sample_settings) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, v.violations
        assert " IN (" in v.normalized_code and "listed at validation" in v.explanation
        # The original code and the normalized code both run under the token (same hash).
        for code in (sql, v.normalized_code):
            again = await svc.validate(sql)
            result = await svc.execute(code, again.approval_token or "")
            assert [c.name for c in result.columns] == columns
            assert key(result.rows) == key(rows)
            assert result.code_hash == v.code_hash


async def test_the_brief_s_pivot_is_accepted_and_its_rows_are_the_original_s(
    sample_settings: Settings, sample_duckdb_path: Path
) -> None:
    sql = "PIVOT orders ON status USING sum(total) GROUP BY customer_id"
    columns, rows = direct(sample_duckdb_path, sql)
    async with CodeModeService(sample_settings) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, v.violations
        result = await svc.execute(sql, v.approval_token or "")
    assert [c.name for c in result.columns] == columns
    # More rows than the row limit: what came back is a part of the original's answer.
    assert result.truncated and set(key(result.rows)) <= set(key(rows))


@pytest.mark.parametrize(
    "sql",
    [
        "PIVOT customers ON ssn USING count(*)",
        "PIVOT customers ON left(ssn, 3) USING count(*) GROUP BY region",
        "PIVOT (SELECT region, left(ssn, 3) AS s FROM customers) ON s USING count(*) GROUP BY region",
        "SELECT * FROM (PIVOT customers ON left(ssn, 3) USING count(*) GROUP BY region) p",
        "WITH c AS (SELECT region, left(ssn, 3) AS s FROM customers) "
        "SELECT * FROM (PIVOT (SELECT * FROM c) ON s USING count(*) GROUP BY region) p",
        "WITH c AS (SELECT region, left(ssn, 3) AS s FROM customers) "
        "PIVOT c ON s USING count(*) GROUP BY region",
        "WITH c AS (SELECT region, ssn FROM customers) PIVOT c ON region USING max(ssn)",
        "PIVOT customers ON region USING max(ssn) GROUP BY segment",
        *ATTACKS,
    ],
)
async def test_a_blocked_read_in_the_pivot_is_refused_and_no_value_is_shown(
    sql: str, sample_settings: Settings, sample_duckdb_path: Path
) -> None:
    prefixes = {r[0] for r in direct(sample_duckdb_path, "SELECT DISTINCT left(ssn, 3) FROM customers")[1]}
    async with CodeModeService(sample_settings) as svc:
        v = await svc.validate(sql)
    assert not v.is_valid and v.approval_token is None
    assert "COLUMN_BLOCKED" in {x.code for x in v.violations}, v.violations
    shown = v.model_dump_json()
    assert not any(f"'{p}'" in shown for p in prefixes)


def test_the_attack_fixtures_are_here() -> None:
    assert len(ATTACKS) == 3


async def test_too_many_values_is_a_refusal_that_says_to_write_the_list(sample_settings: Settings) -> None:
    async with CodeModeService(sample_settings) as svc:
        v = await svc.validate("PIVOT orders ON id USING count(*) GROUP BY status")
    assert not v.is_valid and v.approval_token is None
    (x,) = v.violations
    assert x.code == "UNSUPPORTED_SYNTAX"
    assert f"more than {MAX_PIVOT_VALUES} columns" in x.message and "ON id IN (" in x.hint


async def test_no_value_to_pivot_on_is_a_refusal(sample_settings: Settings) -> None:
    sql = "PIVOT (SELECT status, total FROM orders WHERE total < 0) ON status USING sum(total)"
    async with CodeModeService(sample_settings) as svc:
        v = await svc.validate(sql)
    assert [x.code for x in v.violations] == ["UNSUPPORTED_SYNTAX"] and "no value of status" in v.violations[
        0
    ].message


@pytest.mark.parametrize(
    "sql",
    [
        "WITH c AS (SELECT region, segment, id FROM customers) "
        "PIVOT c ON region IN ('EU', 'US') USING count(id)",
        "WITH c AS (SELECT region, segment, id FROM customers) "
        "PIVOT c AS x ON region IN ('EU', 'US') USING count(id) GROUP BY segment",
        "WITH c AS (SELECT region, segment, id FROM customers) "
        "PIVOT (SELECT * FROM c WHERE id > 3) ON region IN ('EU', 'US') USING count(id)",
        "WITH c AS (SELECT id, region, segment FROM customers), d AS (SELECT * FROM c WHERE id > 2) "
        "UNPIVOT d ON region, segment INTO NAME k VALUE v",
    ],
)
async def test_a_pivot_statement_after_a_with_clause_runs_as_written(
    sql: str, sample_settings: Settings, sample_duckdb_path: Path
) -> None:
    columns, rows = direct(sample_duckdb_path, sql)
    assert rows
    async with CodeModeService(sample_settings) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, v.violations
        result = await svc.execute(sql, v.approval_token or "")
    assert [c.name for c in result.columns] == columns
    if result.truncated:
        assert set(key(result.rows)) <= set(key(rows))
    else:
        assert key(result.rows) == key(rows)


async def test_a_pivot_sent_in_a_markdown_fence_is_listed_and_runs(
    sample_settings: Settings, sample_duckdb_path: Path
) -> None:
    sql = "PIVOT customers ON region USING count(*) GROUP BY segment"
    columns, rows = direct(sample_duckdb_path, sql)
    fenced = f"```sql\n{sql}\n```"
    async with CodeModeService(sample_settings) as svc:
        v = await svc.validate(fenced)
        assert v.is_valid, v.violations
        assert " IN (" in v.normalized_code and "```" not in v.normalized_code
        for code in (fenced, v.normalized_code):
            again = await svc.validate(fenced)
            result = await svc.execute(code, again.approval_token or "")
            assert [c.name for c in result.columns] == columns
            assert key(result.rows) == key(rows)
