"""Explanations a business user follows; complexity with its breakdown; risk levels."""

from __future__ import annotations

from typing import Any

import pytest

from sqlmode.analyze import Analyzer
from sqlmode.models import Analysis, RiskLevel
from sqlmode.sample import long_tail_sql
from tests.analyze.conftest import make_settings, sample_snapshot


def run(sql: str, dialect: str = "postgres", **code_mode: Any) -> Analysis:
    return Analyzer(make_settings(dialect, **code_mode)).analyze(sql, sample_snapshot(dialect))


def test_explanation_says_what_is_read_joined_filtered_grouped_ordered_limited() -> None:
    a = run(
        "SELECT c.region, count(*) AS n, sum(o.total) AS revenue FROM customers c "
        "JOIN orders o ON o.customer_id = c.id WHERE o.status = 'completed' AND o.total > 100 "
        "GROUP BY c.region HAVING count(*) > 10 ORDER BY revenue DESC LIMIT 20"
    )
    text = a.explanation
    for phrase in [
        "Reads customers",  # read, with table names instead of aliases
        "joined with orders matching orders.customer_id to customers.id",  # joined on what
        "Keeps only rows where orders.status is 'completed' and orders.total is greater than 100",
        "Groups rows by customers.region and computes the number of rows, the total of orders.total",
        "Keeps only groups where the number of rows is greater than 10",
        "Sorts by revenue descending",
        "Returns at most 20 rows",
    ]:
        assert phrase in text, (phrase, text)
    assert " c." not in text and " o." not in text  # no bare aliases


@pytest.mark.parametrize(
    ("sql", "phrases"),
    [
        (
            "SELECT c.name FROM customers c LEFT JOIN contact"
            "s ct ON ct.customer_id = c.id WHERE ct.id IS NULL",
            ["left-joined with contacts", "contacts.id is empty"],
        ),
        (
            "SELECT name FROM products UNION SELECT name FROM customers",
            ["Combines the results of 2 queries, removing duplicates"],
        ),
        (
            "WITH m AS (SELECT customer_id, sum(total) AS s FROM orders GROUP BY 1) SELECT * FROM m",
            ["First prepares 1 named step", "m: reads orders", "Groups rows by customer_id"],
        ),
        (
            "SELECT DISTINCT ON (customer_id) customer_id, total"
            " FROM orders ORDER BY customer_id, created_at DESC",
            ["Keeps one row per customer_id", "created_at descending"],
        ),
        (
            "SELECT id FROM orders WHERE status IN ('a', 'b') A"
            "ND created_at BETWEEN '2024-01-01' AND '2024-12-31'",
            ["status is one of 'a', 'b'", "created_at is between '2024-01-01' and '2024-12-31'"],
        ),
        (
            "SELECT customer_id, rank() OVER (ORDER BY total DESC) FROM orders",
            ["window functions: rank", "a computed column (rank)"],
        ),
        (
            "SELECT a.id FROM customers a JOIN customers b ON a.region = b.region AND a.id < b.id",
            [
                "customers (as a)",
                "customers (as b)",
                # the conditions beside the key equality are said too
                "matching a.region to b.region, where a.id is less than b.id",
            ],
        ),
        ("SELECT id FROM orders LIMIT 5000", ["Returns at most 1,000 rows", "lowered"]),
        (
            "SELECT count(*) FROM orders",
            ["Computes the number of rows over all matching rows", "Returns 1 column: the number of rows."],
        ),
        (
            "SELECT region, count(*) AS n FROM customers GROUP BY 1",
            ["Returns 2 columns: region, n."],
        ),
        (
            # FILTER is half an aggregate's meaning
            "SELECT status, count(*) FILTER (WHERE total >= 500) AS big FROM orders GROUP BY status",
            ["computes the number of rows where total is at least 500"],
        ),
        (
            "WITH RECURSIVE m(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM m WHERE n < 5) SELECT n FROM m",
            ["(1) m: combines several queries. Then reads m."],
        ),
        (
            "SELECT d.day, count(o.id) AS n FROM (SELECT DATE '2024-01-01' AS day) d "
            "LEFT JOIN orders o ON o.created_at::date = d.day GROUP BY d.day",
            ["left-joined with orders where "],  # one space: the words were run together by two
        ),
    ],
)
def test_explanation_phrases(sql: str, phrases: list[str]) -> None:
    a = run(sql)
    assert a.violations == []
    for phrase in phrases:
        assert phrase in a.explanation, (phrase, a.explanation)


def test_complexity_breakdown_counts_the_parts() -> None:
    a = run(long_tail_sql("postgres"))
    c = a.complexity
    assert a.violations == []
    # tables counts base-table references: orders twice, support_tickets, contacts, customers
    assert (c.ctes, c.tables, c.window_functions) == (6, 5, 4)
    assert c.joins == 6 and c.depth == 2 and c.fields == 11
    assert c.score == a.complexity.model_dump()["score"] and 100 < c.score < 400


@pytest.mark.parametrize(
    ("sql", "code_mode", "risk"),
    [
        ("SELECT id FROM orders", {}, RiskLevel.LOW),
        (
            "SELECT c.region, count(*) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY 1",
            {},
            RiskLevel.LOW,
        ),
        ("LONG_TAIL", {}, RiskLevel.MEDIUM),
        ("UPDATE orders SET status = 'x' WHERE id = 1", {"allow_writes": True}, RiskLevel.HIGH),
        ("DELETE FROM contacts WHERE id = 1", {"allow_deletes": True}, RiskLevel.CRITICAL),
        ("DROP TABLE orders", {}, RiskLevel.CRITICAL),
    ],
)
def test_risk_levels_follow_action_and_complexity(sql: str, code_mode: dict, risk: RiskLevel) -> None:
    sql = long_tail_sql("postgres") if sql == "LONG_TAIL" else sql
    assert run(sql, **code_mode).risk_level == risk


def test_a_heavy_read_is_high_risk() -> None:
    sql = "SELECT " + ", ".join(
        f"(SELECT count(*) FROM orders o{i} WHERE o{i}.total > {i})" for i in range(20)
    )
    a = run(sql)
    assert a.violations == [] and a.complexity.score >= 250 and a.risk_level == RiskLevel.HIGH


def test_duckdb_order_by_all_is_every_column() -> None:
    a = run("SELECT region, count(*) AS n FROM customers GROUP BY ALL ORDER BY ALL DESC", "duckdb")
    assert a.violations == []
    assert "Sorts by every column descending" in a.explanation, a.explanation


# (predicate, its words): sqlglot marks PostgreSQL's `IS NOT NULL` and both engines' `NOT LIKE` with a
# negate flag rather than a NOT node; read without it, the explanation said the opposite.
PREDICATES = [
    ("total IS NOT NULL", "total has a value"),
    ("total IS NULL", "total is empty"),
    ("NOT total IS NULL", "total has a value"),
    ("status NOT LIKE 'c%'", "status does not match the pattern 'c%'"),
    ("status LIKE 'c%'", "status matches the pattern 'c%'"),
    ("status NOT ILIKE 'c%'", "status does not match the pattern 'c%'"),
    ("NOT (total IS NOT NULL)", "not (total has a value)"),
    ("status NOT IN ('a', 'b')", "status is not one of 'a', 'b'"),
    (
        "customer_id NOT IN (SELECT customer_id FROM contacts)",
        "customer_id does not appear in a list computed from contacts",
    ),
]


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
@pytest.mark.parametrize(("predicate", "words"), PREDICATES)
def test_a_negated_predicate_is_said_negated(dialect: str, predicate: str, words: str) -> None:
    a = run(f"SELECT id FROM orders WHERE {predicate}", dialect)
    assert a.violations == []
    assert f"Keeps only rows where {words}." in a.explanation, a.explanation


def test_ordered_set_aggregates_name_their_column_and_repeats_are_said_once() -> None:
    a = run(
        "SELECT status, percentile_cont(0.5) WITHIN GROUP (ORDER BY total) AS m, count(*) AS n, "
        "count(*) * 2 AS n2 FROM orders GROUP BY status"
    )
    assert "computes PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY total), the number of rows." in a.explanation


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
def test_mixed_set_operations_keep_their_grouping_and_an_offset_is_said(dialect: str) -> None:
    # a INTERSECT b EXCEPT c is (a and b in common) minus c; it read as c and b taken from a
    a = run(
        "SELECT customer_id FROM orders INTERSECT SELECT customer_id FROM support_tickets "
        "EXCEPT SELECT customer_id FROM contacts",
        dialect,
    )
    assert a.explanation.startswith(
        "Takes rows of the first query that are not in the others, from the results of 2 queries, "
        "removing duplicates. Query 1: keeps rows common to the results of 2 queries"
    ), a.explanation
    a = run("SELECT id FROM orders ORDER BY id LIMIT 10 OFFSET 5", dialect)
    assert "Returns at most 10 rows, after skipping the first 5 rows." in a.explanation, a.explanation
    a = run("SELECT id FROM orders ORDER BY id LIMIT 5000 OFFSET 20", dialect)
    assert (
        "Returns at most 1,000 rows, after skipping the first 20 rows (the query's own limit" in a.explanation
    )
    a = run("SELECT id FROM orders ORDER BY id LIMIT 1 OFFSET 1", dialect)
    assert "Returns at most 1 row, after skipping the first row." in a.explanation, a.explanation


def test_subqueries_are_explained_and_their_aggregates_stay_theirs() -> None:
    # a scalar subquery's avg() read as if the whole query were aggregated
    a = run(
        "SELECT o.id, (SELECT avg(total) FROM orders o2 WHERE o2.customer_id = o.customer_id) AS cust_avg "
        "FROM orders o"
    )
    assert "over all matching rows" not in a.explanation and "Groups rows" not in a.explanation
    assert "Computes cust_avg with a subquery over orders." in a.explanation, a.explanation
    # a derived table's filter and grouping are the query's too; so is a LATERAL subquery's LIMIT
    a = run(
        "SELECT s.customer_id, s.n FROM (SELECT customer_id, count(*) AS n FROM support_tickets "
        "WHERE priority = 'high' GROUP BY customer_id) s WHERE s.n > 2"
    )
    assert "The subquery s: reads support_tickets. Keeps only rows where priority is 'high'." in a.explanation
    assert "Then reads s (a subquery over support_tickets). Keeps only rows where s.n is greater than 2." in (
        a.explanation
    ), a.explanation
    a = run(
        "SELECT c.id, t.total FROM customers c CROSS JOIN LATERAL "
        "(SELECT total FROM orders o WHERE o.customer_id = c.id ORDER BY total DESC LIMIT 3) t"
    )
    assert "Keeps the first 3 rows." in a.explanation, a.explanation
    # a step is said whole, not cut after three sentences
    a = run(
        "WITH m AS (SELECT customer_id, count(*) AS n FROM orders WHERE status = 'completed' "
        "GROUP BY customer_id HAVING count(*) > 3 ORDER BY n DESC LIMIT 10) SELECT * FROM m"
    )
    assert "Keeps only groups where the number of rows is greater than 3" in a.explanation, a.explanation
    assert "Keeps the first 10 rows." in a.explanation


def test_an_except_nested_on_its_right_stays_its_own_query() -> None:
    import sqlglot
    from sqlglot import exp

    from sqlmode.analyze.explain import explain

    one, two, three = (sqlglot.parse_one(f"SELECT {n}", read="postgres") for n in (1, 2, 3))
    # a - (b - c), built without the parentheses sqlglot's parser would keep as a subquery
    tree = exp.Except(
        this=one, expression=exp.Except(this=two, expression=three, distinct=True), distinct=True
    )
    text = explain(tree, None, "postgres")
    assert text.startswith(
        "Takes rows of the first query that are not in the others, from the results of 2 queries"
    )
    assert "Query 2: takes rows of the first query that are not in the others" in text, text


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
def test_a_star_is_not_counted_as_one_column_nor_sorted_by(dialect: str) -> None:
    a = run("SELECT * FROM orders ORDER BY 1 DESC", dialect)
    assert "Sorts by output column 1 descending." in a.explanation and "Sorts by *" not in a.explanation
    a = run("SELECT o.* FROM orders o ORDER BY 3", dialect)
    assert "Returns every column of orders." in a.explanation and "1 column" not in a.explanation
    a = run("SELECT id, * FROM orders ORDER BY 1, 2", dialect)
    assert "Sorts by id ascending, output column 2 ascending." in a.explanation, a.explanation
    assert "Returns id, every column of the sources." in a.explanation
    # a VALUES list, with its own ORDER BY and LIMIT (moved onto the wrapping SELECT)
    a = run("VALUES (3, 'x'), (1, 'y') ORDER BY 1 DESC LIMIT 2", dialect)
    assert a.violations == []
    assert a.explanation.startswith("Reads 2 literal rows (VALUES). Sorts by output column 1 descending.")


def test_a_pivot_cte_and_an_aliased_join_are_said_as_what_they_are() -> None:
    cte = run(
        "WITH p AS (PIVOT orders ON status IN ('completed', 'pending') USING count(*) GROUP BY customer_id) "
        "SELECT p.customer_id, p.completed FROM p ORDER BY 2 DESC LIMIT 3",
        "duckdb",
    )
    assert cte.ok, cte.violations
    assert (
        "(1) p: pivots orders: one column per status value ('completed', 'pending'), one row per customer_id"
        in (cte.explanation)
    )
    assert "Returns 2 columns: p.customer_id, p.completed" in cte.explanation
    picked = run(
        "SELECT q.region FROM (PIVOT customers ON segment IN ('SMB') USING count(*) GROUP BY region) q",
        "duckdb",
    )
    assert picked.ok and "Reads q (a pivot of customers)" in picked.explanation
    assert "Returns 1 column: q.region" in picked.explanation  # not the whole pivot's description
    for dialect in ("duckdb", "postgres"):
        joined = run(
            "SELECT x.name, x.total FROM (customers c JOIN orders o ON o.customer_id = c.id) x", dialect
        )
        assert joined.ok and "Reads x (the join of customers, orders)" in joined.explanation, (
            joined.explanation
        )
