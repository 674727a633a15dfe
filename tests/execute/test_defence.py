"""Every attack fixture straight through the executor, analyzer out of the way; then the database is checked.

The executor must answer every attack with a result or a SqlmodeError, and afterwards: no table,
relation, privilege, sequence, large object, role, database or server setting changed, no file
named in an attack appeared or changed, every pooled session is back to its clean read-only
state, no query is still running, and (as the reader role) no blocked value ever came back.

Each corpus runs twice: with the executor's own text check, and with it switched off, to show that
the database session alone holds.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sqlmode.config import Settings
from sqlmode.engines._duckdb_exec import DuckDBExecutor
from sqlmode.engines._postgres_exec import PostgresExecutor
from sqlmode.errors import SqlmodeError
from sqlmode.execute import open_executor
from tests.fixtures.cases import Case, attack_cases

from .test_postgres_session import each_pooled_session, reader_name, wait_until_idle

PG_CASES = attack_cases("postgres")
DUCK_CASES = attack_cases("duckdb")
# One huge scalar value (a billion-element list, a gigabyte string): DuckDB checks for interrupts
# only after computing it, 4-35 s later. The caller still gets its timeout at the deadline (see
# test_uninterruptible_duckdb_computation_still_answers_at_the_deadline); only the analyzer's
# argument limits stop the work itself. Left out here so the worker pool is not busy for a minute.
DUCK_UNINTERRUPTIBLE = {"generate_series_in_select_huge", "repeat_huge", "lpad_huge"}
ATTACK_TIMEOUT_MS = 400
# Leak probes read a blocked item and must be refused by the database's permissions, not cut off
# by a deadline: a loaded machine must not turn their expected PERMISSION_DENIED into a timeout.
PROBE_TIMEOUT_MS = 10_000
# How long past its deadline a call may take to answer. Generous on purpose: the property is that
# the deadline holds (an attack left running would take minutes), not how fast a loaded machine is.
DEADLINE_SLACK_S = 15

_PATH = re.compile(r"'(/[^']*)'")


def mentioned_files(cases: list[Case]) -> dict[str, Any]:
    """Existence, size and mtime of every absolute path an attack names."""
    out: dict[str, Any] = {}
    for case in cases:
        for p in _PATH.findall(case.sql):
            path = Path(p)
            try:
                st = path.stat()
                out[p] = (True, st.st_size, st.st_mtime_ns)
            except OSError:
                out[p] = (False,)
    return out


async def pg_state(url: str) -> dict[str, Any]:
    """What an attack could change, read as the administrator."""
    conn = await asyncpg.connect(url)
    try:
        state: dict[str, Any] = {}
        tables = await conn.fetch(
            "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        )
        for row in tables:
            state[f"checksum {row['t']}"] = await conn.fetchval(
                "SELECT count(*) || ':' || "
                "coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') "
                f"FROM {row['t']} t"
            )
        queries = {
            "relations": "SELECT n.nspname, c.relname, c.relkind, c.relacl::text, c.relowner::regrole::text "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
            "ORDER BY 1, 2",
            "column acls": "SELECT attrelid::regclass::text, attname, attacl::text FROM pg_attribute "
            "WHERE attacl IS NOT NULL ORDER BY 1, 2",
            "sequences": "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2",
            "large objects": "SELECT oid, lomowner FROM pg_largeobject_metadata ORDER BY 1",
            "roles": "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, "
            "rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil FROM pg_roles ORDER BY 1",
            "memberships": "SELECT roleid::regrole::text, member::regrole::text FROM pg_auth_members "
            "ORDER BY 1, 2",
            "role and database settings": "SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting "
            "ORDER BY 1, 2",
            "databases": "SELECT datname, datacl::text, datconnlimit, datallowconn FROM pg_database "
            "ORDER BY 1",
            "server settings": "SELECT name, setting FROM pg_file_settings ORDER BY 1, 2",
            "functions": "SELECT p.oid::regprocedure::text, p.proacl::text FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "OR p.proname ~ '^(lo_|dblink|pg_read|pg_ls)' ORDER BY 1",
            "extensions": "SELECT extname, extversion FROM pg_extension ORDER BY 1",
            "schemas": "SELECT nspname, nspacl::text FROM pg_namespace ORDER BY 1",
            "publications": "SELECT pubname FROM pg_publication ORDER BY 1",
            "event triggers": "SELECT evtname FROM pg_event_trigger ORDER BY 1",
        }
        for name, sql in queries.items():
            state[name] = [tuple(r) for r in await conn.fetch(sql)]
        return state
    finally:
        await conn.close()


async def secret_values(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        ssn = [r[0] for r in await conn.fetch("SELECT ssn FROM customers WHERE ssn IS NOT NULL")]
        secrets = [r[0] for r in await conn.fetch("SELECT secret FROM credentials WHERE secret IS NOT NULL")]
    finally:
        await conn.close()
    assert ssn and secrets
    return [s for s in ssn + secrets if len(s) >= 6]


async def run_all(ex: Any, cases: list[Case]) -> dict[str, Any]:
    """Each attack once; every outcome must be a QueryResult or a SqlmodeError, within the deadline."""
    outcomes: dict[str, Any] = {}
    for case in cases:
        timeout_ms = PROBE_TIMEOUT_MS if case.name.startswith("probe_") else ATTACK_TIMEOUT_MS
        t0 = time.monotonic()
        try:
            r = await ex.run(case.sql, timeout_ms=timeout_ms)
            outcomes[case.name] = json.dumps(r.model_dump(), default=str)
        except SqlmodeError as e:
            outcomes[case.name] = e
        took = time.monotonic() - t0
        assert took < timeout_ms / 1000 + DEADLINE_SLACK_S, f"{case.name} took {took:.1f}s"
    return outcomes


LEAK_PROBES = [
    "SELECT * FROM customers",
    "SELECT ssn FROM customers",
    "SELECT c FROM customers c",
    "SELECT row_to_json(c) FROM customers c",
    "SELECT to_jsonb(c.*) FROM customers c",
    "SELECT * FROM credentials",
    "SELECT most_common_vals::text, histogram_bounds::text FROM pg_stats "
    "WHERE tablename IN ('customers', 'credentials')",
    "SELECT query_to_xml('SELECT ssn FROM customers', true, true, '')",
    "SELECT count(*) FROM customers WHERE ssn LIKE '1%'",
    "SELECT id FROM customers ORDER BY ssn LIMIT 3",
]


@pytest.mark.parametrize("text_check", [True, False], ids=["with-text-check", "session-alone"])
async def test_postgres_attacks_change_nothing_and_leak_nothing(
    text_check: bool,
    pg_sample_url: str,
    pg_reader_url: str,
    pg_settings: Callable[..., Settings],
) -> None:
    assert len(PG_CASES) > 100
    before = await pg_state(pg_sample_url)
    files = mentioned_files(PG_CASES)
    secrets = await secret_values(pg_sample_url)
    started = await server_now(pg_sample_url)
    settings = pg_settings(pg_reader_url, {"database": {"pool_max_size": 3}})
    async with open_executor(settings) as ex:
        assert isinstance(ex, PostgresExecutor)
        ex._check_text = text_check
        outcomes = await run_all(
            ex, PG_CASES + [Case(f"probe_{i}", sql) for i, sql in enumerate(LEAK_PROBES)]
        )
        for name, outcome in outcomes.items():
            if isinstance(outcome, str):
                leaked = [s for s in secrets if s in outcome]
                assert not leaked, f"{name} returned blocked values"
        clean = await each_pooled_session(
            ex,
            "SELECT current_user || ' ' || current_setting('default_transaction_read_only') || ' ' "
            "|| current_setting('statement_timeout') || ' ' || current_setting('search_path') || ' ' "
            "|| (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) "
            "|| (SELECT count(*) FROM pg_cursors WHERE name <> '') "
            "|| (SELECT count(*) FROM pg_listening_channels()) "
            "|| (SELECT count(*) FROM pg_prepared_statements WHERE name NOT LIKE '\\_\\_asyncpg%')",
        )
        user = reader_name(pg_reader_url)
        assert set(clean) == {f"{user} on 5s public 0000"}
    admin = await asyncpg.connect(pg_sample_url)
    try:
        # No attack of this test still runs (generous: they stop, however loaded the machine is).
        assert await wait_until_idle(admin, user, within_s=30, since=started) == []
    finally:
        await admin.close()
    assert await pg_state(pg_sample_url) == before
    assert mentioned_files(PG_CASES) == files


ESCAPES = [
    # Undo the role switch, then read through a function that runs SQL from a string.
    "SELECT set_config('role', 'postgres', true), "
    "(SELECT string_agg(word, ',') FROM ts_stat('SELECT to_tsvector(ssn) FROM customers'))",
    "SELECT set_config('session_authorization', 'postgres', true), "
    "(SELECT string_agg(word, ',') FROM ts_stat('SELECT to_tsvector(secret) FROM credentials'))",
    "SELECT string_agg(word, ',') FROM ts_stat('SELECT to_tsvector(ssn) FROM customers')",
    "SELECT set_config('role', 'none', false)",
    "RESET ROLE",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "SELECT current_setting('role')",
]


@pytest.mark.parametrize("text_check", [True, False], ids=["with-text-check", "session-alone"])
async def test_postgres_attacks_change_nothing_and_leak_nothing_as_a_superuser(
    text_check: bool, pg_sample_url: str, pg_reader_url: str, pg_settings: Callable[..., Settings]
) -> None:
    # Connected as the superuser (what most users put in database.url): every query runs as the
    # reader role, so the database itself refuses the blocked data, whatever the text says.
    before = await pg_state(pg_sample_url)
    files = mentioned_files(PG_CASES)
    secrets = await secret_values(pg_sample_url)
    # Terminating every backend is a denial of service, not a change; it would also end this check.
    cases = [c for c in PG_CASES if "terminate_backend" not in c.sql and "cancel_backend" not in c.sql]
    probes = [Case(f"probe_{i}", sql) for i, sql in enumerate(LEAK_PROBES + ESCAPES)]
    async with open_executor(pg_settings(pg_sample_url, {"database": {"pool_max_size": 2}})) as ex:
        assert isinstance(ex, PostgresExecutor)
        assert ex.role == reader_name(pg_reader_url) != "postgres"
        ex._check_text = text_check
        outcomes = await run_all(ex, cases + probes)
        for name, outcome in outcomes.items():
            if isinstance(outcome, str):
                assert not [s for s in secrets if s in outcome], f"{name} returned blocked values"
        # Every blocked read was refused by the database itself, not by a text check.
        for i, _ in enumerate(LEAK_PROBES[:3] + ESCAPES[:3]):
            name = f"probe_{i}" if i < 3 else f"probe_{len(LEAK_PROBES) + i - 3}"
            outcome = outcomes[name]
            assert isinstance(outcome, SqlmodeError) and outcome.code == "PERMISSION_DENIED", name
        clean = await each_pooled_session(
            ex,
            "SELECT current_user || ' ' || session_user || ' ' || current_setting('transaction_read_only')",
        )
        # Outside a query's transaction the session is the login role's; every query switches.
        assert set(clean) == {"postgres postgres on"}
        r = await ex.run("SELECT current_user, session_user")
        assert r.rows == [[reader_name(pg_reader_url), "postgres"]]
    assert await pg_state(pg_sample_url) == before
    assert mentioned_files(PG_CASES) == files


async def test_postgres_attacks_change_nothing_as_a_privileged_role(
    pg_sample_url: str, pg_settings: Callable[..., Settings]
) -> None:
    # The development opt-out, nothing to switch to: the read-only session and the protocol
    # checks are all that remain, and they must still keep the database unchanged.
    before = await pg_state(pg_sample_url)
    files = mentioned_files(PG_CASES)
    cases = [c for c in PG_CASES if "terminate_backend" not in c.sql and "cancel_backend" not in c.sql]
    dev = {"database": {"pool_max_size": 2, "allow_privileged_role": True, "reader_role": "nobody_x"}}
    async with open_executor(pg_settings(pg_sample_url, dev)) as ex:
        assert isinstance(ex, PostgresExecutor)
        assert ex.privileged
        ex._check_text = False
        await run_all(ex, cases)
    assert await pg_state(pg_sample_url) == before
    assert mentioned_files(PG_CASES) == files


def duck_settings_state(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("text_check", [True, False], ids=["with-text-check", "instance-alone"])
async def test_duckdb_attacks_change_nothing(
    text_check: bool, duck_settings: Callable[..., Settings], duck_copy: Path
) -> None:
    assert len(DUCK_CASES) > 100
    digest = duck_settings_state(duck_copy)
    listing = sorted(p.name for p in duck_copy.parent.iterdir())
    files = mentioned_files(DUCK_CASES)
    async with open_executor(duck_settings()) as ex:
        assert isinstance(ex, DuckDBExecutor)
        ex._check_text = text_check
        locked = await ex.run("SELECT name, value FROM duckdb_settings() ORDER BY name")
        await run_all(ex, [c for c in DUCK_CASES if c.name not in DUCK_UNINTERRUPTIBLE])
        assert (await ex.run("SELECT name, value FROM duckdb_settings() ORDER BY name")).rows == locked.rows
        assert (await ex.run("SELECT count(*) FROM duckdb_tables() WHERE temporary")).rows == [[0]]
    assert duck_settings_state(duck_copy) == digest
    assert sorted(p.name for p in duck_copy.parent.iterdir()) == listing
    assert mentioned_files(DUCK_CASES) == files


async def test_uninterruptible_duckdb_computation_still_answers_at_the_deadline(
    duck_settings: Callable[..., Settings],
) -> None:
    from sqlmode.engines._duckdb_exec import DEADLINE_GRACE_S
    from sqlmode.errors import QueryTimeoutError

    async with open_executor(duck_settings({"database": {"pool_max_size": 2}})) as ex:
        t0 = time.monotonic()
        with pytest.raises(QueryTimeoutError) as ei:
            await ex.run("SELECT repeat('x', 1000000000)", timeout_ms=200)
        # Slack well under the 4-35 s the computation itself takes, so the deadline is what answered.
        assert time.monotonic() - t0 < 0.2 + DEADLINE_GRACE_S + 1.5
        assert "abandoned" in ei.value.message
        # the other worker still serves queries
        assert (await ex.run("SELECT 1 AS one")).rows == [[1]]


async def server_now(url: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT now()")
    finally:
        await conn.close()
