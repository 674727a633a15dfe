"""How many PostgreSQL sessions sqlmode opens, counted by the server, and that none outlives it.

The schema is read on the connection the executor proves the query role with (start-up) and on
a pooled session (refresh): no connection of its own. The server's cumulative count of sessions
(``pg_stat_database.sessions``, which a backend updates before it leaves ``pg_stat_activity``)
is read once every backend of the test's database has gone, so it is exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

import asyncpg
import pytest

from sqlmode.config import Settings
from sqlmode.engines._postgres_exec import PostgresExecutor
from sqlmode.execute import open_executor
from sqlmode.schema import reflect_schema
from sqlmode.service import CodeModeService
from tests.plugins.postgres import apply_sample_grants, create_database

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


async def settled_sessions(admin_url: str, db: str) -> int:
    """Sessions ever opened on ``db``, once none is left (fails naming the ones that stay)."""
    conn = await asyncpg.connect(admin_url)  # on another database: not counted
    try:
        for _ in range(400):
            left = await conn.fetch(
                "SELECT pid, usename::text, application_name, state, query FROM pg_stat_activity "
                "WHERE datname = $1",
                db,
            )
            if not left:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"sessions still open on {db}: {[tuple(r) for r in left]}")
        return int(await conn.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = $1", db))
    finally:
        await conn.close()


OVERRIDES = {
    "database": {"tables": [], "pool_min_size": 1},
    # This database has none of the sample's tables, so nothing of it to block.
    "code_mode": {"blocked_tables": [], "blocked_fields": []},
}


@pytest.fixture
async def counted_db(pg_admin_url: str, pg_settings: Callable[..., Settings]) -> tuple[str, str, str]:
    """(database name, superuser URL, reader URL) of a fresh database, grants applied."""
    url = await create_database(pg_admin_url, "sqlmode_conns")
    admin = await asyncpg.connect(url)
    try:
        await admin.execute("CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL)")
    finally:
        await admin.close()
    reader = await apply_sample_grants(url, pg_settings(url, OVERRIDES))
    return urlsplit(url).path.lstrip("/"), url, reader


@pytest.mark.parametrize("login", ["superuser", "reader"])
async def test_service_start_up_and_refresh_open_the_probe_and_the_pool_only(
    pg_admin_url: str, pg_settings: Callable[..., Settings], counted_db: tuple[str, str, str], login: str
) -> None:
    db, url, reader_url = counted_db
    settings = pg_settings(url if login == "superuser" else reader_url, OVERRIDES)
    # One reflection on a connection of its own is one session: what start-up and each refresh
    # opened beside the executor's probe and pool before.
    before = await settled_sessions(pg_admin_url, db)
    await reflect_schema(settings)
    assert await settled_sessions(pg_admin_url, db) - before == 1

    before = await settled_sessions(pg_admin_url, db)
    async with CodeModeService(settings) as svc:
        assert svc.executor.role == "sqlmode_reader"  # switched to, or logged in as
        first = await svc.schema()
        assert [(c.name, c.type) for c in first.tables["accounts"].columns] == [
            ("id", "INTEGER"),
            ("name", "TEXT"),
        ]
        admin = await asyncpg.connect(url)  # one session of the test's own
        try:
            await admin.execute("ALTER TABLE accounts ADD COLUMN region text")
        finally:
            await admin.close()
        again = await svc.refresh_schema()
        assert [c.name for c in again.tables["accounts"].columns] == ["id", "name", "region"]
        assert (await svc.refresh_schema()).schema_hash == again.schema_hash != first.schema_hash
        assert svc.executor.pool.size == 1
    # The probe, the one pooled session and the test's ALTER: none for the three reflections,
    # and none left open after the service closed.
    assert await settled_sessions(pg_admin_url, db) - before == 3


async def test_an_executor_reflecting_for_itself_uses_its_probe(
    pg_settings: Callable[..., Settings], pg_admin_url: str, counted_db: tuple[str, str, str]
) -> None:
    db, url, _reader_url = counted_db
    settings = pg_settings(url, OVERRIDES)
    before = await settled_sessions(pg_admin_url, db)
    async with open_executor(settings) as ex:
        assert isinstance(ex, PostgresExecutor) and ex.snapshot is not None
        assert "accounts" in ex.snapshot.tables
        assert (await ex.reflect()).schema_hash == ex.snapshot.schema_hash
        assert (await ex.run("SELECT count(*) AS n FROM accounts")).rows == [[0]]
    # The probe and the pooled session.
    assert await settled_sessions(pg_admin_url, db) - before == 2
