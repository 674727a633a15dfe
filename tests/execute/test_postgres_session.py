"""PostgreSQL sessions: read-only, limited, clean between uses, bounded, and resilient."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from sqlmode.config import Settings
from sqlmode.engines._postgres_exec import PostgresExecutor
from sqlmode.errors import (
    DatabaseUnavailableError,
    NotAQueryError,
    PermissionDeniedError,
    QueryTimeoutError,
)
from sqlmode.execute import open_executor


@pytest.fixture
async def admin(pg_sample_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_sample_url)
    try:
        yield conn
    finally:
        await conn.close()


def reader_name(url: str) -> str:
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).username or "")


async def active_reader_queries(admin: asyncpg.Connection, user: str, since: Any = None) -> list[str]:
    """The reader's running statements; with ``since`` (the server's now() when the test began),
    only those started after it: another test's leftover on the shared server is not this test's."""
    rows = await admin.fetch(
        "SELECT query FROM pg_stat_activity "
        "WHERE usename = $1 AND state = 'active' AND pid <> pg_backend_pid() "
        "AND ($2::timestamptz IS NULL OR query_start >= $2)",
        user,
        since,
    )
    return [r["query"] for r in rows]


async def wait_until_idle(
    admin: asyncpg.Connection, user: str, within_s: float = 3.0, since: Any = None
) -> list[str]:
    deadline = time.monotonic() + within_s
    while True:
        active = await active_reader_queries(admin, user, since)
        if not active or time.monotonic() > deadline:
            return active
        await asyncio.sleep(0.05)


async def each_pooled_session(ex: PostgresExecutor, sql: str) -> list[Any]:
    """``sql`` once on every pooled connection (they are all held at once, so each is distinct)."""
    assert ex.pool is not None
    await asyncio.sleep(0.05)  # let background resets finish
    n = ex.pool.max_size
    conns = [await ex._acquire() for _ in range(n)]
    try:
        return [await c.fetchval(sql) for c in conns]
    finally:
        for c in conns:
            ex._release(c, discard=False)


# -- read-only and settings ---------------------------------------------------------------------


async def test_every_statement_runs_read_only_with_the_configured_timeouts(pg: PostgresExecutor) -> None:
    r = await pg.run(
        "SELECT current_setting('transaction_read_only'), current_setting('statement_timeout'), "
        "current_setting('lock_timeout'), current_setting('idle_in_transaction_session_timeout'), "
        "current_setting('client_connection_check_interval')"
    )
    assert r.rows == [["on", "5s", "1s", "10s", "1s"]]
    lowered = await pg.run("SELECT current_setting('statement_timeout')", timeout_ms=1500)
    assert lowered.rows == [["1500ms"]]


async def test_data_modifying_cte_is_refused_by_the_session(pg: PostgresExecutor) -> None:
    with pytest.raises(PermissionDeniedError):
        await pg.run("WITH d AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM d")


CHANGE_SETTINGS = (
    "SELECT set_config('default_transaction_read_only', 'off', false), "
    "set_config('statement_timeout', '0', false), set_config('search_path', 'pg_catalog', false), "
    "pg_advisory_lock(42)"
)


async def test_the_reader_may_not_change_settings_and_its_locks_are_undone(pg: PostgresExecutor) -> None:
    with pytest.raises(PermissionDeniedError, match="set_config"):
        await pg.run(CHANGE_SETTINGS)
    for _ in range(3):  # land on several pooled connections
        await pg.run("SELECT pg_advisory_lock(42)")
    states = await each_pooled_session(
        pg,
        "SELECT current_setting('default_transaction_read_only') || ' ' "
        "|| (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())",
    )
    assert set(states) == {"on 0"}


async def test_settings_changed_by_a_query_are_undone_before_the_next_use(
    pg_sample_url: str, pg_settings: Callable[..., Settings]
) -> None:
    # Only a role that may call set_config can change settings: the login role with the
    # development opt-out and no reader role to switch to (the reader may not, see above).
    settings = pg_settings(
        pg_sample_url, {"database": {"allow_privileged_role": True, "reader_role": "nobody_x"}}
    )
    async with open_executor(settings) as pg:
        assert isinstance(pg, PostgresExecutor)
        await _settings_are_undone(pg)


async def _settings_are_undone(pg: PostgresExecutor) -> None:
    for _ in range(3):  # land on several pooled connections
        await pg.run(CHANGE_SETTINGS)
    states = await each_pooled_session(
        pg,
        "SELECT current_setting('default_transaction_read_only') || ' ' "
        "|| current_setting('statement_timeout') "
        "|| ' ' || (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())",
    )
    assert set(states) == {"on 5s 0"}
    r = await pg.run("SELECT current_setting('transaction_read_only'), current_setting('search_path')")
    assert r.rows[0][0] == "on" and "public" in r.rows[0][1]


async def test_session_state_commands_never_execute(pg: PostgresExecutor) -> None:
    pg._check_text = False  # the protocol-level check alone must refuse them
    for sql in [
        "PREPARE leak AS SELECT 1",
        "DECLARE held CURSOR WITH HOLD FOR SELECT pg_sleep(30)",
        "LISTEN leak",
        "SET statement_timeout = 0",
        "BEGIN READ WRITE",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    ]:
        t0 = time.monotonic()
        with pytest.raises(NotAQueryError):
            await pg.run(sql)
        assert time.monotonic() - t0 < 1.0
    state = await each_pooled_session(
        pg,
        "SELECT (SELECT count(*) FROM pg_prepared_statements WHERE name NOT LIKE '\\_\\_asyncpg%') "
        "+ (SELECT count(*) FROM pg_cursors WHERE name <> '') "
        "+ (SELECT count(*) FROM pg_listening_channels())",
    )
    assert set(state) == {0}
    r = await pg.run("SELECT current_setting('default_transaction_read_only')")
    assert r.rows == [["on"]]


async def test_reader_role_is_not_warned_about_and_a_superuser_switches_to_it(
    pg: PostgresExecutor, pg_reader_url: str, pg_sample_url: str, pg_settings: Callable[..., Settings]
) -> None:
    reader = reader_name(pg_reader_url)
    assert pg.warnings == [] and (pg.login_role, pg.role) == (reader, reader)
    async with open_executor(pg_settings(pg_sample_url)) as su:
        assert isinstance(su, PostgresExecutor)
        assert (su.login_role, su.role, su.warnings) == ("postgres", reader, [])
        r = await su.run("SELECT current_user, session_user, current_setting('is_superuser')")
        assert r.rows == [[reader, "postgres", "off"]]
    dev = pg_settings(pg_sample_url, {"database": {"allow_privileged_role": True, "reader_role": "nobody_x"}})
    async with open_executor(dev) as su:
        assert isinstance(su, PostgresExecutor)
        assert su.privileged and su.role == "postgres"
        assert any("allow_privileged_role" in w for w in su.warnings)
        assert any("can write" in w for w in su.warnings)


# -- deadlines --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_sleep(30)",
        "SELECT count(*) FROM orders a, orders b, orders c",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        "SELECT count(*) FROM generate_series(1, 1000000000)",
    ],
    ids=["pg_sleep", "cross_join", "recursive_cte_bomb", "huge_series"],
)
async def test_deadline_holds_and_the_server_stops_the_query(
    pg: PostgresExecutor, admin: asyncpg.Connection, pg_reader_url: str, sql: str
) -> None:
    t0 = time.monotonic()
    with pytest.raises(QueryTimeoutError):
        await pg.run(sql, timeout_ms=300)
    assert time.monotonic() - t0 < 1.5
    assert await wait_until_idle(admin, reader_name(pg_reader_url)) == []
    assert (await pg.run("SELECT 2 AS two")).rows == [[2]]


async def test_with_hold_cursor_cannot_outlive_the_deadline(
    pg: PostgresExecutor, admin: asyncpg.Connection, pg_reader_url: str
) -> None:
    # A WITH HOLD cursor would materialise its query at commit, past statement_timeout.
    t0 = time.monotonic()
    with pytest.raises(NotAQueryError):
        await pg.run("DECLARE c CURSOR WITH HOLD FOR SELECT pg_sleep(30)", timeout_ms=300)
    assert time.monotonic() - t0 < 1.0
    assert await wait_until_idle(admin, reader_name(pg_reader_url)) == []


async def test_caller_cancellation_stops_the_query(
    pg: PostgresExecutor, admin: asyncpg.Connection, pg_reader_url: str
) -> None:
    task = asyncio.create_task(pg.run("SELECT pg_sleep(30)"))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_until_idle(admin, reader_name(pg_reader_url)) == []


# -- pool bounds ------------------------------------------------------------------------------------


async def test_32_concurrent_queries_never_exceed_the_pool_and_leak_nothing(
    reader_settings: Callable[..., Settings], admin: asyncpg.Connection, pg_reader_url: str
) -> None:
    user = reader_name(pg_reader_url)
    settings = reader_settings({"database": {"pool_max_size": 4, "pool_min_size": 1}})
    peak = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            n = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND application_name = 'sqlmode'",
                user,
            )
            peak = max(peak, n)
            await asyncio.sleep(0.01)

    async with open_executor(settings) as ex:
        assert isinstance(ex, PostgresExecutor)
        watcher = asyncio.create_task(watch())
        results = await asyncio.gather(*(ex.run(f"SELECT {i} AS i, pg_sleep(0.05)") for i in range(32)))
        await asyncio.sleep(0.1)
        done.set()
        await watcher
        assert sorted(r.rows[0][0] for r in results) == list(range(32))
        assert 1 <= peak <= 4
        assert ex.pool is not None and ex.pool.size <= 4
    left = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND application_name = 'sqlmode'", user
    )
    assert left == 0


async def test_waiting_for_a_connection_counts_against_the_deadline(
    reader_settings: Callable[..., Settings],
) -> None:
    settings = reader_settings({"database": {"pool_max_size": 1, "pool_min_size": 1}})
    async with open_executor(settings) as ex:
        slow = asyncio.create_task(ex.run("SELECT pg_sleep(1)"))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        with pytest.raises(QueryTimeoutError):
            await ex.run("SELECT 1", timeout_ms=200)
        assert time.monotonic() - t0 < 0.6
        await slow


# -- failures of the connection or the server ---------------------------------------------------------


async def test_killed_connection_costs_only_the_query_in_flight(
    pg: PostgresExecutor, admin: asyncpg.Connection, pg_reader_url: str
) -> None:
    user = reader_name(pg_reader_url)
    task = asyncio.create_task(pg.run("SELECT pg_sleep(20), 'victim'"))
    for _ in range(100):
        pid = await admin.fetchval(
            "SELECT pid FROM pg_stat_activity "
            "WHERE usename = $1 AND query LIKE '%victim%' AND state = 'active'",
            user,
        )
        if pid:
            break
        await asyncio.sleep(0.02)
    assert pid, "the query never started"
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    with pytest.raises(DatabaseUnavailableError) as ei:
        await task
    assert "connection" in ei.value.message.lower()
    assert (await pg.run("SELECT 'next' AS x")).rows == [["next"]]


async def test_server_restart_costs_only_the_query_in_flight(
    reader_settings: Callable[..., Settings], pg_server: Any
) -> None:
    settings = reader_settings({"database": {"pool_max_size": 3, "pool_min_size": 3}})
    async with open_executor(settings) as ex:
        await asyncio.gather(*(ex.run("SELECT pg_sleep(0.05)") for _ in range(3)))  # warm every connection
        in_flight = asyncio.create_task(ex.run("SELECT pg_sleep(20)"))
        await asyncio.sleep(0.2)
        await pg_server.restart()
        with pytest.raises(DatabaseUnavailableError):
            await in_flight
        for i in range(5):  # every pooled connection died with the server; each call must still work
            assert (await ex.run(f"SELECT {i} AS i")).rows == [[i]]


async def test_unreachable_database_is_a_clear_error(pg_settings: Callable[..., Settings]) -> None:
    settings = pg_settings("postgresql://nobody@127.0.0.1:1/none", {"database": {"connect_timeout_ms": 500}})
    with pytest.raises(DatabaseUnavailableError) as ei:
        async with open_executor(settings):
            pass
    assert "127.0.0.1:1/none" in ei.value.message


# -- which statements need the session reset ----------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "needs_reset"),
    [
        ("SELECT region, count(*), round(avg(total)::numeric, 2) FROM orders GROUP BY 1", False),
        ("SELECT date_trunc('month', created_at) AS m, sum(total) FROM orders GROUP BY 1 ORDER BY 1", False),
        ("SELECT set_config('statement_timeout', '0', false)", True),
        ("SELECT pg_catalog.pg_advisory_lock(1)", True),
        ("SELECT \"set_config\"('a', 'b', false)", True),
        ("SELECT set_config -- hidden\n ('a', 'b', false)", True),
        ("SELECT set_config/**/('a', 'b', false)", True),
        ("SELECT U&\"\\0073et_config\"('a', 'b', false)", True),
        ("SELECT my_function(id) FROM orders", True),
        ("SELECT x FROM orders AS o(x)", True),  # an alias column list looks like a call: reset, harmless
        # A name is read whole: a safe name inside an unsafe one, or an unsafe one after a letter the
        # pattern does not know, is still a call of the unsafe function.
        ("SELECT xnow() FROM orders", True),
        ("SELECT nowx ( ) FROM orders", True),
        ("SELECT éset_config('a', 'b', false)", True),
        ('SELECT x"set_config"(1)', True),
        ("SELECT a$b(1)", True),
        ("SELECT now(), lower(status) FROM orders", False),
        ("SELECT id, customer_id, status FROM orders WHERE id > -5 ORDER BY id LIMIT 10", False),
    ],
)
def test_only_side_effect_free_calls_skip_the_reset(sql: str, needs_reset: bool) -> None:
    from sqlmode.engines._postgres_session import may_change_session

    assert may_change_session(sql) is needs_reset


async def test_a_cancelled_wait_for_a_connection_leaks_no_slot(
    reader_settings: Callable[..., Settings],
) -> None:
    settings = reader_settings({"database": {"pool_max_size": 1, "pool_min_size": 0}})
    async with open_executor(settings) as ex:
        assert isinstance(ex, PostgresExecutor) and ex.pool is not None
        slow = asyncio.create_task(ex.run("SELECT pg_sleep(0.5)"))
        await asyncio.sleep(0.1)
        waiters = [asyncio.create_task(ex.run("SELECT 1")) for _ in range(3)]
        await asyncio.sleep(0.05)
        for w in waiters:
            w.cancel()
        await slow
        for _ in range(3):
            assert (await ex.run("SELECT 7 AS x")).rows == [[7]]
        assert ex.pool.size <= 1


@pytest.mark.parametrize("login", ["reader", "superuser"])
async def test_a_full_statement_cache_costs_novel_queries_no_close_and_answers_each_right(
    login: str, pg_reader_url: str, pg_sample_url: str, pg_settings: Callable[..., Settings]
) -> None:
    # Novel text once asyncpg's statement cache is full: prepared unnamed, so nothing cached is
    # closed (a round trip before the query) to make room. The server's prepared statements
    # show it: the first texts stay, the later ones were never named; every answer is its own.
    url = pg_reader_url if login == "reader" else pg_sample_url
    settings = pg_settings(url, {"database": {"pool_max_size": 1, "pool_min_size": 1}})
    async with open_executor(settings) as ex:
        assert isinstance(ex, PostgresExecutor) and ex.pool is not None
        conn = await ex._acquire()
        size = conn._stmt_cache.get_max_size()
        ex._release(conn, discard=False)
        n = size + 30
        for i in range(n):
            assert (await ex.run(f"SELECT {i} AS i, 'q{i}' AS tag")).rows == [[i, f"q{i}"]]
        r = await ex.run(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'SELECT % AS tag'"
        )
        kept = sorted(int(row[0].split()[1]) for row in r.rows)
        assert kept and len(kept) <= size
        assert kept == list(range(len(kept)))  # the first ones, none closed for a newer one
        assert (await ex.run("SELECT 0 AS i, 'q0' AS tag")).rows == [[0, "q0"]]  # still served
        assert (await ex.run(f"SELECT {n - 1} AS i, 'q{n - 1}' AS tag")).rows == [[n - 1, f"q{n - 1}"]]
        assert ex.pool.size == 1
