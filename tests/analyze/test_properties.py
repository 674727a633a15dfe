"""Property tests: random and mutated SQL never crashes the analyzer, and whatever it
accepts contains no refused node when checked independently of the analyzer's own logic.
"""

from __future__ import annotations

import os

import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from sqlmode.analyze import Analyzer
from sqlmode.engines import engine_named
from tests.analyze.conftest import make_settings, sample_snapshot
from tests.fixtures.cases import attack_cases, legit_cases

DIALECTS = ("duckdb", "postgres")
ANALYZERS = {d: Analyzer(make_settings(d)) for d in DIALECTS}
SNAPSHOTS = {d: sample_snapshot(d) for d in DIALECTS}
SEEDS = {d: [c.sql for c in legit_cases(d) + attack_cases(d)] for d in DIALECTS}
LEGIT = {d: [c.sql for c in legit_cases(d)] for d in DIALECTS}
BLOCKED_TABLES = {"credentials", "audit_log"}

# Fragments an attacker would splice in: statement breaks, comment and quote openers,
# writes, files, catalogs, blocked names, selectors.
FRAGMENTS = [
    ";",
    "; DROP TABLE orders",
    "; DELETE FROM orders",
    "--",
    "/*",
    "*/",
    "$$",
    "$x$",
    "'",
    '"',
    "\\",
    "(",
    ")",
    ",",
    "*",
    "c.*",
    " ssn ",
    " credentials ",
    " customers ",
    "INTO t ",
    " FOR UPDATE",
    "pg_read_file('/etc/passwd')",
    "read_csv('x')",
    "'x.csv'",
    "COLUMNS('.*')",
    "#4",
    "row_to_json(c)",
    "WITH d AS (DELETE FROM orders RETURNING *) ",
    "UNION SELECT secret FROM credentials",
    " information_schema.tables ",
    "LATERAL ",
    " JOIN customers c ON true ",
    "E'\\'",
    "U&'\\0041'",
    "\u037e",
    "\uff1b",
    "\u00a0",
    "\n",
    " COMMIT ",
    " SET x = 1 ",
    " NOTIFY ch",
    " LIMIT 5000",
]


@st.composite
def mutated_sql(draw: st.DrawFn, dialect: str) -> str:
    # Mostly one small change to a legit query, so that a good share is still accepted
    # and the property has something to check; sometimes several changes to anything.
    if draw(st.booleans()):
        sql = draw(st.sampled_from(LEGIT[dialect]))
        rounds = 1
    else:
        sql = draw(st.sampled_from(SEEDS[dialect]))
        rounds = draw(st.integers(1, 4))
    for _ in range(rounds):
        op = draw(st.sampled_from(["insert", "delete", "duplicate"]))
        pos = draw(st.integers(0, len(sql)))
        if op == "insert":
            sql = sql[:pos] + draw(st.sampled_from(FRAGMENTS)) + sql[pos:]
        elif op == "delete":
            end = draw(st.integers(pos, min(len(sql), pos + 20)))
            sql = sql[:pos] + sql[end:]
        else:
            sql = sql[:pos] + sql[pos : pos + 30] + sql[pos:]
    return sql


def assert_accepted_is_clean(dialect: str, sql: str) -> None:
    analysis = ANALYZERS[dialect].analyze(sql, SNAPSHOTS[dialect])
    if analysis.violations:
        assert analysis.normalized_code == "" and analysis.row_limit == 0
        return
    normalized = analysis.normalized_code
    # Independently of the analyzer: one statement, for sqlglot and for the engine...
    trees = [t for t in sqlglot.parse(normalized, read=dialect) if t is not None]
    assert len(trees) == 1
    assert engine_named(dialect).native_statements(normalized).types == ("SELECT",)
    tree = trees[0]
    assert isinstance(tree, (exp.Query, exp.Values, exp.Pivot))
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    policy = ANALYZERS[dialect].rules.functions
    for node in tree.walk():
        # ...no write, DDL, command, INTO or lock anywhere...
        assert not isinstance(node, (exp.DML, exp.DDL, exp.Command, exp.Into, exp.Lock, exp.Set, exp.Pragma))
        # ...no blocked or unknown table...
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            name = node.name.lower()
            assert name not in BLOCKED_TABLES
            assert name in ctes or SNAPSHOTS[dialect].is_table_exposed(name)
        # ...every call on the allowlist...
        if isinstance(node, exp.Func) and not isinstance(node, (exp.And, exp.Or, exp.Xor)):
            assert policy.allows(node), policy.name_of(node)
    # ...no blocked column reported, and the normalized code is itself accepted, unchanged.
    assert "customers.ssn" not in analysis.columns
    again = ANALYZERS[dialect].analyze(normalized, SNAPSHOTS[dialect])
    assert again.violations == [] and again.columns == analysis.columns


# SQLMODE_HYPOTHESIS_EXAMPLES=5000 for a long exploration run.
EXAMPLES = int(os.environ.get("SQLMODE_HYPOTHESIS_EXAMPLES", "250"))
PROFILE = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROFILE
@given(st.data())
def test_mutated_sql_never_crashes_and_accepts_nothing_refused(data: st.DataObject) -> None:
    dialect = data.draw(st.sampled_from(DIALECTS))
    assert_accepted_is_clean(dialect, data.draw(mutated_sql(dialect)))


@PROFILE
@given(st.sampled_from(DIALECTS), st.text(max_size=200))
def test_random_text_never_crashes(dialect: str, text: str) -> None:
    assert_accepted_is_clean(dialect, text)


@PROFILE
@given(
    st.sampled_from(DIALECTS),
    st.lists(
        st.sampled_from(
            [
                "SELECT",
                "FROM",
                "WHERE",
                "orders",
                "customers",
                "ssn",
                "id",
                "*",
                ",",
                "(",
                ")",
                ";",
                "=",
                "1",
                "'a'",
                "AND",
                "OR",
                "JOIN",
                "ON",
                "UNION",
                "WITH",
                "AS",
                "x",
                "DELETE",
                "INTO",
                "GROUP BY",
                "--",
                "count(*)",
                "credentials",
                "LIMIT",
                "c",
                "c.*",
            ]
        ),
        max_size=25,
    ),
)
def test_random_token_soup_never_crashes(dialect: str, tokens: list[str]) -> None:
    assert_accepted_is_clean(dialect, " ".join(tokens))
