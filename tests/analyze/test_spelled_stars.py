"""PostgreSQL's written-out star (analyze/rewrite.py: ``spell_out_stars``), without a database.

The service tests (tests/confirm/test_lazy_stars.py) run the written-out queries; these pin what
the rewriting writes: names quoted as the engine must read them, the FROM item's own name as the
qualifier, and the normalized code's own analysis reading exactly the same columns.
"""

from __future__ import annotations

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
