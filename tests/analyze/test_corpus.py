"""Real analytic SQL from public benchmarks, validated, run, and compared with the database.

TPC-H (22) and TPC-DS (99) as DuckDB ships their texts, and the examples of the PostgreSQL
tutorial and of the DuckDB documentation, on their own schemas filled with a little synthetic
data, in both engines. Every query is analyzed with the default limits;
an accepted query's normalized SQL must return the rows the original text returns when run
directly; a refused one must be refused with exactly the codes its ``-- refused:`` header
names, each of which tests/fixtures/legit/README.md explains. ``-- dialects:`` names the
engines a text is valid in (run directly there); elsewhere it is not counted.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from sqlmode.analyze import Analyzer
from sqlmode.analyze.pivot import expand_pivots, only_unlisted_pivots
from sqlmode.config import settings_from_dict
from sqlmode.schema.reflect import reflect_schema
from tests.fixtures.cases import FIXTURES, Case, load_cases

TPC = FIXTURES / "legit" / "tpc"
BENCHES = ("tpch", "tpcds")
# Documentation examples, run the same way (not part of the TPC acceptance figures).
DOCS = ("pg_tutorial", "duckdb_docs")
CORPORA = BENCHES + DOCS


def _folder(bench: str) -> Path:
    return TPC if bench in BENCHES else FIXTURES / "legit" / "docs"


DIALECTS = ("duckdb", "postgres")
ROWS_PER_TABLE = 40


def corpus(bench: str) -> list[Case]:
    return load_cases(_folder(bench) / f"{bench}.sql")


def valid_in(case: Case) -> list[str]:
    return case.listed("dialects") or list(DIALECTS)


def _params(dialect: str) -> list[Any]:
    return [
        pytest.param(bench, case, id=case.name)
        for bench in CORPORA
        for case in corpus(bench)
        if dialect in valid_in(case)
    ]


def _literals(bench: str) -> dict[str, list[str]]:
    """Per column name, the literals the benchmark's queries compare it with (as SQL text).

    Filling the tables with them makes most filters match some rows, so that the comparison
    of results is between real rows rather than between two empty answers.
    """
    found: dict[str, list[str]] = {}

    def literal(node: exp.Expr) -> str | None:
        if isinstance(node, exp.Cast):
            node = node.this
        if isinstance(node, exp.Literal):
            return node.sql("duckdb")
        return None

    for case in corpus(bench):
        tree = sqlglot.parse_one(case.sql, read="duckdb")
        for pred in tree.find_all(exp.EQ, exp.In, exp.Between, exp.Like, exp.GTE, exp.LTE):
            col = pred.this
            if not isinstance(col, exp.Column):
                continue
            others = [pred.args.get(k) for k in ("expression", "low", "high")] + list(pred.expressions)
            for other in others:
                text = literal(other) if other is not None else None
                if text is not None and "%" not in text:
                    values = found.setdefault(col.name.lower(), [])
                    if text not in values:
                        values.append(text)
    return found


def _value(column: str, dtype: str, literals: dict[str, list[str]]) -> str:
    """Synthetic values: keys 1..n so that joins meet; else the literals the queries look for."""
    t = dtype.upper()
    c = column.lower()
    numeric = t.startswith(("INTEGER", "BIGINT", "SMALLINT", "DECIMAL"))
    if numeric and c.endswith(("_sk", "key")):
        return "i"
    wanted = literals.get(c, [])
    wanted = [w for w in wanted if (w.startswith("'") != numeric)] if not t.startswith("DATE") else wanted
    if t.startswith(("INTEGER", "BIGINT", "SMALLINT")):
        default = "i % 7"
    elif t.startswith(("FLOAT", "REAL", "DOUBLE")):
        default = "CAST(i * 0.25 AS REAL)"
    elif t.startswith("DECIMAL"):
        default = f"CAST(i * 1.25 AS {t})"
    elif t.startswith("DATE"):
        default = "DATE '1998-01-01' + CAST(i * 23 AS INTEGER)"
    elif t.startswith(("VARCHAR", "CHAR")):
        default = "CAST(i % 5 AS VARCHAR)"
    else:
        return "NULL"
    if not wanted:
        return default
    # Each wanted value once (rows 1..n), so that a scalar subquery still finds one row.
    cases = " ".join(f"WHEN {n + 1} THEN CAST({v} AS {t})" for n, v in enumerate(wanted))
    return f"CASE i {cases} ELSE {default} END"


def load_statements(bench: str) -> list[str]:
    """The schema's DDL and one INSERT per table, valid in both engines."""
    ddl = (_folder(bench) / f"{bench}_schema.sql").read_text()
    con = duckdb.connect()
    con.execute(ddl)
    cols: dict[str, list[str]] = {}
    literals = _literals(bench)
    for table, column, dtype in con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "ORDER BY table_name, ordinal_position"
    ).fetchall():
        cols.setdefault(table, []).append(_value(column, dtype, literals))
    con.close()
    bare = re.sub(r"--[^\n]*", "", ddl)
    statements = [s.strip() for s in bare.split(";") if s.strip()]
    for table, values in cols.items():
        rows = f"generate_series(1, {ROWS_PER_TABLE}) AS g(i)"
        statements.append(f"INSERT INTO {table} SELECT {', '.join(values)} FROM {rows}")
    return statements


def settings(url: str) -> Any:
    return settings_from_dict({"database": {"url": url}})


def _key(rows: list[tuple[Any, ...]]) -> list[str]:
    return sorted(repr(tuple(r)) for r in rows)


def check(analyzer: Analyzer, snapshot: Any, case: Case, run: Any) -> None:
    analysis = analyzer.analyze(case.sql, snapshot)
    if only_unlisted_pivots(analysis):
        # What the service does for a DuckDB PIVOT without IN list (tests/test_pivot_values.py).
        async def analyze(sql: str) -> Any:
            return analyzer.analyze(sql, snapshot)

        async def values(sql: str, n: int) -> tuple[list[Any], bool]:
            rows = run(sql)
            return rows[:n], len(rows) > n

        analysis = asyncio.run(expand_pivots(case.sql, analysis, analyze, analyze, values))
    refused = sorted({v.code for v in analysis.violations})
    assert refused == sorted(case.listed("refused") or []), (case.name, analysis.violations)
    direct = run(case.sql)  # the text is valid in this engine: it runs as written
    if refused:
        return
    through = run(analysis.normalized_code)
    assert len(direct) <= analysis.row_limit, case.name  # the synthetic data keeps results small
    assert _key(through) == _key(direct), case.name


# -- DuckDB ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    out = {}
    for bench in CORPORA:
        path = tmp_path_factory.mktemp(bench) / f"{bench}.duckdb"
        con = duckdb.connect(str(path))
        for st in load_statements(bench):
            con.execute(st)
        con.close()
        s = settings(f"duckdb:///{path}")
        snapshot = asyncio.run(reflect_schema(s))
        out[bench] = (Analyzer(s), snapshot, duckdb.connect(str(path), read_only=True))
    yield out
    for _, _, con in out.values():
        con.close()


@pytest.mark.parametrize(("bench", "case"), _params("duckdb"))
def test_tpc_query_on_duckdb(bench: str, case: Case, duck: dict[str, Any]) -> None:
    analyzer, snapshot, con = duck[bench]
    check(analyzer, snapshot, case, lambda sql: con.execute(sql).fetchall())


# -- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def pg(pg_admin_url: str) -> Any:
    import secrets

    import asyncpg

    from tests.plugins.postgres import with_database

    admin = await asyncpg.connect(pg_admin_url)
    out: dict[str, Any] = {}
    names = []
    for bench in CORPORA:
        name = f"sqlmode_{bench}_{secrets.token_hex(3)}"
        names.append(name)
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(pg_admin_url, name)
        conn = await asyncpg.connect(url)
        for st in load_statements(bench):
            await conn.execute(st)
        await conn.execute("ANALYZE")
        s = settings(url)
        out[bench] = (Analyzer(s), await reflect_schema(s), conn)
    yield out
    for _, _, conn in out.values():
        await conn.close()
    for name in names:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.mark.postgres
@pytest.mark.parametrize(("bench", "case"), _params("postgres"))
async def test_tpc_query_on_postgres(bench: str, case: Case, pg: dict[str, Any]) -> None:
    analyzer, snapshot, conn = pg[bench]
    analysis = analyzer.analyze(case.sql, snapshot)
    refused = sorted({v.code for v in analysis.violations})
    assert refused == sorted(case.listed("refused") or []), (case.name, analysis.violations)
    direct = [tuple(r.values()) for r in await conn.fetch(case.sql)]
    if refused:
        return
    through = [tuple(r.values()) for r in await conn.fetch(analysis.normalized_code)]
    assert len(direct) <= analysis.row_limit, case.name
    assert _key(through) == _key(direct), case.name


# -- the README explains every refusal ---------------------------------------------------------


def test_every_refusal_is_explained_in_the_readme() -> None:
    readme = (FIXTURES / "legit" / "README.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \|", readme, re.M)}
    refused = {c.name: c.listed("refused") for b in CORPORA for c in corpus(b) if c.listed("refused")}
    assert refused, "the corpus documents its refusals"
    for name, codes in refused.items():
        assert name in rows, f"{name} is refused but not explained in tests/fixtures/legit/README.md"
        for code in codes or []:
            assert code in rows[name], (name, code)
    assert set(rows) <= {c.name for b in CORPORA for c in corpus(b)}
