"""Real analytic SQL passes with the default limits (issue 14): what used to be refused.

Each class of false rejection has its accepted shapes and, beside them, the neighbouring
shape that must stay refused, in both dialects.
"""

from __future__ import annotations

from typing import Any

import pytest

from sqlmode.analyze import Analyzer
from sqlmode.analyze.foreign import FUNCTIONS as FOREIGN_FUNCTIONS
from sqlmode.models import Analysis
from tests.analyze.conftest import make_settings, sample_snapshot

DIALECTS = ["duckdb", "postgres"]


def run(sql: str, dialect: str, **code_mode: Any) -> Analysis:
    return Analyzer(make_settings(dialect, **code_mode)).analyze(sql, sample_snapshot(dialect))


def codes(analysis: Analysis) -> list[str]:
    return sorted(v.code for v in analysis.violations)


def codes_of(violations: Any) -> list[str]:
    return sorted(v.code for v in violations)


# -- what follows the one statement ---------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM products; -- done",
        "SELECT count(*) FROM products;;",
        "SELECT count(*) FROM products; ; /* that's all */ ;",
        "SELECT count(*) FROM products;\n-- the count of products\n",
    ],
)
def test_comments_and_empty_statements_after_the_statement(dialect: str, sql: str) -> None:
    a = run(sql, dialect)
    assert a.violations == []
    assert a.normalized_code == "SELECT COUNT(*) FROM products LIMIT 1001"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM products; -- done\nDELETE FROM orders",
        "SELECT count(*) FROM products; /* done */ SELECT 1",
        "SELECT 1;; SELECT 2",
    ],
)
def test_a_second_real_statement_is_still_refused(dialect: str, sql: str) -> None:
    assert "MULTIPLE_STATEMENTS" in codes(run(sql, dialect))


# -- CROSS JOIN ------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_explicit_cross_join_is_accepted_and_counted(dialect: str) -> None:
    a = run("SELECT p.name, c.region FROM products p CROSS JOIN customers c", dialect)
    assert a.violations == []
    assert a.complexity.joins == 1 and a.complexity.tables == 2
    assert "CROSS JOIN customers AS c" in a.normalized_code


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT p.name, c.region FROM products p, customers c",
        # the CROSS JOIN binds to orders only: products and orders stay a comma join
        "SELECT p.name FROM products p, orders o CROSS JOIN customers c",
        "SELECT p.name FROM products p CROSS JOIN customers c, orders o",
    ],
)
def test_comma_join_without_condition_is_still_refused(dialect: str, sql: str) -> None:
    assert codes(run(sql, dialect)) == ["CARTESIAN_PRODUCT"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_comma_join_with_a_provably_single_row_side_is_accepted(dialect: str) -> None:
    sql = (
        "SELECT p.name, p.price / m.top AS share FROM products p, (SELECT max(price) AS top FROM products) m"
    )
    assert run(sql, dialect).violations == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_cross_product_with_an_unaliased_subquery_names_it(dialect: str) -> None:
    found = run("SELECT o.id FROM orders o JOIN (SELECT id FROM customers) ON true", dialect).violations
    assert [v.code for v in found] == ["CARTESIAN_PRODUCT"]
    assert found[0].message.startswith("orders (o) and an unnamed subquery are combined")


# -- joins per query block ---------------------------------------------------------------------


def _chain(n: int, alias: str) -> str:
    """A SELECT joining n + 1 copies of orders."""
    joins = " ".join(f"JOIN orders {alias}{i} ON {alias}{i}.id = {alias}{i - 1}.id" for i in range(1, n + 1))
    return f"SELECT {alias}0.id FROM orders {alias}0 {joins}"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_joins_are_limited_per_block_not_per_query(dialect: str) -> None:
    # 3 CTEs with 6 joins each: 18 joins in all, at most 6 in one SELECT
    sql = (
        f"WITH a AS ({_chain(6, 'a')}), b AS ({_chain(6, 'b')}), c AS ({_chain(6, 'c')}) "
        "SELECT count(*) FROM a JOIN b ON b.id = a.id JOIN c ON c.id = a.id"
    )
    a = run(sql, dialect)
    assert a.violations == []
    assert a.complexity.joins == 20
    assert a.max_block_joins == 6
    assert a.complexity.model_dump()["max_block_joins"] == 6


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("template", "label"),
    [
        ("WITH sales AS ({q}) SELECT count(*) FROM sales", "The CTE `sales`"),
        ("SELECT count(*) FROM ({q}) AS s", "The subquery `s`"),
        ("SELECT id FROM orders WHERE id IN ({q})", "A subquery in WHERE of the main query"),
        ("{q}", "The main query"),
    ],
)
def test_a_heavy_block_is_named_with_a_concrete_split(dialect: str, template: str, label: str) -> None:
    a = run(template.format(q=_chain(9, "o")), dialect)
    assert codes(a) == ["TOO_MANY_JOINS"]
    (v,) = a.violations
    assert (
        v.message
        == f"{label} joins 10 tables (9 joins); at most 8 joins per query block (code_mode.max_joins)."
    )
    assert "join orders o0, orders o1 in a CTE of its own" in v.hint
    assert "then join that CTE with orders o2, orders o3" in v.hint and "orders o9." in v.hint


@pytest.mark.parametrize("dialect", DIALECTS)
def test_max_joins_still_follows_config(dialect: str) -> None:
    sql = f"WITH a AS ({_chain(3, 'a')}) SELECT count(*) FROM a"
    assert codes(run(sql, dialect, max_joins=2)) == ["TOO_MANY_JOINS"]
    assert run(sql, dialect, max_joins=3).violations == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_whole_query_bound_names_its_parts_and_the_heaviest_part(dialect: str) -> None:
    sql = f"WITH big AS ({_chain(5, 'b')}) SELECT o.id FROM orders o WHERE o.id IN (SELECT id FROM big)"
    a = run(sql, dialect, max_complexity=50)
    assert codes(a) == ["TOO_COMPLEX"]
    (v,) = a.violations
    assert v.message.startswith(
        f"The complexity score is {a.complexity.score}; at most 50 (code_mode.max_complexity): "
    )
    assert "joins 5 (40)" in v.message
    assert v.hint.startswith("The heaviest part is the CTE `big` (6 table reads, 5 joins).")


# -- ordered aggregates ----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "reads"),
    [
        (
            "SELECT customer_id, string_agg(status, ', ' ORDER BY created_at) FROM orders GROUP BY 1",
            "status",
        ),
        (
            "SELECT customer_id, string_agg(status, ', ' ORDER BY created_at DESC) "
            "FILTER (WHERE total > 1) FROM orders GROUP BY 1",
            "status total",
        ),
        ("SELECT customer_id, array_agg(total ORDER BY created_at) FROM orders GROUP BY 1", "total"),
    ],
)
def test_ordered_aggregates_pass_the_round_trip(dialect: str, sql: str, reads: str) -> None:
    a = run(sql, dialect)
    assert a.violations == []
    assert "ORDER BY created_at" in a.normalized_code
    assert a.columns == sorted(f"orders.{c}" for c in ["created_at", "customer_id", *reads.split()])


# -- DuckDB PIVOT ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "PIVOT orders ON status USING sum(total)",
        "SELECT * FROM (PIVOT orders ON status USING sum(total) GROUP BY customer_id) p",
    ],
)
def test_pivot_without_in_list_says_what_to_write_instead(sql: str) -> None:
    a = run(sql, "duckdb")
    assert codes(a) == ["UNSUPPORTED_SYNTAX"]
    (v,) = a.violations
    assert "PIVOT ... ON status without an IN list" in v.message
    assert v.hint.startswith("First ask for the values: SELECT DISTINCT status FROM orders; then list them:")


def test_pivot_without_in_list_on_a_blocked_column_is_a_blocked_read() -> None:
    a = run("SELECT * FROM (PIVOT customers ON ssn USING count(*)) p", "duckdb")
    assert "COLUMN_BLOCKED" in codes(a) and "PARSER_DISAGREEMENT" not in codes(a)
    # only the blocked read is said: the PIVOT's hint would ask for `SELECT DISTINCT ssn` first
    for sql in (
        "PIVOT customers ON ssn USING count(*) GROUP BY region",
        "PIVOT credentials ON user_id USING count(*)",
    ):
        found = run(sql, "duckdb").violations
        assert codes_of(found) in (["COLUMN_BLOCKED"], ["TABLE_BLOCKED"]), found
        assert not any("SELECT DISTINCT" in v.hint for v in found)


@pytest.mark.parametrize(
    "sql",
    [
        "PIVOT orders ON status IN ('completed', 'pending') USING sum(total) GROUP BY customer_id",
        "SELECT * FROM (PIVOT orders ON status IN ('completed', 'pending') USING count(*)) p",
    ],
)
def test_pivot_with_in_list_is_accepted_anywhere(sql: str) -> None:
    a = run(sql, "duckdb")
    assert a.violations == []
    assert "IN ('completed', 'pending')" in a.normalized_code


# -- recursive CTE column lists -----------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_recursive_cte_column_list_names_the_recursive_reference(dialect: str) -> None:
    sql = (
        "WITH RECURSIVE chain(id, depth) AS (SELECT id, 1 FROM customers WHERE id = 1 "
        "UNION ALL SELECT c.id, ch.depth + 1 FROM customers c JOIN chain ch ON c.id = ch.id + 1 "
        "WHERE ch.depth < 5) SELECT c.id, c.depth FROM chain c"
    )
    a = run(sql, dialect)
    assert a.violations == []
    assert a.columns == ["customers.id"]
    wrong = run(sql.replace("ch.depth + 1", "ch.level + 1"), dialect)
    assert codes(wrong) == ["UNKNOWN_COLUMN"]
    assert "Did you mean depth, id?" in wrong.violations[0].hint


# -- where a blocked column inside an aggregate is read ------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "where"),
    [
        ("SELECT string_agg(name, ', ' ORDER BY ssn) FROM customers", "read in the SELECT list"),
        ("SELECT string_agg(ssn, ', ' ORDER BY name) FROM customers", "read in the SELECT list"),
        (
            "SELECT region FROM customers GROUP BY region HAVING string_agg(ssn, ',' ORDER BY name) <> ''",
            "read in HAVING",
        ),
        ("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ssn) FROM customers", "read in the SELECT list"),
        ("SELECT name FROM customers ORDER BY ssn", "read in ORDER BY"),
    ],
)
def test_blocked_column_in_an_ordered_aggregate_is_reported_where_the_aggregate_is(
    dialect: str, sql: str, where: str
) -> None:
    a = run(sql, dialect)
    assert [(v.code, v.message) for v in a.violations] == [
        ("COLUMN_BLOCKED", f"Column `customers.ssn` is blocked by policy and is {where}.")
    ]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_too_deep_names_the_deepest_block(dialect: str) -> None:
    sql = "SELECT id FROM orders"
    for alias in "abcde":
        sql = f"SELECT * FROM ({sql}) {alias}"
    a = run(sql, dialect, cedar_policies={"max_depth": 3})
    assert codes(a) == ["TOO_DEEP"]
    assert a.violations[0].hint.startswith("The most deeply nested part is the subquery `a`. Define")


def test_star_of_a_struct_column_expands_on_duckdb_and_says_it_is_a_column_elsewhere() -> None:
    # DuckDB expands a struct column's fields with `s.*` (EngineTraits.struct_star): `s` is read whole.
    a = run("SELECT s.* FROM (SELECT {'a': 1, 'b': 'x'} AS s)", "duckdb")
    assert a.ok and a.violations == []
    blocked = run("SELECT c.* FROM (SELECT struct_pack(s := ssn) AS c FROM customers)", "duckdb")
    assert codes(blocked) == ["COLUMN_BLOCKED"]
    # PostgreSQL reads `s.*` as a source only: the hint says `s` is a column here.
    pg = run("SELECT s.* FROM (SELECT ROW(1, 'x') AS s) t", "postgres")
    assert codes(pg) == ["UNKNOWN_COLUMN"]
    assert "`s` is a column here" in pg.violations[0].hint and "s.field" in pg.violations[0].hint
    # a star of a table that is not there still suggests the names in scope
    for dialect in DIALECTS:
        other = run("SELECT x.* FROM customers c", dialect)
        assert codes(other) == ["UNKNOWN_COLUMN"]
        assert "is a column here" not in (other.violations[0].hint or "")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_generator_with_bounds_from_the_data_says_how_to_get_literal_ones(dialect: str) -> None:
    sql = (
        "SELECT d FROM generate_series((SELECT min(created_at) FROM orders), "
        "(SELECT max(created_at) FROM orders), INTERVAL '1 month') AS g(d)"
    )
    a = run(sql, dialect)
    assert codes(a) == ["FUNCTION_ARGUMENT_LIMIT"]
    assert "query them first" in a.violations[0].message and "DATE '" in a.violations[0].message


@pytest.mark.parametrize("dialect", DIALECTS)
def test_sql_sent_in_a_markdown_fence_or_after_a_bom_is_read(dialect: str) -> None:
    plain = run("SELECT status, count(*) AS n FROM orders GROUP BY status", dialect)
    for sent in (
        "```sql\nSELECT status, count(*) AS n FROM orders GROUP BY status\n```",
        "  ```\r\nSELECT status, count(*) AS n FROM orders GROUP BY status;\r\n```\n",
        "\ufeffSELECT status, count(*) AS n FROM orders GROUP BY status",
    ):
        a = run(sent, dialect)
        assert a.violations == [] and a.normalized_code == plain.normalized_code, sent
        assert a.code == sent  # what was sent is what the analysis (and the audit) records
    # only a fence around the whole text: two blocks, or a fence inside, stay syntax errors
    assert codes(run("```sql\nSELECT 1\n```\n```sql\nSELECT 2\n```", dialect)) == ["PARSE_ERROR"]
    assert run("SELECT '```' AS x", dialect).violations == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_typographic_quotes_get_a_hint_about_straight_ones(dialect: str) -> None:
    a = run("SELECT id FROM orders WHERE status = \u2018completed\u2019", dialect)
    assert "UNKNOWN_COLUMN" in codes(a)
    hint = next(v.hint for v in a.violations if v.code == "UNKNOWN_COLUMN")
    assert "curly" in hint and "('completed')" in hint, hint


# -- ORDER BY a result column's unaliased name (PostgreSQL) ------------------------------------


def test_postgres_order_by_may_name_an_unaliased_result_column() -> None:
    a = run("SELECT status, count(*), sum(total) FROM orders GROUP BY 1 ORDER BY count DESC, sum", "postgres")
    assert a.violations == []
    # the item gets the very name PostgreSQL gives it, so the result's columns are unchanged
    assert "COUNT(*) AS count" in a.normalized_code and "SUM(total) AS sum" in a.normalized_code
    # two items of that name: PostgreSQL calls it ambiguous; still refused here
    twice = run("SELECT count(*), count(DISTINCT status) FROM orders ORDER BY count", "postgres")
    assert codes(twice) == ["UNKNOWN_COLUMN"]
    # a column of the FROM is the column, not the result's name (and a blocked one stays blocked)
    assert codes(run("SELECT region, max(ssn) FROM customers GROUP BY 1 ORDER BY max", "postgres")) == [
        "COLUMN_BLOCKED"
    ]


def test_duckdb_has_no_such_rule() -> None:
    # DuckDB names count(*) "count_star()" and rejects ORDER BY count: the analyzer does too
    assert codes(run("SELECT status, count(*) FROM orders GROUP BY 1 ORDER BY count DESC", "duckdb")) == [
        "UNKNOWN_COLUMN"
    ]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "word"),
    [
        ("SELECT DATEADD(day, 7, created_at) FROM orders", "day"),
        ("SELECT DATEPART(month, created_at) AS m FROM orders", "month"),
    ],
)
def test_another_dialects_date_part_gets_this_databases_date_arithmetic(
    dialect: str, sql: str, word: str
) -> None:
    found = [v for v in run(sql, dialect).violations if v.code == "UNKNOWN_COLUMN"]
    assert len(found) == 1 and f"`{word}` is read as a column name" in found[0].hint
    # ...followed by how this engine writes it, not by "did you mean created_at"
    notes = "interval '14 days'" if dialect == "postgres" else "date_diff('day', a, b)"
    assert notes in found[0].hint and "Did you mean" not in found[0].hint
    # a plain typo keeps its suggestions
    assert "Did you mean" in run("SELECT dayz FROM orders", dialect).violations[0].hint


@pytest.mark.parametrize("dialect", DIALECTS)
def test_text_in_double_quotes_gets_a_hint_about_single_quotes(dialect: str) -> None:
    found = run("SELECT id FROM orders WHERE status IN (\"Completed\", 'shipped')", dialect).violations
    assert [v.code for v in found] == ["UNKNOWN_COLUMN"]
    assert "write text in single quotes ('Completed')" in found[0].hint
    # a double-quoted name in the select list is a name: a misspelt column keeps its suggestions
    assert "Did you mean customer_id" in run('SELECT "custmer_id" FROM orders', dialect).violations[0].hint


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT `status`, count(*) FROM orders GROUP BY 1", "not in backticks"),
        ("SELECT TOP 10 id FROM orders", "LIMIT n instead"),
        ("SELECT id FROM orders ORDER BY id LIMIT 10, 20", "LIMIT count OFFSET offset"),
        ("SELECT id FROM orders;\n\nThis query lists the ids of all orders.", "only the one SQL statement"),
    ],
)
def test_another_dialects_syntax_gets_what_to_write_instead(dialect: str, sql: str, says: str) -> None:
    (v,) = run(sql, dialect).violations
    assert v.code == "PARSE_ERROR" and says in v.hint
    # a plain syntax error keeps the plain hint
    (plain,) = run("SELECT id FROM orders WHERE", dialect).violations
    assert "backticks" not in plain.hint and "LIMIT" not in plain.hint


# -- other dialects' spellings (analyze/foreign.py) -------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT status, count(*) FROM orders GROUP BY status WITH ROLLUP", "GROUP BY ROLLUP (a, b)"),
        ("SELECT GROUP_CONCAT(DISTINCT status SEPARATOR ', ') FROM orders", "string_agg(x, ', ')"),
        ("SELECT CONVERT(varchar, created_at, 23) FROM orders", "CAST(value AS type)"),
    ],
)
def test_more_of_another_dialects_syntax_gets_what_to_write_instead(
    dialect: str, sql: str, says: str
) -> None:
    (v,) = run(sql, dialect).violations
    assert v.code == "PARSE_ERROR" and says in v.hint
    assert "accepts this syntax" not in v.message  # CONVERT(varchar, x) is no valid query here


def test_postgres_syntax_errors_at_duckdb_spellings_say_what_to_write() -> None:
    (v,) = run("SELECT id FROM orders QUALIFY row_number() OVER (ORDER BY id) = 1", "postgres").violations
    assert v.code == "PARSE_ERROR" and "no QUALIFY" in v.hint
    (v,) = run("SELECT now() - INTERVAL 7 DAY", "postgres").violations
    assert v.code == "PARSE_ERROR" and "INTERVAL '7 days'" in v.hint
    # On DuckDB both are its own SQL: a syntax error elsewhere in the text is not blamed on them.
    assert run("SELECT id FROM orders QUALIFY row_number() OVER (ORDER BY id) = 1", "duckdb").ok
    assert run("SELECT now() - INTERVAL 7 DAY", "duckdb").ok
    (v,) = run("SELECT now() - INTERVAL 7 DAY FROM orders WHERE", "duckdb").violations
    (w,) = run("SELECT id FROM orders WHERE QUALIFY row_number() OVER (ORDER BY id) = 1", "duckdb").violations
    assert "INTERVAL '7 days'" not in v.hint and "QUALIFY" not in w.hint


def test_an_ordered_aggregate_written_within_group_says_where_the_order_goes() -> None:
    (v,) = run(
        "SELECT string_agg(status, ',') WITHIN GROUP (ORDER BY status) FROM orders", "duckdb"
    ).violations
    assert v.code == "PARSE_ERROR" and "string_agg(x, ', ' ORDER BY x)" in v.hint
    # PostgreSQL's rendering puts the ORDER BY inside: accepted there
    assert run("SELECT string_agg(status, ',') WITHIN GROUP (ORDER BY status) FROM orders", "postgres").ok


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "whose", "says"),
    [
        ("SELECT GETDATE()", "`getdate` is SQL Server's", "now() or current_timestamp"),
        ("SELECT ISNULL(closed_at, opened_at) FROM support_tickets", "`isnull` is SQL Server's", "coalesce"),
        ("SELECT TOP (5) id FROM orders ORDER BY total DESC", "`TOP n` is SQL Server's", "LIMIT n"),
        (
            "SELECT TIMESTAMPDIFF(DAY, created_at, now()) FROM orders",
            "`timestampdiff` is MySQL's",
            "difference",
        ),
        ("SELECT SAFE_DIVIDE(total, 2) FROM orders", "`safe_divide` is BigQuery's", "NULLIF(b, 0)"),
    ],
)
def test_another_dialects_function_says_whose_it_is_and_what_to_write(
    dialect: str, sql: str, whose: str, says: str
) -> None:
    found = [v for v in run(sql, dialect).violations if v.code == "FUNCTION_NOT_ALLOWED"]
    assert len(found) == 1 and whose in found[0].message and says in found[0].hint
    notes = "interval '14 days'" if dialect == "postgres" else "date_diff('day', a, b)"
    assert notes in found[0].hint  # ...then this engine's own spellings
    assert "side effects" not in found[0].message
    # a function nobody has keeps the allowlist's wording
    (plain,) = run("SELECT frobnicate(total) FROM orders", dialect).violations
    assert plain.code == "FUNCTION_NOT_ALLOWED" and "not on the allowlist" in plain.message


@pytest.mark.parametrize("dialect", DIALECTS)
def test_timestampdiffs_date_part_is_named_as_another_dialects(dialect: str) -> None:
    found = [v for v in run("SELECT TIMESTAMPDIFF(DAY, created_at, now()) FROM orders", dialect).violations]
    (unknown,) = [v for v in found if v.code == "UNKNOWN_COLUMN"]
    assert "`day` is read as a column name" in unknown.hint and "Did you mean" not in unknown.hint


@pytest.mark.parametrize("dialect", DIALECTS)
def test_oracles_rownum_and_dual_say_what_to_write(dialect: str) -> None:
    (v,) = run("SELECT id FROM orders WHERE ROWNUM <= 5", dialect).violations
    assert v.code == "UNKNOWN_COLUMN" and "LIMIT n" in v.hint and "ROWNUM is Oracle's" in v.hint
    (v,) = run("SELECT 1 FROM dual", dialect).violations
    assert v.code == "UNKNOWN_TABLE" and "no FROM clause" in v.hint
    # a table that is merely misspelt keeps its suggestions
    (v,) = run("SELECT 1 FROM ordrs", dialect).violations
    assert "Did you mean orders" in v.hint


@pytest.mark.parametrize("name", sorted(FOREIGN_FUNCTIONS))
def test_every_foreign_function_row_is_refused_with_its_hint_somewhere(name: str) -> None:
    """No dead rows: each name reaches the allowlist's refusal on at least one engine (sqlglot
    translates many other-dialect calls into this engine's own, which then pass)."""
    shapes = ("(created_at)", "(created_at, 1)", "(1, created_at, created_at)")
    said = [
        v.message
        for dialect in DIALECTS
        for shape in shapes
        for v in run(f"SELECT {name}{shape} FROM orders", dialect).violations
        if v.code == "FUNCTION_NOT_ALLOWED"
    ]
    assert any("'s, not" in m for m in said), said


def test_postgres_exists_over_a_select_without_columns_is_accepted() -> None:
    """`EXISTS (SELECT FROM t WHERE ...)` is PostgreSQL's idiom; a SELECT without columns elsewhere
    stays refused, and a blocked read inside the idiom is still a blocked read."""
    sql = (
        "SELECT p.name FROM products p WHERE NOT EXISTS (SELECT FROM order_items i WHERE i.product_id = p.id)"
    )
    a = run(sql, "postgres")
    assert a.ok and "no matching row exists in order_items" in a.explanation
    assert codes(run("SELECT FROM orders", "postgres")) == ["UNSUPPORTED_SYNTAX"]
    assert codes(run("SELECT 1 WHERE EXISTS (SELECT FROM customers WHERE ssn LIKE '1%')", "postgres")) == [
        "COLUMN_BLOCKED"
    ]
    assert codes(run("SELECT 1 WHERE EXISTS (SELECT FROM credentials)", "postgres")) == ["TABLE_BLOCKED"]
    # DuckDB's parser wants a select list: the hint says how to write the same test
    (v,) = run(sql, "duckdb").violations
    assert v.code == "PARSE_ERROR" and "EXISTS (SELECT 1 FROM t WHERE ...)" in v.hint


# -- DuckDB's SUMMARIZE: a profile of data, not metadata ---------------------------------------


@pytest.mark.parametrize(
    "sql", ["SUMMARIZE orders", "SELECT * FROM (SUMMARIZE SELECT total FROM orders)", "SUMMARIZE customers"]
)
def test_summarize_is_refused_with_the_aggregates_to_write_instead(sql: str) -> None:
    a = run(sql, "duckdb")
    assert codes(a) == ["INTROSPECTION_BLOCKED"] and not a.normalized_code
    (v,) = a.violations
    assert "profiles every column" in v.message and "metadata" not in v.message
    assert "min(x), max(x), avg(x), count(DISTINCT x)" in (v.hint or "")
    assert "describe_schema" not in (v.hint or "")


# -- sqlglot's parser breaking on malformed text ---------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT a -> FROM customers",  # a TypeError in sqlglot's JSON-arrow builder
        "SELECT s.* FROM (SELECT unnest([{'k': 1, : 'a'}, {'k': JOIN, 'v': 'b'}]) AS s) ORDER BY 1",
    ],
)
def test_malformed_text_that_breaks_sqlglot_is_a_syntax_error(dialect: str, sql: str) -> None:
    # sqlglot raised TypeError / AttributeError instead of its ParseError: the refusal said the
    # analyzer itself failed ("logged for the operator"), which no model can act on.
    a = run(sql, dialect)
    assert codes(a) == ["PARSE_ERROR"], a.violations
    message = a.violations[0].message
    assert "analyzer failed" not in message and "syntax error" in message
    assert "at or near" in message or "at `" in message  # where: sqlglot's words, else the engine's


def test_a_pivot_grouping_by_a_blocked_column_says_how_to_pivot_instead() -> None:
    (v,) = run("PIVOT customers ON region IN ('EMEA') USING count(*)", "duckdb").violations
    assert v.code == "COLUMN_BLOCKED" and "ssn" not in v.message + v.hint
    assert v.hint.startswith("Pivot a subquery of the columns you need, or name the columns to group by")
    fixed = run("PIVOT customers ON region IN ('EMEA') USING count(*) GROUP BY segment", "duckdb")
    assert fixed.ok, fixed.violations
