"""PostgreSQL's written-out star (analyze/rewrite.py: ``spell_out_stars``), without a database.

The service tests (tests/confirm/test_lazy_stars.py) run the written-out queries; these pin what
the rewriting writes: names quoted as the engine must read them, the FROM item's own name as the
qualifier, and the normalized code's own analysis reading exactly the same columns.
"""

from __future__ import annotations

import pytest
from sqlglot import exp, parse_one

from sqlmode.analyze import Analyzer
from sqlmode.config import settings_from_dict
from sqlmode.schema.snapshot import ColumnInfo, SchemaSnapshot, TableInfo
from tests.narrow import as_dialect

COLUMNS = ("id", "Full Name", "select", "Region", "ssn")


def _analyzer(dialect: str) -> tuple[Analyzer, SchemaSnapshot]:
    url = {"duckdb": "duckdb:///unused.duckdb", "postgres": "postgresql://reader@localhost:5432/w"}[dialect]
    settings = settings_from_dict(
        {"database": {"url": url}, "code_mode": {"blocked_fields": ["people.ssn"], "max_rows": 100}}
    )
    table = TableInfo(name="people", columns=tuple(ColumnInfo(c, "VARCHAR") for c in COLUMNS))
    snapshot = SchemaSnapshot.build(as_dialect(dialect), "w", [table], blocked_fields=["people.ssn"])
    return Analyzer(settings), snapshot


def test_written_out_names_are_quoted_as_the_engine_reads_them() -> None:
    analyzer, snapshot = _analyzer("postgres")
    code = (
        'SELECT p."Full Name", p."select" FROM (SELECT * FROM people WHERE "Region" = \'EMEA\') p '
        "WHERE EXISTS (SELECT * FROM people q WHERE q.id = p.id)"
    )
    a = analyzer.analyze(code, snapshot)
    assert a.violations == [], a.violations
    tree = parse_one(a.normalized_code, read="postgres")
    stars = [s for s in tree.find_all(exp.Star)]
    assert stars == [], a.normalized_code
    inner = tree.find(exp.Subquery)
    assert inner is not None
    # The columns the query reads, in the table's order, qualified by the FROM item's name.
    assert inner.this.sql("postgres") == (
        'SELECT people.id, people."Full Name", people."select", people."Region" FROM people '
        "WHERE \"Region\" = 'EMEA'"
    )
    # Per table: a column the query reads anywhere is written wherever the table's star stood.
    assert 'EXISTS(SELECT q.id, q."Full Name", q."select", q."Region" FROM people AS q' in a.normalized_code
    again = analyzer.analyze(a.normalized_code, snapshot)
    assert again.violations == [] and again.columns == a.columns
    assert "people.ssn" not in a.normalized_code.lower()


def test_a_star_nothing_is_read_through_becomes_a_constant() -> None:
    analyzer, snapshot = _analyzer("postgres")
    a = analyzer.analyze("SELECT count(*) AS n FROM (SELECT * FROM people) t", snapshot)
    assert a.violations == [] and "(SELECT 1 FROM people)" in a.normalized_code, a.normalized_code


def test_the_star_stays_where_the_engine_checks_only_what_is_read() -> None:
    analyzer, snapshot = _analyzer("duckdb")
    a = analyzer.analyze('SELECT p."Full Name" FROM (SELECT * FROM people) p', snapshot)
    assert a.violations == [] and "(SELECT * FROM people)" in a.normalized_code, a.normalized_code


def _plain_snapshot(dialect: str) -> tuple[Analyzer, SchemaSnapshot]:
    """``_analyzer``'s, with a second table that has no blocked column."""
    analyzer, snapshot = _analyzer(dialect)
    tables = [
        *snapshot.tables.values(),
        TableInfo(name="visits", columns=tuple(ColumnInfo(c, "VARCHAR") for c in ("id", "page", "at"))),
    ]
    return analyzer, SchemaSnapshot.build(as_dialect(dialect), "w", tables, blocked_fields=["people.ssn"])


def test_a_materialized_ctes_star_is_written_out_whatever_its_table() -> None:
    # PostgreSQL computes such a CTE once and its scan reads every column the * names: written out
    # as what the readers name, the CTE reads those, also over a table without blocked columns.
    analyzer, snapshot = _plain_snapshot("postgres")
    cases = {
        'WITH c AS MATERIALIZED (SELECT * FROM people) SELECT "Region", count(*) FROM c GROUP BY 1': (
            'WITH c AS MATERIALIZED (SELECT people."Region" FROM people)'
        ),
        "WITH v AS (SELECT * FROM visits) SELECT a.page FROM v a JOIN v b ON b.id = a.id": (
            "WITH v AS (SELECT visits.id, visits.page FROM visits)"
        ),
        "WITH v AS MATERIALIZED (SELECT * FROM visits) SELECT count(*) FROM v": (
            "WITH v AS MATERIALIZED (SELECT 1 FROM visits)"
        ),
    }
    for code, written in cases.items():
        a = analyzer.analyze(code, snapshot)
        assert a.violations == [] and a.normalized_code.startswith(written), (code, a.normalized_code)
        again = analyzer.analyze(a.normalized_code, snapshot)
        assert again.violations == [] and again.columns == a.columns


def test_a_materialized_ctes_star_that_cannot_be_written_out_is_read_whole() -> None:
    # USING merges columns by name: the star stays, and reads every column of its tables.
    analyzer, snapshot = _plain_snapshot("postgres")
    join = 'SELECT * FROM visits JOIN (SELECT id, "Region" FROM people) AS p USING (id)'
    a = analyzer.analyze(f"WITH b AS MATERIALIZED ({join}) SELECT page FROM b", snapshot)
    assert a.violations == [] and f"AS MATERIALIZED ({join})" in a.normalized_code, a.normalized_code
    assert {"visits.id", "visits.page", "visits.at"} <= set(a.columns), a.columns
    blocked = analyzer.analyze(
        "WITH b AS MATERIALIZED (SELECT * FROM people JOIN visits USING (id)) SELECT page FROM b", snapshot
    )
    assert [v.code for v in blocked.violations] == ["COLUMN_BLOCKED"], blocked.violations
    # Other stars of the same query are still written out.
    mixed = analyzer.analyze(
        f'WITH b AS MATERIALIZED ({join}) SELECT b.page, q."Region" FROM b JOIN (SELECT * FROM people) q '
        "ON q.id = b.id",
        snapshot,
    )
    assert mixed.violations == [] and '(SELECT people.id, people."Region" FROM people) AS q' in (
        mixed.normalized_code
    ), mixed.normalized_code


@pytest.mark.parametrize(
    ("code", "written", "columns"),
    [
        # `b`'s star over `a` stays `a.*`, every column `a` gives: `a`'s own star is written out
        # as what the query reads, or the CTE scan of `b` reads every column of visits.
        (
            "WITH a AS (SELECT * FROM visits), b AS (SELECT * FROM a) "
            "SELECT x.page FROM b x JOIN b y ON y.id = x.id",
            "WITH a AS (SELECT visits.id, visits.page FROM visits), b AS (SELECT a.* FROM a)",
            ["visits.id", "visits.page"],
        ),
        # sqlglot scopes `LATERAL (SELECT ...) d` as the LATERAL node: `d.*` stays, and the star
        # of the SELECT inside it is written out too.
        (
            "WITH w AS MATERIALIZED (SELECT d.* FROM people p LEFT JOIN LATERAL "
            "(SELECT * FROM visits v WHERE v.id = p.id LIMIT 1) d ON true) SELECT page FROM w",
            "LATERAL (SELECT v.id, v.page FROM visits AS v WHERE v.id = p.id LIMIT 1) AS d",
            ["people.id", "visits.id", "visits.page"],
        ),
    ],
    ids=["cte_over_a_cte", "over_a_lateral_query"],
)
def test_a_materialized_ctes_star_over_a_query_writes_that_querys_star_out_too(
    code: str, written: str, columns: list[str]
) -> None:
    analyzer, snapshot = _plain_snapshot("postgres")
    a = analyzer.analyze(code, snapshot)
    assert a.violations == [] and written in a.normalized_code, a.normalized_code
    assert sorted(a.columns) == columns
    again = analyzer.analyze(a.normalized_code, snapshot)
    assert again.violations == [] and again.columns == a.columns


def test_a_union_all_branchs_star_keeps_every_position() -> None:
    # The branches meet by position: a column the query reads nowhere is a NULL of its type (one
    # sqlglot does not know, the database's own: an untyped NULL), named as the column in the first
    # branch only, which names the columns. Each branch still gives as many columns, in the same
    # places, and `a` under the column list is still `people.id` in both.
    analyzer, _ = _analyzer("postgres")
    types = {"id": "INTEGER", "Full Name": "TIMESTAMP WITHOUT TIME ZONE", "select": "public.mood"}
    table = TableInfo(name="people", columns=tuple(ColumnInfo(c, types.get(c, "VARCHAR")) for c in COLUMNS))
    snapshot = SchemaSnapshot.build(as_dialect("postgres"), "w", [table], blocked_fields=["people.ssn"])
    code = (
        'SELECT a, "Region" FROM ((SELECT * FROM people WHERE id < 5) UNION ALL SELECT * FROM people) AS t(a)'
    )
    a = analyzer.analyze(code, snapshot)
    first = (
        'SELECT people.id, CAST(NULL AS TIMESTAMP) AS "Full Name", NULL AS "select", people."Region", '
        "CAST(NULL AS VARCHAR) AS ssn FROM people WHERE id < 5"
    )
    later = (
        'SELECT people.id, CAST(NULL AS TIMESTAMP), NULL, people."Region", CAST(NULL AS VARCHAR) FROM people)'
    )
    assert a.violations == [] and first in a.normalized_code and later in a.normalized_code, a.normalized_code
    assert sorted(a.columns) == ["people.id", "people.region"]
    again = analyzer.analyze(a.normalized_code, snapshot)
    assert again.violations == [] and again.columns == a.columns
    # A branch whose star stands for another query cannot be written out by position: read whole.
    nested = analyzer.analyze(
        'SELECT "Region" FROM (SELECT * FROM (SELECT * FROM people) p UNION ALL SELECT * FROM people) t',
        snapshot,
    )
    assert [v.code for v in nested.violations] == ["COLUMN_BLOCKED"], nested.violations
    # UNION compares whole rows: every column of its stars counts.
    distinct = analyzer.analyze(
        'SELECT "Region" FROM (SELECT * FROM people UNION SELECT * FROM people) t', snapshot
    )
    assert [v.code for v in distinct.violations] == ["COLUMN_BLOCKED"], distinct.violations
