"""The write connection: capped single writes in a transaction, refused unless configured."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.engines._duckdb_exec import DuckDBExecutor
from sqlmode.errors import (
    ConfigError,
    NotAQueryError,
    PermissionDeniedError,
    QueryTimeoutError,
    WriteLimitExceededError,
)
from sqlmode.execute import open_executor, open_write_executor
from tests.plugins.postgres import create_database

WRITES = {"code_mode": {"allow_writes": True, "max_write_rows": 3}}


@pytest.fixture(scope="module")
async def write_db(pg_admin_url: str) -> AsyncIterator[str]:
    url = await create_database(pg_admin_url, "sqlmode_writes")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, status text NOT NULL, qty int NOT NULL);"
            "INSERT INTO items SELECT g, 'new', g FROM generate_series(1, 10) g;"
        )
    finally:
        await conn.close()
    yield url


async def pg_rows(url: str) -> list[tuple[int, str, int]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch("SELECT id, status, qty FROM items ORDER BY id")]
    finally:
        await conn.close()


def pg_write_settings(pg_settings: Callable[..., Settings], url: str, **code_mode: object) -> Settings:
    return pg_settings(
        url,
        # The superuser writes here (development opt-out): sqlmode's own caps are what is tested.
        {
            "database": {"write_url": url, "tables": [], "allow_privileged_role": True},
            "code_mode": {**WRITES["code_mode"], **code_mode},
        },
    )


async def test_writes_are_refused_unless_configured(
    pg_settings: Callable[..., Settings], write_db: str, make_settings: Callable[..., Settings]
) -> None:
    with pytest.raises(ConfigError) as ei:
        async with open_write_executor(pg_settings(write_db, {"database": {"write_url": write_db}})):
            pass
    assert ei.value.key == "code_mode.allow_writes"
    with pytest.raises(ConfigError) as ei:
        async with open_write_executor(pg_settings(write_db, WRITES)):
            pass
    assert ei.value.key == "database.write_url"


async def test_postgres_write_within_the_cap_commits(
    pg_settings: Callable[..., Settings], write_db: str
) -> None:
    async with open_write_executor(pg_write_settings(pg_settings, write_db)) as w:
        r = await w.run_write("UPDATE items SET status = 'seen' WHERE id <= 2")
        assert (r.statement, r.affected_rows) == ("UPDATE", 2)
        r = await w.run_write("INSERT INTO items VALUES (11, 'new', 11) RETURNING id, qty")
        assert (r.statement, r.affected_rows, r.rows) == ("INSERT", 1, [[11, 11]])
    rows = await pg_rows(write_db)
    assert rows[0][1] == rows[1][1] == "seen" and rows[2][1] == "new" and rows[-1] == (11, "new", 11)


async def test_postgres_write_over_the_cap_is_rolled_back(
    pg_settings: Callable[..., Settings], write_db: str
) -> None:
    before = await pg_rows(write_db)
    async with open_write_executor(pg_write_settings(pg_settings, write_db)) as w:
        with pytest.raises(WriteLimitExceededError) as ei:
            await w.run_write("UPDATE items SET qty = qty + 100")
        assert "rolled back" in ei.value.message and str(len(before)) in ei.value.message
        with pytest.raises(WriteLimitExceededError):
            await w.run_write("UPDATE items SET qty = qty + 100 RETURNING *")
        with pytest.raises(WriteLimitExceededError):  # a per-call cap only lowers the configured one
            await w.run_write("UPDATE items SET qty = 0 WHERE id <= 2", max_affected=1)
        r = await w.run_write("UPDATE items SET qty = qty WHERE id <= 3", max_affected=100)
        assert r.affected_rows == 3
    assert await pg_rows(write_db) == before


async def test_postgres_refuses_deletes_ddl_and_several_statements(
    pg_settings: Callable[..., Settings], write_db: str
) -> None:
    before = await pg_rows(write_db)
    async with open_write_executor(pg_write_settings(pg_settings, write_db)) as w:
        for sql, err in [
            ("DELETE FROM items WHERE id = 1", PermissionDeniedError),
            (
                "WITH d AS (DELETE FROM items WHERE id = 1 RETURNING id) "
                "UPDATE items SET qty = 0 WHERE id < 0",
                PermissionDeniedError,
            ),
            ("DROP TABLE items", NotAQueryError),
            ("TRUNCATE items", NotAQueryError),
            ("SELECT * FROM items", NotAQueryError),
            ("UPDATE items SET qty = 1 WHERE id = 1; DROP TABLE items", NotAQueryError),
        ]:
            with pytest.raises(err):
                await w.run_write(sql)
        with pytest.raises(QueryTimeoutError):
            await w.run_write(
                "UPDATE items SET qty = qty + 1 WHERE id = 1 AND pg_sleep(5) IS NOT NULL", timeout_ms=300
            )
    assert await pg_rows(write_db) == before
    async with open_write_executor(pg_write_settings(pg_settings, write_db, allow_deletes=True)) as w:
        r = await w.run_write("DELETE FROM items WHERE id = 10")
        assert (r.statement, r.affected_rows) == ("DELETE", 1)
    assert len(await pg_rows(write_db)) == len(before) - 1


async def test_the_read_pool_never_writes_even_when_writes_are_allowed(
    pg_settings: Callable[..., Settings], write_db: str
) -> None:
    # As the administrator itself (development opt-out): the read-only transaction alone refuses.
    settings = pg_settings(
        write_db,
        {
            "database": {"write_url": write_db, "tables": [], "allow_privileged_role": True},
            "code_mode": WRITES["code_mode"],
        },
    )
    async with open_executor(settings) as ex:
        with pytest.raises(PermissionDeniedError):
            await ex.run("WITH u AS (UPDATE items SET qty = 0 RETURNING id) SELECT count(*) FROM u")


def duck_rows(path: Path) -> list[tuple[int, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT id, status FROM orders WHERE id <= 5 ORDER BY id").fetchall()
    finally:
        con.close()


async def test_duckdb_writes_share_the_instance_and_respect_the_cap(
    duck_settings: Callable[..., Settings], duck_copy: Path
) -> None:
    before = duck_rows(duck_copy)
    settings = duck_settings(WRITES)
    async with open_executor(settings) as reader, open_write_executor(settings) as w:
        assert isinstance(reader, DuckDBExecutor)
        assert any("read-write" in x for x in reader.warnings)
        r = await w.run_write("UPDATE orders SET status = 'void' WHERE id <= 2")
        assert (r.statement, r.affected_rows) == ("UPDATE", 2)
        assert (await reader.run("SELECT status FROM orders WHERE id <= 2")).rows == [["void"], ["void"]]
        with pytest.raises(WriteLimitExceededError):
            await w.run_write("UPDATE orders SET status = 'gone' WHERE id <= 5")
        with pytest.raises(PermissionDeniedError):
            await w.run_write("DELETE FROM orders WHERE id = 1")
        with pytest.raises(NotAQueryError):
            await w.run_write("UPDATE orders SET status = 'x' WHERE id = 1; DROP TABLE orders")
        reader._check_text = False  # reads run in read-only transactions even on a read-write instance
        with pytest.raises(PermissionDeniedError):
            await reader.run("UPDATE orders SET status = 'x' WHERE id = 3")
        r = await w.run_write(
            "INSERT INTO orders SELECT id + 1000000, customer_id, status, total, created_at "
            "FROM orders WHERE id = 3 RETURNING id"
        )
        assert r.rows == [[1000003]] and r.affected_rows == 1
    after = duck_rows(duck_copy)
    assert after[:2] == [(1, "void"), (2, "void")] and after[2:] == before[2:]
