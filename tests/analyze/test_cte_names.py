"""A CTE named in another letter case than its definition is still the CTE (analyze/rewrite.py).

Both engines fold unquoted names; sqlglot's scopes match CTE names as written. Without the
respelling, ``FROM monthly`` after ``WITH Monthly AS (...)`` was an unknown table, and a CTE
hiding a stored table of the same name was read as the table.
"""

from __future__ import annotations

import sqlglot

from sqlmode.analyze.rewrite import match_cte_names


def _respelled(sql: str) -> str:
    return match_cte_names(sqlglot.parse_one(sql, read="postgres")).sql("postgres")


def test_an_unquoted_reference_takes_the_ctes_spelling() -> None:
    assert _respelled("WITH Monthly AS (SELECT 1 AS x) SELECT x FROM monthly") == (
        "WITH Monthly AS (SELECT 1 AS x) SELECT x FROM Monthly"
    )
    # A stored table's own name inside another CTE is respelled too: the engines fold it alike.
    assert "FROM Base JOIN" in _respelled(
        "WITH Base AS (SELECT 1 AS id), j AS (SELECT * FROM base JOIN orders ON TRUE) SELECT * FROM j"
    )


def test_quoted_names_and_qualified_tables_keep_their_case() -> None:
    # PostgreSQL keeps the case of a quoted name: "B" and b are two names there.
    for sql in (
        'WITH "B" AS (SELECT 1 AS x) SELECT x FROM b',
        'WITH B AS (SELECT 1 AS x) SELECT x FROM "b"',
        "WITH B AS (SELECT 1 AS x) SELECT x FROM s.b",
    ):
        assert _respelled(sql) == sql


def test_an_inner_with_respells_what_it_hides() -> None:
    out = _respelled(
        "WITH b AS (SELECT 1 AS x) SELECT * FROM (WITH B AS (SELECT 2 AS x) SELECT x FROM b) AS q, b"
    )
    assert out.endswith("SELECT x FROM B) AS q, b"), out
