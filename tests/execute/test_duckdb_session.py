"""DuckDB: a locked-down read-only instance, a cursor per call, deadlines that interrupt."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sqlmode.config import Settings
from sqlmode.engines._duckdb_exec import DuckDBExecutor
from sqlmode.errors import (
    DatabaseUnavailableError,
    ExecutionError,
    NotAQueryError,
    PermissionDeniedError,
    QueryTimeoutError,
)
from sqlmode.execute import open_executor


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_configuration_is_locked_down(duck: DuckDBExecutor) -> None:
    r = await duck.run(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
        "'lock_configuration', 'autoload_known_extensions', 'autoinstall_known_extensions', "
        "'threads', 'python_enable_replacements', 'allow_community_extensions') ORDER BY name"
    )
    assert dict(r.rows) == {
        "allow_community_extensions": "false",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "enable_external_access": "false",
        "lock_configuration": "true",
        "python_enable_replacements": "false",
        "threads": str(duck.settings.database.threads),
    }
    duck._check_text = False  # the instance alone must refuse, not the statement check
    for sql in ["SET enable_external_access = true", "SET threads = 64", "RESET lock_configuration"]:
        with pytest.raises(ExecutionError):
            await duck.run(sql)
    r = await duck.run(
        "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')"
    )
    assert r.rows == [[False, True]] or r.rows == [["false", "true"]]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM 'other.duckdb'",
        "SELECT * FROM glob('/*')",
    ],
)
async def test_external_access_is_off(duck: DuckDBExecutor, sql: str) -> None:
    with pytest.raises((PermissionDeniedError, ExecutionError)) as ei:
        await duck.run(sql)
    assert "disabled" in ei.value.message or "Permission" in ei.value.message or "not" in ei.value.message


async def test_nothing_is_written_to_disk(duck: DuckDBExecutor, duck_copy: Path, tmp_path: Path) -> None:
    before = digest(duck_copy)
    target = tmp_path / "leak.csv"
    duck._check_text = False
    for sql in [
        f"COPY orders TO '{target}'",
        f"EXPORT DATABASE '{tmp_path / 'exp'}'",
        f"ATTACH '{tmp_path / 'evil.duckdb'}' AS evil",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO orders SELECT * FROM orders LIMIT 1",
        "INSTALL httpfs",
    ]:
        with pytest.raises(ExecutionError):
            await duck.run(sql)
    await duck.run("CHECKPOINT")  # a no-op on a read-only instance
    assert sorted(os.listdir(tmp_path)) == ["warehouse.duckdb"]
    assert not target.exists()
    assert digest(duck_copy) == before


async def test_temporary_objects_die_with_their_cursor(duck: DuckDBExecutor) -> None:
    duck._check_text = False
    await duck.run("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
    with pytest.raises(ExecutionError):
        await duck.run("SELECT * FROM scratch")


async def test_only_one_select_statement_runs(duck: DuckDBExecutor) -> None:
    with pytest.raises(NotAQueryError) as ei:
        await duck.run("SELECT 1; SELECT 2")
    assert "one statement" in ei.value.message
    with pytest.raises(NotAQueryError):
        await duck.run("PRAGMA version")
    for ok in ["FROM orders LIMIT 1", "VALUES (1)", "SELECT 1 UNION SELECT 2", "(SELECT 1)"]:
        await duck.run(ok)


async def test_concurrent_calls_from_several_clients(duck_settings: Callable[..., Settings]) -> None:
    settings = duck_settings({"database": {"pool_max_size": 3}})
    async with open_executor(settings) as ex:
        results = await asyncio.gather(
            *(ex.run(f"SELECT {i} AS i, count(*) FROM orders WHERE id % 7 = {i % 7}") for i in range(24))
        )
        assert [r.rows[0][0] for r in results] == list(range(24))
        # A slow query does not block the others beyond the worker count.
        slow = asyncio.create_task(
            ex.run("SELECT count(*) FROM range(1000000000) a, range(100) b", timeout_ms=800)
        )
        t0 = time.monotonic()
        quick = await asyncio.gather(*(ex.run("SELECT 1") for _ in range(5)))
        assert len(quick) == 5 and time.monotonic() - t0 < 0.7
        with pytest.raises(QueryTimeoutError):
            await slow


async def test_deadline_interrupts_and_the_worker_comes_back(duck_settings: Callable[..., Settings]) -> None:
    settings = duck_settings({"database": {"pool_max_size": 1}})
    async with open_executor(settings) as ex:
        for sql in [
            "SELECT count(*) FROM range(1000000000) a, range(1000) b",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        ]:
            t0 = time.monotonic()
            with pytest.raises(QueryTimeoutError):
                await ex.run(sql, timeout_ms=250)
            assert time.monotonic() - t0 < 1.5
        # the single worker is free again
        t0 = time.monotonic()
        assert (await ex.run("SELECT 42")).rows == [[42]]
        assert time.monotonic() - t0 < 0.5


async def test_caller_cancellation_interrupts(duck_settings: Callable[..., Settings]) -> None:
    async with open_executor(duck_settings({"database": {"pool_max_size": 1}})) as ex:
        task = asyncio.create_task(ex.run("SELECT count(*) FROM range(1000000000) a, range(1000) b"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        t0 = time.monotonic()
        await ex.run("SELECT 1")
        assert time.monotonic() - t0 < 1.0


async def test_only_max_rows_plus_one_are_fetched(duck: DuckDBExecutor) -> None:
    t0 = time.monotonic()
    r = await duck.run("SELECT range AS n FROM range(2000000000)", max_rows=5)
    assert r.rows == [[0], [1], [2], [3], [4]] and r.truncated
    assert time.monotonic() - t0 < 2.0


async def test_missing_file_is_a_clear_error(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings({"database": {"url": f"duckdb:///{tmp_path / 'nope.duckdb'}"}})
    with pytest.raises(DatabaseUnavailableError) as ei:
        async with open_executor(settings):
            pass
    assert "nope.duckdb" in ei.value.message


@pytest.mark.parametrize("give_up", [True, False])
async def test_a_query_still_queued_when_its_caller_gives_up_never_starts(
    duck_settings: Callable[..., Settings], give_up: bool
) -> None:
    """One worker, busy: a call queued behind it and cancelled by its caller never reaches DuckDB;
    the same call left alone runs once the worker is free."""
    import threading

    release, started = threading.Event(), threading.Event()
    ran: list[str] = []

    def busy(cur: object) -> None:
        started.set()
        release.wait(10)

    def queued(cur: object) -> None:
        ran.append("queued")

    async with open_executor(duck_settings({"database": {"pool_max_size": 1}})) as ex:
        assert isinstance(ex, DuckDBExecutor)
        first = asyncio.create_task(ex._call(5000, busy))
        await asyncio.to_thread(started.wait, 5)
        second = asyncio.create_task(ex._call(5000, queued))
        await asyncio.sleep(0.05)  # the second call is submitted and waits for the worker
        if give_up:
            # The caller has given up (its cancellation handled) while the worker is still busy.
            second.cancel()
            with pytest.raises(asyncio.CancelledError):
                await second
            assert not release.is_set()
        release.set()
        await first
        if not give_up:
            await second
        # The worker is free: anything still queued would have run by the time this call does.
        r = await ex.run("SELECT 1")
        assert r.rows == [[1]]
    assert ran == ([] if give_up else ["queued"])
