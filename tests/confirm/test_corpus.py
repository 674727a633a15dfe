"""The legit fixtures through the whole validate -> execute path, engine confirmation on.

The plan readers fail closed on anything they cannot account for, so the check that matters is
the other direction: every legitimate analyst query of tests/fixtures/legit is still accepted,
runs, and returns the rows the database returns for it directly. On PostgreSQL as the superuser
and as the least-privilege reader. The larger sweep of legit/sweep/ is left to the analyzer-level
tests (tests/analyze/test_legit_run.py runs it on both engines): a whole service per case for
several hundred more cases would add two minutes to the suite.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService
from tests.fixtures.cases import Case, legit_cases
from tests.plugins.postgres import create_database

SUBSCRIPTIONS = (
    "CREATE TABLE subscriptions AS SELECT i AS id, i AS customer_id, 'pro'{cast} AS plan, "
    "CASE WHEN i % 3 = 0 THEN TIMESTAMP '2025-01-01' END AS deleted_at, i % 7 AS update_count, "
    "TIMESTAMP '2025-01-01' AS created_at FROM {series}"
)
# Expose every table the fixtures use, with the analyzer fixtures' blocks.
OVERRIDES: dict[str, Any] = {
    "database": {"tables": [], "descriptions": None},
    "code_mode": {"blocked_tables": ["credentials", "audit_log"], "blocked_fields": ["customers.ssn"]},
}


@pytest.fixture(scope="module")
def duck_path(sample_duckdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "warehouse.duckdb"
    shutil.copy(sample_duckdb_path, path)
    con = duckdb.connect(str(path))
    con.execute(SUBSCRIPTIONS.format(cast="", series="range(1, 50) t(i)"))
    con.close()
    # A twin for the direct reads: this process holds the first open with sqlmode's configuration.
    shutil.copy(path, path.with_suffix(".direct.duckdb"))
    return path


@pytest.fixture
async def duck(duck_path: Path, make_settings: Callable[..., Settings]) -> AsyncIterator[CodeModeService]:
    settings = make_settings(
        {**OVERRIDES, "database": {**OVERRIDES["database"], "url": f"duckdb:///{duck_path}"}}
    )
    async with CodeModeService(settings) as svc:
        yield svc


@pytest.mark.parametrize("case", legit_cases("duckdb", sweep=False), ids=lambda c: c.name)
async def test_duckdb_legit_query_is_confirmed_and_returns_the_databases_rows(
    case: Case, duck: CodeModeService, duck_path: Path
) -> None:
    await _validate_and_compare(
        duck, case, lambda sql: _duck_rows(duck_path.with_suffix(".direct.duckdb"), sql)
    )


def _duck_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def pg_corpus_urls(pg_admin_url: str, pg_settings_factory: Callable[..., Settings]) -> dict[str, str]:
    """A database of its own (the session's sample database is shared and must stay as built)."""
    from sqlmode.engines._postgres_grants import apply_grants, grant_script
    from sqlmode.sample import load_sample_postgres
    from sqlmode.schema.reflect import reflect_schema

    url = await create_database(pg_admin_url, "sqlmode_corpus")
    await load_sample_postgres(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SUBSCRIPTIONS.format(cast="::text", series="generate_series(1, 49) AS t(i)"))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    settings = pg_settings_factory(url, OVERRIDES)
    snapshot = await reflect_schema(settings)
    role = f"sqlmode_corpus_{secrets.token_hex(3)}"
    reader = await apply_grants(url, grant_script(settings, snapshot, role=role))
    return {"superuser": url, "reader": reader, "role": role}


@pytest.mark.postgres
@pytest.mark.parametrize("login", ["superuser", "reader"])
@pytest.mark.parametrize("case", legit_cases("postgres", sweep=False), ids=lambda c: c.name)
async def test_postgres_legit_query_is_confirmed_and_returns_the_databases_rows(
    case: Case,
    login: str,
    pg_corpus_urls: dict[str, str],
    pg_settings_factory: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    url = pg_corpus_urls[login]
    # Its own audit log: the session's PostgreSQL settings share one, which other tests read.
    # Connected as the superuser, every query switches to this database's reader role.
    database = {**OVERRIDES["database"], "reader_role": pg_corpus_urls["role"]}
    overrides = {**OVERRIDES, "database": database, "audit": {"path": str(tmp_path / "audit.jsonl")}}
    async with CodeModeService(pg_settings_factory(url, overrides)) as svc:

        async def direct(sql: str) -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(pg_corpus_urls["superuser"])
            try:
                return [tuple(r) for r in await conn.fetch(sql)]
            finally:
                await conn.close()

        # Both logins query as the reader role (the superuser switches to it).
        await _validate_and_compare(svc, case, direct, reader=True)


async def _validate_and_compare(
    svc: CodeModeService, case: Case, direct: Callable[[str], Any], *, reader: bool = False
) -> None:
    v = await svc.validate(case.sql)
    if reader and not v.is_valid and "SELECT *" in " ".join(case.sql.upper().split()):
        # The reader has no SELECT on customers.ssn, and PostgreSQL checks the columns a * names
        # before it plans (not this module's reading: the database's own refusal).
        assert [x.code for x in v.violations] == ["ENGINE_REFUSED"], v.violations
        assert "permission denied" in v.violations[0].message
        # The hint tells the model what to change: the * reaches a column the role may not read.
        assert "name the columns you need instead of *" in v.violations[0].hint
        return
    assert v.is_valid, (case.name, [(x.code, x.message) for x in v.violations])
    result = await svc.execute(v.normalized_code, v.approval_token or "")
    if "sample" in case.sql.lower():
        return  # a random sample: another run returns other rows
    expected = direct(v.normalized_code)
    if hasattr(expected, "__await__"):
        expected = await expected
    assert result.row_count == min(len(expected), result.row_count)
    assert result.row_count == len(expected) or result.truncated
