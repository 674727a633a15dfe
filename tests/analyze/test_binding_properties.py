"""Properties of binding (issue 11): whatever the analyzer accepts reads no blocked value.

The engine is the judge: generated queries that the analyzer accepts run on the sample
DuckDB, and no SSN may come back (the result is also checked for SSN-derived text). The
shapes are the classes of the issue: output aliases that shadow outer columns, sources
whose columns are unknown or guessed, table aliases that are quoted and contain quotes.
And verdicts do not depend on the data probed for: the same query with other literals in
its comparisons gets the same verdict.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from sqlmode.analyze import Analyzer
from tests.analyze.conftest import make_settings, sample_snapshot
from tests.fixtures.cases import attack_cases, legit_cases

DIALECTS = ("duckdb", "postgres")
ANALYZERS = {d: Analyzer(make_settings(d)) for d in DIALECTS}
SNAPSHOTS = {d: sample_snapshot(d) for d in DIALECTS}
SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Inner sources: plain tables without an ssn column, and sources whose columns the
# analyzer only guesses (table functions, VALUES) or cannot know (PIVOT output).
INNER_SOURCES = {
    "duckdb": [
        "orders",
        "products p",
        "range(1)",
        "range(1) r",
        "generate_series(1, 1) g",
        "unnest([1])",
        "unnest([1]) u",
        "(VALUES (1)) v",
        "(VALUES (1)) v(a)",
        "json_each('{\"a\": 1}')",
        "(SELECT 1 AS one) s",
    ],
    "postgres": [
        "orders",
        "products p",
        "generate_series(1, 1)",
        "generate_series(1, 1) g",
        "unnest(ARRAY[1])",
        "unnest(ARRAY[1]) u",
        "(VALUES (1)) v",
        "(VALUES (1)) v(a)",
        "jsonb_each('{\"a\": 1}')",
        "(SELECT 1 AS one) s",
    ],
}
# Inner projections, some of which alias something to the blocked column's name.
PROJECTIONS = [
    "1",
    "1 AS ssn",
    "'x' AS ssn",
    "{ref} AS ssn",
    "{ref} || '' AS ssn",
    "{ref}",
    "count(*) AS ssn",
]
NAMES = ["ssn", "name", "region", "ssn", "SSN", '"ssn"']
CLAUSES = [
    "SELECT {proj} FROM {src} LIMIT 1",
    "SELECT {proj} FROM {src} WHERE {ref} IS NOT NULL LIMIT 1",
    "SELECT {proj} FROM {src} ORDER BY {ref} LIMIT 1",
    "SELECT {proj} FROM {src} GROUP BY 1 HAVING min({ref}) IS NOT NULL LIMIT 1",
]
OUTER_ALIASES = ["", " c", ' AS "a\'b"', ' AS "C"', ' AS "x""y"', " AS ssn"]


def _shape(draw: st.DrawFn, dialect: str) -> str:
    ref = draw(st.sampled_from(NAMES))
    proj = draw(st.sampled_from(PROJECTIONS)).format(ref=ref)
    inner = draw(st.sampled_from(CLAUSES)).format(
        proj=proj, src=draw(st.sampled_from(INNER_SOURCES[dialect])), ref=ref
    )
    alias = draw(st.sampled_from(OUTER_ALIASES))
    where = draw(st.booleans())
    if where:
        return f"SELECT name FROM customers{alias} WHERE EXISTS ({inner})"
    return f"SELECT name, ({inner}) AS v FROM customers{alias} LIMIT 5"


@st.composite
def shadow_queries(draw: st.DrawFn, dialect: str) -> str:
    return _shape(draw, dialect)


def _no_ssn_value(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error:
        return  # the engine rejects it: nothing comes back
    assert not SSN.search(str(rows)), sql


@pytest.fixture(scope="module")
def sample_con(sample_duckdb_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(sample_duckdb_path), read_only=True)
    yield con
    con.close()


@FAST
@given(data=st.data())
def test_accepted_shadowing_and_opaque_shapes_read_no_ssn_on_duckdb(
    data: st.DataObject, sample_con: duckdb.DuckDBPyConnection
) -> None:
    sql = data.draw(shadow_queries("duckdb"))
    analysis = ANALYZERS["duckdb"].analyze(sql, SNAPSHOTS["duckdb"])
    if analysis.violations:
        return
    _no_ssn_value(sample_con, analysis.normalized_code)
    _no_ssn_value(sample_con, sql)


@FAST
@given(data=st.data(), dialect=st.sampled_from(DIALECTS))
def test_a_bare_ssn_under_customers_is_always_refused(data: st.DataObject, dialect: str) -> None:
    """Whatever the inner scope holds, a bare `ssn` may bind to the outer customers."""
    sql = data.draw(shadow_queries(dialect))
    tree = sqlglot.parse_one(sql, read=dialect)
    bare = [c for c in tree.find_all(exp.Column) if not c.table and c.name.lower() == "ssn"]
    analysis = ANALYZERS[dialect].analyze(sql, SNAPSHOTS[dialect])
    if bare:
        assert analysis.violations, sql
        assert all(
            "ssn" not in (v.message + (v.hint or "")).lower() or "ssn" in sql.lower()
            for v in analysis.violations
        )


@st.composite
def quoted_aliases(draw: st.DrawFn) -> str:
    text = draw(st.text(alphabet="ab'\" .;-C", min_size=1, max_size=8))
    return '"' + text.replace('"', '""') + '"'


@FAST
@given(alias=quoted_aliases(), dialect=st.sampled_from(DIALECTS), form=st.integers(0, 3))
def test_quoted_aliases_with_quotes_do_not_hide_ssn(alias: str, dialect: str, form: int) -> None:
    forms = [
        f"SELECT {alias}.ssn FROM customers AS {alias}",
        f"SELECT name, (SELECT ssn FROM orders LIMIT 1) AS v FROM customers AS {alias}",
        f"SELECT name, (SELECT {alias}.ssn FROM orders LIMIT 1) AS v FROM customers AS {alias}",
        f"SELECT count(*) FROM customers AS {alias} WHERE {alias}.ssn LIKE '9%'",
    ]
    sql = forms[form]
    analysis = ANALYZERS[dialect].analyze(sql, SNAPSHOTS[dialect])
    assert analysis.violations, sql
    assert analysis.normalized_code == ""


@FAST
@given(alias=quoted_aliases(), dialect=st.sampled_from(DIALECTS))
def test_quoted_aliases_with_quotes_keep_legit_queries(alias: str, dialect: str) -> None:
    sql = f"SELECT {alias}.name, {alias}.region FROM customers AS {alias} WHERE {alias}.region = 'EU'"
    analysis = ANALYZERS[dialect].analyze(sql, SNAPSHOTS[dialect])
    assert not any(v.code == "COLUMN_BLOCKED" for v in analysis.violations), sql


# -- literal independence ---------------------------------------------------------------

_COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.Like, exp.ILike, exp.In, exp.Between)


def _probe_literals(tree: exp.Expr) -> list[exp.Literal]:
    """Literals compared with something: the values an attacker probes for."""
    return [
        lit
        for lit in tree.find_all(exp.Literal)
        if isinstance(lit.parent, _COMPARISONS)
        or (isinstance(lit.parent, exp.Tuple) and isinstance(lit.parent.parent, exp.In))
    ]


def _corpus(dialect: str) -> list[str]:
    out = []
    for case in legit_cases(dialect) + attack_cases(dialect):
        try:
            tree = sqlglot.parse_one(case.sql, read=dialect)
        except Exception:
            continue
        if tree is not None and _probe_literals(tree):
            out.append(case.sql)
    return out


CORPUS = {d: _corpus(d) for d in DIALECTS}


def _verdict(dialect: str, sql: str) -> list[str]:
    return sorted({v.code for v in ANALYZERS[dialect].analyze(sql, SNAPSHOTS[dialect]).violations})


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dialect=st.sampled_from(DIALECTS))
def test_verdict_does_not_depend_on_probed_literals(data: st.DataObject, dialect: str) -> None:
    sql = data.draw(st.sampled_from(CORPUS[dialect]))
    tree = sqlglot.parse_one(sql, read=dialect)
    for lit in _probe_literals(tree):
        if lit.is_string:
            text = data.draw(st.text(alphabet="0123456789-abz%_' ", max_size=12))
            lit.replace(exp.Literal.string(text))
        else:
            lit.replace(exp.Literal.number(data.draw(st.integers(-(10**6), 10**6))))
    original = sqlglot.parse_one(sql, read=dialect).sql(dialect=dialect)
    mutated = tree.sql(dialect=dialect)
    assert _verdict(dialect, original) == _verdict(dialect, mutated), (original, mutated)


@pytest.mark.parametrize("probe", ["800", "950", "999z", "", "0", "%"])
def test_issue_oracle_gets_one_verdict_for_every_probe(probe: str) -> None:
    sql = f"SELECT len([ssn FOR ssn IN (SELECT list(id) FROM customers WHERE ssn < '{probe}')]) AS r"
    assert _verdict("duckdb", sql) == ["COLUMN_BLOCKED"]


# Stars whose readers take their columns by position, with the columns each gives in the engine's
# order (the same on both engines).
_CUSTOMERS = ["id", "name", "email", "ssn", "region", "segment", "created_at"]
_ORDERS = ["id", "customer_id", "status", "total", "created_at"]
_C = [f"customers.{c}" for c in _CUSTOMERS]
_O = [f"orders.{c}" for c in _ORDERS]
POSITIONAL_STARS = [
    ("SELECT * FROM customers", _C),
    ("SELECT *, 1 AS one FROM customers", [*_C, ""]),
    ("SELECT 0 AS z, c.* FROM customers c", ["", *_C]),
    ("SELECT c.*, o.* FROM customers c JOIN orders o ON o.customer_id = c.id", _C + _O),
    ("SELECT o.*, c.* FROM orders o JOIN customers c ON o.customer_id = c.id", _O + _C),
    ("SELECT * FROM customers UNION ALL SELECT * FROM customers WHERE id > 9", _C),
    ("(SELECT * FROM customers) UNION ALL (SELECT c.* FROM customers c)", _C),
]
POSITIONAL_READERS = [
    "SELECT count(DISTINCT t.{k}) FROM ({inner}) AS t({names})",
    "WITH w({names}) AS ({inner}) SELECT count(DISTINCT {k}) FROM w",
    "WITH w AS ({inner}) SELECT count(DISTINCT x.{k}) FROM w AS x({names})",
    "SELECT count(DISTINCT l.{k}) FROM (SELECT 1 AS one) s CROSS JOIN LATERAL ({inner}) AS l({names})",
]


def _positional_cases() -> Iterator[tuple[str, str, str]]:
    for inner, columns in POSITIONAL_STARS:
        for k, column in enumerate(columns):
            names = ", ".join(f"k{i}" for i in range(k + 1))
            for reader in POSITIONAL_READERS:
                yield reader.format(k=f"k{k}", inner=inner, names=names), column, inner


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_name_given_by_position_reads_the_column_at_that_position(dialect: str) -> None:
    # Every position of every star, renamed by a column list on a derived table, a CTE, a
    # reference to a CTE or a LATERAL query: the name reads the column at its position and, on an
    # engine whose stars are written out, the normalized code reads the same. A position that
    # holds ssn is refused.
    analyzer, snapshot = ANALYZERS[dialect], SNAPSHOTS[dialect]
    seen = 0
    for code, column, inner in _positional_cases():
        a = analyzer.analyze(code, snapshot)
        if column == "customers.ssn":
            assert [v.code for v in a.violations] == ["COLUMN_BLOCKED"], (code, a.violations)
            continue
        assert a.violations == [], (code, a.violations)
        assert not column or column in a.columns, (code, a.columns)
        # Nothing else is read but what the star's own query names (its join keys and filters).
        named = set(re.findall(r"\w+", inner))
        extra = {c for c in a.columns if c != column and c.split(".")[1] not in named}
        assert extra == set(), (code, a.columns)
        again = analyzer.analyze(a.normalized_code, snapshot)
        assert again.violations == [] and again.columns == a.columns, (a.normalized_code, again.violations)
        seen += 1
    assert seen == 4 * sum(len(c) - c.count("customers.ssn") for _, c in POSITIONAL_STARS)
