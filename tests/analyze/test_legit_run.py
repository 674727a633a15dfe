"""Legit fixtures are real SQL: every normalized query runs on the sample warehouse, DuckDB and PostgreSQL.

The analyzer here sees the schema exactly as the schema layer reflects it from the
file, so this also proves the hand-built test snapshot mirrors the real warehouse.

What runs is the normalized code, sqlglot's rendering of the analyzed tree. It must answer with
the columns the text as written names, of the same types, as the database binds both: a rendering
that keeps every table, column and call but changes a type (``date_part`` rendered as EXTRACT on
PostgreSQL, ``date_add(d, 7)`` as ``d + INTERVAL 7 DAY`` on DuckDB) fails here.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import duckdb
import pytest

from sqlmode.analyze import Analyzer
from sqlmode.config import Settings
from sqlmode.schema import SchemaSnapshot
from sqlmode.schema.reflect import reflect_schema
from tests.analyze.conftest import EXTRA_TABLES, SAMPLE_TABLES, make_settings
from tests.fixtures.cases import Case, legit_cases

DuckDBSetup = tuple[Analyzer, SchemaSnapshot, duckdb.DuckDBPyConnection]


@pytest.fixture(scope="module")
def scratch_db(sample_duckdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legit") / "warehouse.duckdb"
    shutil.copy(sample_duckdb_path, path)
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE subscriptions AS SELECT i AS id, i AS customer_id, 'pro' AS plan, "
        "CASE WHEN i % 3 = 0 THEN now() END AS deleted_at, i % 7 AS update_count, now() AS created_at "
        "FROM range(1, 50) t(i)"
    )
    con.close()
    return path


@pytest.fixture(scope="module")
def setup(scratch_db: Path) -> Iterator[DuckDBSetup]:
    settings = make_settings("duckdb").model_copy(deep=True)
    settings.database.url = f"duckdb:///{scratch_db}"
    snapshot = asyncio.run(reflect_schema(settings))
    con = duckdb.connect(str(scratch_db), read_only=True)
    yield Analyzer(settings), snapshot, con
    con.close()


def test_hand_built_snapshot_mirrors_the_sample(setup: DuckDBSetup) -> None:
    _, snapshot, _ = setup
    reflected = {name: tuple(c.name for c in t.columns) for name, t in snapshot.tables.items()}
    assert reflected == {**SAMPLE_TABLES, **EXTRA_TABLES}


@pytest.mark.parametrize("case", legit_cases("duckdb"), ids=lambda c: c.name)
def test_legit_query_runs_within_its_row_limit(case: Case, setup: DuckDBSetup) -> None:
    analyzer, snapshot, con = setup
    analysis = analyzer.analyze(case.sql, snapshot)
    assert analysis.violations == [], case.name
    rows = con.execute(analysis.normalized_code).fetchall()
    # an injected cap asks for one probe row past row_limit (the executor's truncation check)
    assert len(rows) <= analysis.row_limit + 1
    written = _duckdb_columns(con, case.sql)
    if written is not None:  # DuckDB binds the text as written (not its deprecated `x -> x` lambdas)
        assert _duckdb_columns(con, analysis.normalized_code) == written


def _duckdb_columns(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, str]] | None:
    """The result's column names and types as DuckDB binds ``sql`` (nothing runs); None if it cannot."""
    try:
        rel = con.sql(sql)
    except duckdb.Error:
        return None
    return list(zip(rel.columns, map(str, rel.types), strict=True))


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def pg_setup(
    pg_admin_url: str, analyze_pg_template: str, pg_settings_factory: Callable[..., Settings]
) -> AsyncIterator[tuple[Analyzer, SchemaSnapshot, asyncpg.Connection]]:
    import secrets

    from tests.plugins.postgres import with_database

    name = f"sqlmode_legit_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{analyze_pg_template}"')
    url = with_database(pg_admin_url, name)
    conn = await asyncpg.connect(url)
    await conn.execute(
        "CREATE TABLE subscriptions AS SELECT i AS id, i AS customer_id, 'pro'::text AS plan, "
        "CASE WHEN i % 3 = 0 THEN now() END AS deleted_at, i % 7 AS update_count, now() AS created_at "
        "FROM generate_series(1, 49) i"
    )
    settings = pg_settings_factory(url, {"database": {"tables": []}})  # expose subscriptions too
    snapshot = await reflect_schema(settings)
    yield Analyzer(settings), snapshot, conn
    await conn.close()
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.mark.postgres
@pytest.mark.parametrize("case", legit_cases("postgres"), ids=lambda c: c.name)
async def test_legit_query_runs_on_postgres(
    case: Case, pg_setup: tuple[Analyzer, SchemaSnapshot, asyncpg.Connection]
) -> None:
    analyzer, snapshot, conn = pg_setup
    analysis = analyzer.analyze(case.sql, snapshot)
    assert analysis.violations == [], case.name
    rows = await conn.fetch(analysis.normalized_code)  # extended protocol: one statement
    assert len(rows) <= analysis.row_limit + 1
    written = await _postgres_columns(conn, case.sql)
    assert written is not None, case.name
    assert await _postgres_columns(conn, analysis.normalized_code) == written


async def _postgres_columns(conn: asyncpg.Connection, sql: str) -> list[tuple[str, str]] | None:
    """The result's column names and types as PostgreSQL prepares ``sql`` (nothing runs)."""
    try:
        stmt = await conn.prepare(sql)
    except asyncpg.PostgresError:
        return None
    return [(a.name, a.type.name) for a in stmt.get_attributes()]
