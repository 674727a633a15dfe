"""How configuration changes the analyzer's verdicts: writes, functions, limits, introspection."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sqlmode.analyze import VIOLATION_CODES, Analyzer
from sqlmode.models import Action, Analysis, RiskLevel
from tests.analyze.conftest import make_settings, sample_snapshot


def run(sql: str, dialect: str = "postgres", **code_mode: Any) -> Analysis:
    return Analyzer(make_settings(dialect, **code_mode)).analyze(sql, sample_snapshot(dialect))


def codes(analysis: Analysis) -> set[str]:
    return {v.code for v in analysis.violations}


# -- writes -------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
def test_writes_refused_by_default(dialect: str) -> None:
    assert codes(run("UPDATE orders SET status = 'x' WHERE id = 1", dialect)) == {"WRITE_NOT_ALLOWED"}
    assert codes(run("DELETE FROM contacts WHERE id = 1", dialect)) == {"DELETE_NOT_ALLOWED"}


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
def test_allowed_write_is_classified_not_refused(dialect: str) -> None:
    a = run("UPDATE orders SET status = 'void' WHERE id = 1", dialect, allow_writes=True)
    assert a.violations == []
    assert (a.statement_type, a.action, a.risk_level) == ("UPDATE", Action.WRITE, RiskLevel.HIGH)
    assert a.columns == ["orders.id", "orders.status"]
    assert "LIMIT" not in a.normalized_code and a.row_limit == 0
    assert "status" in a.explanation and "id is 1" in a.explanation


def test_allowed_insert_select_reads_and_writes() -> None:
    a = run(
        "INSERT INTO contacts (id, customer_id, rep) SELECT id, id, name FROM customers WHERE region = 'NA'",
        allow_writes=True,
    )
    assert a.violations == [] and a.action == Action.WRITE
    assert "contacts.rep" in a.columns and "customers.region" in a.columns


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
def test_an_upsert_reads_the_proposed_row_through_excluded(dialect: str) -> None:
    """ON CONFLICT ... DO UPDATE SET c = excluded.c: the target's columns, blocked ones refused."""
    upsert = (
        "INSERT INTO contacts AS k (id, customer_id, rep) VALUES (1, 1, 'me') "
        "ON CONFLICT (id) DO UPDATE SET rep = excluded.rep WHERE k.rep <> excluded.rep"
    )
    a = run(upsert, dialect, allow_writes=True)
    assert a.violations == [] and a.action == Action.WRITE
    assert "contacts.rep" in a.columns and "ON CONFLICT" in a.normalized_code
    leak = (
        "INSERT INTO customers (id, name) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET name = excluded.ssn"
    )
    assert codes(run(leak, dialect, allow_writes=True)) == {"COLUMN_BLOCKED"}
    assert codes(
        run(upsert.replace("excluded.rep WHERE", "excluded.nope WHERE"), dialect, allow_writes=True)
    ) == {"UNKNOWN_COLUMN"}


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        (
            "WITH t AS (SELECT id FROM support_tickets WHERE priority = 'low' LIMIT 2) "
            "UPDATE support_tickets SET priority = 'medium' WHERE id IN (SELECT id FROM t)",
            "UPDATE",
        ),
        (
            "WITH t AS (SELECT id, customer_id FROM support_tickets LIMIT 2) "
            "INSERT INTO contacts (id, customer_id, rep) SELECT id + 990000, customer_id, 'x' FROM t",
            "INSERT",
        ),
        (
            "WITH t AS (SELECT id FROM contacts WHERE rep = 'x') "
            "DELETE FROM contacts WHERE id IN (SELECT id FROM t)",
            "DELETE",
        ),
    ],
)
def test_a_write_after_a_with_clause_is_the_write(dialect: str, sql: str, kind: str) -> None:
    """DuckDB's check of the rendering read its first word: WITH was no UPDATE (ANALYSIS_FAILED)."""
    a = run(sql, dialect, allow_writes=True, allow_deletes=True)
    assert a.violations == [] and a.statement_type == kind and a.normalized_code.startswith("WITH t AS")
    leak = (
        "WITH t AS (SELECT ssn FROM customers) "
        "UPDATE contacts SET rep = (SELECT ssn FROM t LIMIT 1) WHERE id = 1"
    )
    assert codes(run(leak, dialect, allow_writes=True)) == {"COLUMN_BLOCKED"}


def test_delete_needs_allow_deletes_and_is_critical() -> None:
    sql = "DELETE FROM contacts WHERE contacted_at < now() - interval '1 year'"
    assert codes(run(sql, allow_writes=True)) == {"DELETE_NOT_ALLOWED"}
    a = run(sql, allow_deletes=True)
    assert a.violations == [] and (a.action, a.risk_level) == (Action.DELETE, RiskLevel.CRITICAL)


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("INSERT INTO customers (id, name, ssn) VALUES (1, 'x', '1')", "COLUMN_BLOCKED"),
        ("INSERT INTO customers VALUES (1, 'x', 'e', '1', 'r', 's', now())", "COLUMN_BLOCKED"),
        ("UPDATE customers SET name = 'x' WHERE ssn = '1'", "COLUMN_BLOCKED"),
        ("UPDATE customers SET name = 'x' WHERE id = 1 RETURNING *", "COLUMN_BLOCKED"),
        ("DELETE FROM credentials", "TABLE_BLOCKED"),
        ("UPDATE orders SET total = 0 WHERE id IN (SELECT user_id FROM credentials)", "TABLE_BLOCKED"),
        ("MERGE INTO orders o USING products p ON o.id = p.id WHEN MATCHED THEN DELETE", "WRITE_NOT_ALLOWED"),
        ("DROP TABLE orders", "STATEMENT_NOT_ALLOWED"),
        ("TRUNCATE contacts", "STATEMENT_NOT_ALLOWED"),
        ("WITH d AS (DELETE FROM contacts RETURNING id) SELECT count(*) FROM d", "NESTED_WRITE"),
    ],
)
def test_blocked_and_admin_still_refused_when_writes_allowed(sql: str, code: str) -> None:
    assert code in codes(run(sql, allow_writes=True, allow_deletes=True))


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
@pytest.mark.parametrize("writes", [False, True])
def test_merge_is_refused_as_itself_alone(dialect: str, writes: bool) -> None:
    """MERGE is never allowed: one refusal that says why, not its WHEN actions as nested writes
    nor its USING subquery's columns as unknown (nothing of it is resolved)."""
    for sql in (
        "MERGE INTO orders o USING (SELECT id, name FROM customers) c ON o.customer_id = c.id "
        "WHEN MATCHED THEN UPDATE SET status = 'x' WHEN NOT MATCHED THEN INSERT (id) VALUES (c.id)",
        "MERGE INTO orders o USING products p ON o.id = p.id WHEN MATCHED THEN DELETE",
    ):
        a = run(sql, dialect, allow_writes=writes, allow_deletes=writes)
        assert [v.code for v in a.violations] == ["WRITE_NOT_ALLOWED"], a.violations
        assert "MERGE" in a.violations[0].message and "never allowed" in a.violations[0].message
        assert a.statement_type == "MERGE" and a.normalized_code == ""


# -- functions ----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
def test_config_can_extend_and_narrow_the_allowlist(dialect: str) -> None:
    assert codes(run("SELECT my_udf(id) FROM orders", dialect)) == {"FUNCTION_NOT_ALLOWED"}
    assert run("SELECT my_udf(id) FROM orders", dialect, functions={"allow": ["my_udf"]}).violations == []
    narrowed = run("SELECT upper(name) FROM products", dialect, functions={"deny": ["upper"]})
    assert codes(narrowed) == {"FUNCTION_NOT_ALLOWED"}


def test_denying_a_generator_name_denies_its_other_spelling() -> None:
    # DuckDB parses range() and generate_series() into one node: one decision for both.
    a = run("SELECT * FROM range(5)", "duckdb", functions={"deny": ["generate_series"]})
    assert codes(a) == {"FUNCTION_NOT_ALLOWED"}


def test_functions_are_reported_by_normalized_name() -> None:
    a = run(
        "SELECT date_trunc('month', created_at), COUNT(*), pg_catalog.lower(status) FROM orders GROUP BY 1"
    )
    assert a.violations == []
    assert a.functions == ["count", "date_trunc", "lower"]


# -- introspection ------------------------------------------------------------------------


def test_introspection_switch() -> None:
    sql = "SELECT table_name FROM information_schema.tables"
    assert codes(run(sql)) == {"INTROSPECTION_BLOCKED"}
    open_: dict[str, Any] = {"cedar_policies": {"block_introspection": False}}
    assert run(sql, **open_).violations == []
    # statistics of every column, blocked ones included: never
    assert codes(run("SELECT most_common_vals FROM pg_stats", **open_)) == {"INTROSPECTION_BLOCKED"}


# -- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "limit", "source"),
    [
        ("SELECT id FROM orders", 1000, "injected"),
        ("SELECT id FROM orders LIMIT 5000", 1000, "lowered"),
        ("SELECT id FROM orders LIMIT 10", 10, "kept"),
        ("SELECT id FROM orders LIMIT 10 OFFSET 5", 10, "kept"),
        ("SELECT id FROM orders LIMIT ALL", 1000, "lowered"),
        ("SELECT id FROM orders ORDER BY id FETCH FIRST 20 ROWS ONLY", 20, "kept"),
        ("SELECT id FROM orders ORDER BY id FETCH FIRST 20 ROWS WITH TIES", 1000, "wrapped"),
        ("SELECT id FROM orders LIMIT (SELECT 3)", 1000, "wrapped"),
        ("SELECT id FROM orders LIMIT NULL", 1000, "lowered"),
        ("SELECT id FROM orders UNION SELECT id FROM products LIMIT 3000", 1000, "lowered"),
        ("VALUES (1), (2)", 1000, "injected"),
    ],
)
def test_limit_injection(sql: str, limit: int, source: str) -> None:
    a = run(sql)
    assert a.violations == []
    assert a.row_limit == limit and a.limit_source == source
    # an injected or lowered cap asks for one probe row past the limit (truncation detection)
    written = limit if source == "kept" else limit + 1
    assert re.search(rf"(LIMIT|FETCH FIRST) {written}\b", a.normalized_code)
    if source == "wrapped":  # the query's own limit is still there, inside the cap
        assert a.normalized_code.startswith("SELECT * FROM (") and ("WITH TIES" in sql) == (
            "WITH TIES" in a.normalized_code
        )


def test_limit_percent_in_duckdb_is_kept_inside_the_cap() -> None:
    a = run("SELECT id FROM orders LIMIT 10%", "duckdb")
    assert a.row_limit == 1000 and a.limit_source == "wrapped"
    assert a.normalized_code == "SELECT * FROM (SELECT id FROM orders LIMIT 10 PERCENT) AS q LIMIT 1001"


def test_max_rows_comes_from_config() -> None:
    a = run("SELECT id FROM orders LIMIT 500", max_rows=50)
    assert a.row_limit == 50 and a.normalized_code.endswith("LIMIT 51")


def test_depth_joins_fields_complexity_limits_follow_config() -> None:
    nested = "SELECT * FROM (SELECT * FROM (SELECT id FROM orders) a) b"
    assert codes(run(nested, cedar_policies={"max_depth": 2})) == {"TOO_DEEP"}
    assert run(nested, cedar_policies={"max_depth": 3}).violations == []
    join = "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id"
    assert codes(run(join, max_joins=0)) == {"TOO_MANY_JOINS"}
    assert codes(run("SELECT id, name, price FROM products", cedar_policies={"max_fields": 2})) == {
        "TOO_MANY_FIELDS"
    }
    assert codes(run(join, max_complexity=5)) == {"TOO_COMPLEX"}


# -- never raises -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        None,
        42,
        "",
        "   ",
        "\x00SELECT 1",
        "SELECT \udcff",
        "SELECT " + "1 + " * 60_000 + "1",
        "SELECT " + "(" * 5000 + "1",
    ],
)
def test_analyze_never_raises(code: Any) -> None:  # Any: not only strings, on purpose
    a = run(code)
    assert a.violations and a.normalized_code == ""


def test_recursion_error_is_a_refusal() -> None:
    a = run("SELECT " + " + ".join(["1"] * 3000) + " FROM orders")
    assert a.violations == [] or {v.code for v in a.violations} <= {"QUERY_TOO_LARGE", "ANALYSIS_FAILED"}


# -- the registry -------------------------------------------------------------------------


def test_every_code_the_analyzer_emits_is_registered() -> None:
    source = "\n".join(p.read_text() for p in Path("sqlmode/analyze").glob("*.py"))
    emitted = set(re.findall(r'violation\(\s*"([A-Z_]+)"', source))
    emitted |= set(re.findall(r'code(?:, message)? = "([A-Z_]+)"', source))
    assert emitted and emitted <= set(VIOLATION_CODES)


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
@pytest.mark.parametrize(
    ("sql", "said"),
    [
        ("UPDATE customers SET ssn = 'x' WHERE id = 1", "written or read in the UPDATE's SET"),
        (
            "INSERT INTO customers (id, name) VALUES (1, 'a') "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.ssn",
            "written or read in ON CONFLICT",
        ),
        ("UPDATE customers SET name = name WHERE id = 1 RETURNING ssn", "read in RETURNING"),
        # a subquery in SET reads in its own SELECT list
        (
            "UPDATE contacts SET rep = (SELECT ssn FROM customers LIMIT 1) WHERE id = 1",
            "read in the SELECT list",
        ),
    ],
)
def test_a_blocked_column_in_a_write_names_the_clause(dialect: str, sql: str, said: str) -> None:
    a = run(sql, dialect, allow_writes=True)
    assert [v.message for v in a.violations] == [
        f"Column `customers.ssn` is blocked by policy and is {said}."
    ]
