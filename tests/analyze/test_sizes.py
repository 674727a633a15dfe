"""Issue 11, item 5: values built while planning are bounded before any engine sees them.

Nested builders multiply (``repeat(repeat('x', 1e4), 1e4)`` is 10^8 characters, though
each call alone is small). The bound must be an upper bound: generated builder
expressions run on DuckDB never build more than the analyzer estimated.
"""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlmode.analyze import Analyzer
from sqlmode.analyze.sizes import MAX_VALUE_SIZE, Sizes
from sqlmode.config import Settings
from tests.analyze.conftest import make_settings, sample_snapshot

ANALYZERS = {d: Analyzer(make_settings(d)) for d in ("duckdb", "postgres")}
SNAPSHOTS = {d: sample_snapshot(d) for d in ANALYZERS}

HUGE = [
    ("duckdb", "SELECT repeat(repeat('x', 10000), 10000) AS r"),
    ("postgres", "SELECT repeat(repeat('x', 10000), 10000) AS r"),
    ("duckdb", "SELECT repeat(repeat(repeat(repeat('x', 99), 99), 99), 99) AS r"),
    ("postgres", "SELECT length(repeat(repeat(repeat(repeat('x', 99), 99), 99), 99)) AS r"),
    ("duckdb", "SELECT repeat(lpad('x', 10000, 'y'), 5000) AS r"),
    ("postgres", "SELECT repeat(rpad('x', 10000, 'y'), 5000) AS r"),
    ("duckdb", "SELECT list_transform(range(50000), x -> repeat('ab', 1000)) AS r"),
    ("duckdb", "SELECT [repeat('ab', 1000) FOR x IN range(50000)] AS r"),
    ("duckdb", "SELECT len(list_transform(range(50000), x -> range(50000))) AS r"),
    ("duckdb", "SELECT printf('%100000000d', 1) AS r"),
    ("postgres", "SELECT format('%100000000s', 'x') AS r"),
    ("duckdb", "SELECT replace(repeat('x', 10000), 'x', repeat('y', 10000)) AS r"),
    ("postgres", "SELECT replace(repeat('x', 10000), 'x', repeat('y', 10000)) AS r"),
    ("duckdb", "SELECT regexp_replace(repeat('x', 10000), 'x', repeat('y', 10000), 'g') AS r"),
    ("duckdb", "SELECT repeat([repeat('x', 1000)], 5000) AS r"),
    ("duckdb", "SELECT flatten(repeat([range(1000)], 5000)) AS r"),
    (
        "postgres",
        "SELECT ARRAY[repeat('x', 9), 'y'] || repeat(repeat(repeat('y', 300), 300), 300) AS r",
    ),
    ("duckdb", "SELECT count(*) FROM orders WHERE status = repeat(repeat(repeat('x', 300), 300), 300)"),
    # text as wide as an argument, a list of as many bins
    ("duckdb", "SELECT bar(1, 0, 1, 100000000) AS r"),
    ("duckdb", "SELECT to_base(1, 2, 100000000) AS r"),
    ("duckdb", "SELECT equi_width_bins(0, 1, 100000000, false) AS r"),
    ("duckdb", "SELECT bar(total, 0, 5000, id) AS r FROM orders"),
]

FINE = [
    ("duckdb", "SELECT repeat('-', 20) || name AS r FROM customers"),
    ("duckdb", "SELECT lpad(CAST(id AS VARCHAR), 8, '0') AS r FROM orders"),
    ("duckdb", "SELECT list_transform(range(50000), x -> x * 2) AS r"),
    ("duckdb", "SELECT [x * 2 FOR x IN range(1000) IF x > 10] AS r"),
    ("duckdb", "SELECT printf('%05d', id), format('{} - {}', name, id) AS r FROM customers"),
    ("duckdb", "SELECT repeat(repeat('ab', 10), 10) AS r"),
    ("duckdb", "SELECT list_transform(range(50000), x -> CAST(x AS VARCHAR) || '!') AS r"),
    ("duckdb", "SELECT bar(total, 0, 5000, 20) AS a, bar(total, 0, 5000) AS b FROM orders"),
    ("duckdb", "SELECT to_base(42, 2, 16) AS a, to_base(42, 16) AS b"),
    ("duckdb", "SELECT equi_width_bins(0, 100, 10, true) AS r"),
    ("postgres", "SELECT format('%s-%s', name, id) AS r FROM customers"),
    ("postgres", "SELECT repeat(repeat('ab', 10), 10) AS r"),
    ("postgres", "SELECT replace(name, 'a', 'bb') AS r FROM customers"),
]


@pytest.mark.parametrize(("dialect", "sql"), HUGE)
def test_huge_builders_are_refused_before_the_engine(dialect: str, sql: str) -> None:
    analysis = ANALYZERS[dialect].analyze(sql, SNAPSHOTS[dialect])
    assert "FUNCTION_ARGUMENT_LIMIT" in {v.code for v in analysis.violations}, sql
    assert analysis.normalized_code == ""


@pytest.mark.parametrize(("dialect", "sql"), FINE)
def test_ordinary_builders_are_accepted(dialect: str, sql: str) -> None:
    analysis = ANALYZERS[dialect].analyze(sql, SNAPSHOTS[dialect])
    assert analysis.violations == [], sql


def test_huge_builder_is_refused_by_the_service_without_engine_work(sample_settings: Settings) -> None:
    import asyncio

    from sqlmode.service import CodeModeService

    async def run() -> None:
        async with CodeModeService(sample_settings) as svc:
            res = await svc.validate(
                "SELECT repeat(repeat(repeat(repeat(repeat('x', 99), 99), 99), 99), 99) AS r"
            )
            assert not res.is_valid and res.approval_token is None
            assert [v.code for v in res.violations] == ["FUNCTION_ARGUMENT_LIMIT"]

    asyncio.run(run())


# -- the estimate is an upper bound (checked on DuckDB) ---------------------------------


@st.composite
def builders(draw: st.DrawFn, depth: int = 0) -> str:
    leaf = st.sampled_from(["'x'", "'ab'", "'hello'", "[1, 2]", "['a', 'bc']", "range(3)"])
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        return draw(leaf)
    inner = draw(builders(depth + 1))
    n = draw(st.integers(0, 12))
    kind = draw(st.integers(0, 7))
    if inner.startswith(("[", "range", "list_", "repeat([", "flatten")) or inner.endswith("]"):
        forms = [
            f"repeat({inner}, {n})",
            f"list_concat({inner}, {inner})",
            f"list_transform({inner}, x -> repeat(CAST(x AS VARCHAR), {n}))",
            f"[CAST(x AS VARCHAR) || 'z' FOR x IN {inner}]",
            f"list_filter({inner}, x -> true)",
        ]
    else:
        forms = [
            f"repeat({inner}, {n})",
            f"lpad({inner}, {n * 3}, 'y')",
            f"rpad({inner}, {n}, 'zz')",
            f"{inner} || {inner}",
            f"replace({inner}, 'x', 'abc')",
            f"concat({inner}, 'q', {inner})",
            f"printf('%{n}s', {inner})",
            f"upper({inner})",
        ]
    return forms[kind % len(forms)]


def _actual(con: duckdb.DuckDBPyConnection, expr: str) -> int:
    row = con.execute(f"SELECT {expr}").fetchone()
    assert row is not None, expr
    value = row[0]

    def size(v: object) -> int:
        if isinstance(v, list):
            return sum(max(size(e), 1) for e in v)
        return len(str(v))

    return size(value)


@settings(max_examples=150, deadline=None)
@given(expr=builders())
def test_estimate_bounds_what_duckdb_builds(expr: str) -> None:
    con = duckdb.connect()
    try:
        actual = _actual(con, expr)
    except duckdb.Error:
        return
    finally:
        pass
    con.close()
    node = sqlglot.parse_one(f"SELECT {expr}", read="duckdb").expressions[0]
    estimate = Sizes().of(node).total
    assert actual <= estimate, (expr, actual, estimate)
    assert estimate <= MAX_VALUE_SIZE
