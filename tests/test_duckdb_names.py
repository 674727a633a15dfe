"""DuckDB names an unaliased result column after its parser's print of the item as written; the
rendering that runs keeps those names (engines/_duckdb_names.py, analyze/names.py). The legit
sweep (tests/analyze/test_legit_run.py) checks whole queries against DuckDB's own names; these
check how the two select lists are paired."""

from __future__ import annotations

import duckdb
import pytest

from sqlmode.engines._duckdb_names import select_items, written_names


def _texts(sql: str) -> list[str] | None:
    items = select_items(sql)
    return None if items is None else [" ".join(t[1] for t in item) for item in items]


def test_the_leftmost_select_list_is_split_at_its_own_depth() -> None:
    sql = "WITH t AS (SELECT 1 AS a, 2 AS b) SELECT DISTINCT ON (a) a, f(a, b), [1, 2][1] /* , */ FROM t"
    assert _texts(sql) == ["a", "f ( a , b )", "[ 1 , 2 ] [ 1 ]"]
    assert _texts("FROM t SELECT x, y ORDER BY 1") == ["x", "y"]
    assert _texts("SELECT a FROM t UNION SELECT b FROM u") == ["a"]
    # a parenthesized first operand, or no SELECT at all: not paired, names are left alone
    assert select_items("(SELECT a FROM t) UNION (SELECT b FROM u)") is None
    assert select_items("PIVOT t ON a USING count(*)") is None


@pytest.mark.parametrize(
    ("written", "rendered", "expected"),
    [
        # the same tokens (key words and function names in any case): the same names, no alias
        (
            "SELECT count(*), sum(total) FROM orders",
            "SELECT COUNT(*), SUM(total) FROM orders LIMIT 1001",
            [None, None],
        ),
        # a renamed call and a changed constant: DuckDB's own names for the written items
        (
            "SELECT len(name), date_trunc('month', ts), max(x) FROM t",
            "SELECT LENGTH(name), DATE_TRUNC('MONTH', ts), MAX(x) FROM t",
            ['len("name")', "date_trunc('month', ts)", None],
        ),
        # a bare word stays unaliased: as an alias, the query's own words would resolve to it
        ("SELECT current_date FROM t", "SELECT CURRENT_DATE FROM t", [None]),
        # a star or COLUMNS(...) may stand for several columns: never aliased
        ("SELECT COLUMNS('a|b') FROM t", "SELECT COLUMNS('A|B') FROM t", [None]),
        ("SELECT t.*, * EXCLUDE (a) FROM t", "SELECT T.*, * EXCLUDE (A) FROM t", [None, None]),
        # ...but a multiplication is no star
        (
            "SELECT [x * 2 FOR x IN list(y)] FROM t",
            "SELECT [x * 2 FOR x IN ARRAY_AGG(y)] FROM t",
            ["list_apply(list(y), (lambda x: (x * 2)))"],
        ),
    ],
)
def test_only_items_spelled_otherwise_get_the_written_name(
    written: str, rendered: str, expected: list[str | None]
) -> None:
    assert written_names(written, rendered) == expected


def test_the_names_are_duckdbs_own() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (name VARCHAR, ts TIMESTAMP, x INT)")
    written = "SELECT len(name), date_trunc('month', ts), list(x), string_agg(name, ',') FROM t GROUP BY ALL"
    rendered = (
        "SELECT LENGTH(name), DATE_TRUNC('MONTH', ts), ARRAY_AGG(x), LISTAGG(name, ',') FROM t GROUP BY ALL"
    )
    names = written_names(written, rendered)
    assert names == con.sql(written).columns
    assert con.sql(rendered).columns != names  # the rendering alone is named otherwise


def test_lists_that_cannot_be_paired_give_no_names() -> None:
    assert written_names("SELECT a, b FROM t", "SELECT a FROM t") is None
    # DuckDB's parser cannot print the written item: it keeps the rendering's name
    assert written_names("SELECT 'unterminated FROM t", "SELECT 1") == [None]
