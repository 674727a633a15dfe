"""The state stores: the same atomic semantics on memory, SQLite and PostgreSQL, under real concurrency."""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sqlmode.errors import StateError
from sqlmode.state import MemoryStateStore, SqliteStateStore, StateStore
from sqlmode.state.postgres import PostgresStateStore
from tests.plugins.postgres import create_database

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
async def state_db(pg_admin_url: str) -> str:
    return await create_database(pg_admin_url, "sqlmode_state_test")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, state_db: str
) -> AsyncIterator[tuple[Any, Clock]]:
    clock = Clock()
    s: Any
    if request.param == "memory":
        s = MemoryStateStore(clock)
    elif request.param == "sqlite":
        s = SqliteStateStore(tmp_path / "state.db", clock)
    else:
        # A schema per test: the stores of different tests do not see each other's keys.
        s = await PostgresStateStore(state_db, schema=f"st_{secrets.token_hex(4)}", clock=clock).open()
    assert isinstance(s, StateStore)
    yield s, clock
    await s.close()


async def test_a_nonce_is_consumed_once_until_it_expires(store: tuple[Any, Clock]) -> None:
    s, clock = store
    assert await s.consume_nonce("n1", T0 + 10) is True
    assert await s.consume_nonce("n1", T0 + 10) is False
    assert await s.consume_nonce("n2", T0 + 10) is True
    clock.now = T0 + 11  # expired nonces are forgotten (tokens that old are refused as expired anyway)
    assert await s.consume_nonce("n1", T0 + 30) is True


async def test_records_create_get_update_take(store: tuple[Any, Clock]) -> None:
    s, _ = store
    assert await s.get("approval", "a1") is None
    assert await s.create("approval", "a1", {"state": "pending", "by": []}, expires_at=T0 + 60) is True
    assert await s.create("approval", "a1", {"state": "other"}) is False  # live: not replaced
    rec = await s.get("approval", "a1")
    assert rec is not None and rec.value == {"state": "pending", "by": []} and rec.version == 1
    assert rec.expires_at == T0 + 60
    # Compare-and-swap: the second writer with the stale version loses.
    won = await s.update("approval", "a1", {"state": "approved", "by": ["bo"]}, version=1)
    lost = await s.update("approval", "a1", {"state": "denied", "by": ["eve"]}, version=1)
    assert won is not None and won.version == 2 and won.value["state"] == "approved" and lost is None
    assert won.expires_at == T0 + 60  # kept
    moved = await s.update(
        "approval", "a1", {"state": "approved", "by": ["bo"]}, version=2, expires_at=T0 + 90
    )
    assert moved is not None and moved.expires_at == T0 + 90
    # take: exactly one caller gets the record.
    taken = await s.take("approval", "a1")
    assert taken is not None and taken.value["by"] == ["bo"]
    assert await s.take("approval", "a1") is None and await s.get("approval", "a1") is None
    # Namespaces are separate.
    assert await s.create("other", "a1", {"x": 1}) is True
    assert await s.get("approval", "a1") is None


async def test_expired_records_are_absent_and_replaceable(store: tuple[Any, Clock]) -> None:
    s, clock = store
    await s.create("approval", "a", {"v": 1}, expires_at=T0 + 5)
    clock.now = T0 + 6
    assert await s.get("approval", "a") is None
    assert await s.update("approval", "a", {"v": 2}, version=1) is None
    assert await s.take("approval", "a") is None
    assert await s.create("approval", "a", {"v": 3}, expires_at=T0 + 20) is True
    rec = await s.get("approval", "a")
    assert rec is not None and rec.value == {"v": 3} and rec.version == 1


async def test_counters_count_and_restart_after_expiry(store: tuple[Any, Clock]) -> None:
    s, clock = store
    assert [await s.incr("rate", "ana", expires_at=T0 + 60) for _ in range(3)] == [1, 2, 3]
    assert await s.incr("rate", "ana", 5, expires_at=T0 + 999) == 8
    assert await s.incr("rate", "bob", expires_at=T0 + 60) == 1
    clock.now = T0 + 61
    assert await s.incr("rate", "ana", expires_at=T0 + 120) == 1


async def test_concurrent_consumers_of_one_nonce_exactly_one_wins(store: tuple[Any, Clock]) -> None:
    s, _ = store
    results = await asyncio.gather(*(s.consume_nonce("race", T0 + 60) for _ in range(40)))
    assert results.count(True) == 1
    results = await asyncio.gather(*(s.take("x", "k") for _ in range(5)))
    assert results == [None] * 5


async def test_two_postgres_pools_race_on_every_nonce(state_db: str) -> None:
    # Two replicas' stores (separate pools, separate connections) consuming the same 200 nonces.
    a = await PostgresStateStore(state_db, schema="race", pool_max_size=4).open()
    b = await PostgresStateStore(state_db, schema="race", pool_max_size=4).open()
    try:
        nonces = [f"n{i}" for i in range(200)]
        wins = await asyncio.gather(*(store.consume_nonce(n, 9e9) for n in nonces for store in (a, b, a, b)))
        assert sum(wins) == 200
        for i in range(200):
            assert sum(wins[4 * i : 4 * i + 4]) == 1
    finally:
        await a.close()
        await b.close()


def _consume_all(path: str, n: int, out: Any) -> None:
    s = SqliteStateStore(path)
    out.put(sum(s.consume(f"n{i}", 9e9) for i in range(n)))
    s.close_sync()


def test_processes_sharing_a_sqlite_file_consume_each_nonce_once(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    SqliteStateStore(path).close_sync()
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_consume_all, args=(path, 300, q)) for _ in range(3)]
    for p in procs:
        p.start()
    totals = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert sum(totals) == 300


async def test_an_unreachable_postgres_store_refuses_to_open() -> None:
    with pytest.raises(
        StateError, match=r"cannot open the state store postgresql://sqlmode:\*\*\*@127\.0\.0\.1:9"
    ):
        await PostgresStateStore("postgresql://sqlmode:secret-pw@127.0.0.1:9/x", timeout_seconds=1).open()


async def test_a_failing_postgres_store_raises_state_error_not_a_traceback(state_db: str) -> None:
    s = await PostgresStateStore(state_db, schema="broken").open()
    try:
        await s.ping()
        conn = await asyncpg.connect(state_db)
        await conn.execute("DROP SCHEMA broken CASCADE")
        await conn.close()
        with pytest.raises(StateError, match="failed"):
            await s.consume_nonce("n", 9e9)
        with pytest.raises(StateError):
            await s.ping()
    finally:
        await s.close()


def test_an_unusable_schema_name_is_a_config_error() -> None:
    from sqlmode.errors import ConfigError

    with pytest.raises(ConfigError, match=r"state\.schema_name"):
        PostgresStateStore("postgresql://x@127.0.0.1/x", schema="a; DROP TABLE x")


async def test_the_postgres_store_survives_a_server_restart(state_db: str, pg_server: Any) -> None:
    # The pool's connections die with the server; the next call reconnects once, and spent nonces
    # are still spent (they are rows, not memory).
    s = await PostgresStateStore(state_db, schema="restart", pool_max_size=2).open()
    try:
        assert await s.consume_nonce("before", 9e9) is True
        await pg_server.restart()
        assert await s.consume_nonce("before", 9e9) is False
        assert await s.consume_nonce("after", 9e9) is True
    finally:
        await s.close()


# -- the in-memory store's count bound ----------------------------------------------------------


def test_a_full_memory_store_refuses_rather_than_forgetting_a_live_nonce() -> None:
    clock = Clock()
    s = MemoryStateStore(clock, max_entries=3)
    assert s.consume("a", T0 + 10) and s.consume("b", T0 + 20) and s.consume("c", T0 + 30)
    with pytest.raises(StateError) as e:
        s.consume("d", T0 + 30)
    assert e.value.code == "STATE_FULL" and "3 live records" in e.value.message
    # Nothing was evicted to make room: every spent nonce is still refused, "d" was not recorded.
    assert [s.consume(n, T0 + 30) for n in "abc"] == [False, False, False] and len(s) == 3
    clock.now = T0 + 15  # "a" expired: its token is refused as expired anyway, so it may go
    assert s.consume("d", T0 + 40) is True
    assert len(s) == 3 and s.consume("d", T0 + 40) is False and s.consume("b", T0 + 20) is False


async def test_the_memory_bound_counts_records_and_nonces_together() -> None:
    clock = Clock()
    s = MemoryStateStore(clock, max_entries=2)
    assert await s.create("approval", "a1", {"state": "pending"}, expires_at=T0 + 60)
    assert await s.consume_nonce("n1", T0 + 10)
    for full in (s.consume_nonce("n2", T0 + 10), s.create("approval", "a2", {}, expires_at=T0 + 60)):
        with pytest.raises(StateError) as e:
            await full
        assert e.value.code == "STATE_FULL"
    # Existing records still work at the bound: reading, updating and counting what exists.
    rec = await s.get("approval", "a1")
    assert rec is not None and rec.value == {"state": "pending"}
    assert await s.update("approval", "a1", {"state": "approved"}, version=1) is not None
    assert await s.take("approval", "a1") is not None  # taking one frees a place
    assert await s.incr("rate", "ana", expires_at=T0 + 60) == 1
    assert await s.incr("rate", "ana", expires_at=T0 + 60) == 2  # an existing counter needs no room


def test_memory_sweep_keeps_live_entries_and_drops_expired_ones() -> None:
    clock = Clock()
    s = MemoryStateStore(clock, sweep_every=2)
    for i in range(10):
        assert s.consume(f"n{i}", T0 + i)
    clock.now = T0 + 5.5
    assert s.consume("x", T0 + 100) and s.consume("y", T0 + 100)  # the second write sweeps
    assert len(s) == 4 + 2  # n6..n9 live, x, y
    assert [s.consume(f"n{i}", T0 + 100) for i in (6, 7, 8, 9)] == [False] * 4


def test_a_full_memory_store_sweeps_again_only_once_an_entry_can_have_expired() -> None:
    clock = Clock()
    s = MemoryStateStore(clock, max_entries=2)
    assert s.consume("a", T0 + 10) and s.consume("b", T0 + 20)
    sweeps = 0
    real = s._sweep

    def counting() -> None:
        nonlocal sweeps
        sweeps += 1
        real()

    s._sweep = counting  # type: ignore[method-assign]
    for _ in range(5):
        with pytest.raises(StateError):
            s.consume("c", T0 + 30)
    assert sweeps == 1  # nothing can expire before T0 + 10: one pass, then refusals alone
    clock.now = T0 + 10.5
    assert s.consume("c", T0 + 30) and sweeps == 2 and s.consume("b", T0 + 20) is False


async def test_a_nonce_can_be_looked_at_without_claiming_it(store: tuple[Any, Clock]) -> None:
    s, clock = store
    assert await s.nonce_used("n1") is False
    assert await s.nonce_used("n1") is False  # looking claims nothing
    assert await s.consume_nonce("n1", T0 + 10) is True
    assert await s.nonce_used("n1") is True and await s.nonce_used("n2") is False
    clock.now = T0 + 11  # expired: forgotten, as consume_nonce forgets it
    assert await s.nonce_used("n1") is False
