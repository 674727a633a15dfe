"""The role Postgres queries run as: chosen at start-up, proven by the catalog, refused when unsafe.

A database of its own (the sample warehouse, `sqlmode db grants --apply` run on it) that each test
changes and restores: a SECURITY DEFINER function, a definer-rights view, a grant on a blocked
column, BYPASSRLS, set_config back for PUBLIC ... each must fail start-up, connected as the
superuser and as the reader, with an error naming the item; afterwards the database is as it was
and no sqlmode session is left behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from sqlmode.config import Settings
from sqlmode.engines._postgres_exec import PostgresExecutor
from sqlmode.errors import ConfigError, PermissionDeniedError
from sqlmode.execute import open_executor
from sqlmode.service import CodeModeService
from tests.plugins.postgres import apply_sample_grants, create_database

from .test_defence import pg_state, secret_values
from .test_postgres_session import reader_name


@pytest.fixture(scope="module")
async def role_db(pg_admin_url: str, pg_settings_factory: Callable[..., Settings]) -> tuple[str, str]:
    """(admin URL, reader URL) of a private sample database with grants applied."""
    from sqlmode.sample import load_sample_postgres

    url = await create_database(pg_admin_url, "sqlmode_pgrole")
    await load_sample_postgres(url, scale=1)
    return url, await apply_sample_grants(url, pg_settings_factory(url))


@pytest.fixture
async def admin(role_db: tuple[str, str]) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(role_db[0])
    try:
        yield conn
    finally:
        await conn.close()


async def sqlmode_sessions(admin: asyncpg.Connection) -> int:
    return int(
        await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sqlmode' "
            "AND datname = current_database()"
        )
    )


# (id, SQL that makes the deployment unsafe, SQL that undoes it, what the error must name)
UNSAFE = [
    (
        "security-definer-function",
        "CREATE FUNCTION public.peek() RETURNS text LANGUAGE sql SECURITY DEFINER "
        "AS 'SELECT secret FROM credentials LIMIT 1'",
        "DROP FUNCTION public.peek()",
        "SECURITY DEFINER function peek()",
    ),
    (
        "definer-view-over-ssn",
        "CREATE VIEW public.v_ssn AS SELECT id, ssn FROM customers; GRANT SELECT ON public.v_ssn TO {reader}",
        "DROP VIEW public.v_ssn",
        "view public.v_ssn reads public.customers.ssn",
    ),
    (
        "definer-view-through-a-view",
        "CREATE VIEW public.v_inner AS SELECT c FROM customers c; "
        "CREATE VIEW public.v_outer AS SELECT (c).name FROM public.v_inner; "
        "GRANT SELECT ON public.v_outer TO {reader}",
        "DROP VIEW public.v_outer; DROP VIEW public.v_inner",
        "view public.v_outer reads public.customers.ssn",
    ),
    (
        "materialized-view-over-credentials",
        "CREATE MATERIALIZED VIEW public.mv_cred AS SELECT secret FROM credentials; "
        "GRANT SELECT ON public.mv_cred TO {reader}",
        "DROP MATERIALIZED VIEW public.mv_cred",
        "view public.mv_cred reads public.credentials",
    ),
    (
        "reader-granted-ssn",
        "GRANT SELECT (ssn) ON customers TO {reader}",
        "REVOKE SELECT (ssn) ON customers FROM {reader}",
        "blocked column public.customers.ssn",
    ),
    (
        "reader-granted-a-blocked-table",
        "GRANT SELECT ON audit_log TO PUBLIC",
        "REVOKE SELECT ON audit_log FROM PUBLIC",
        "table public.audit_log",
    ),
    (
        "bypassrls",
        "ALTER ROLE {reader} BYPASSRLS",
        "ALTER ROLE {reader} NOBYPASSRLS",
        "bypasses row-level security",
    ),
    (
        "superuser-reader",
        "ALTER ROLE {reader} SUPERUSER",
        "ALTER ROLE {reader} NOSUPERUSER",
        "is a superuser",
    ),
    (
        "set-config-executable",
        "GRANT EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) TO PUBLIC",
        "REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC",
        "may execute set_config",
    ),
    (
        "function-that-sets-a-role",
        "CREATE FUNCTION public.as_admin() RETURNS int LANGUAGE sql SET role = 'postgres' AS 'SELECT 1'",
        "DROP FUNCTION public.as_admin()",
        "function as_admin(), which sets a role",
    ),
    (
        "exposed-column-not-granted",
        "REVOKE SELECT (total) ON orders FROM {reader}",
        "GRANT SELECT (total) ON orders TO {reader}",
        "cannot read the exposed column public.orders.total",
    ),
]


@pytest.mark.parametrize("login", ["superuser", "reader"])
@pytest.mark.parametrize(("setup", "undo", "named"), [u[1:] for u in UNSAFE], ids=[u[0] for u in UNSAFE])
async def test_an_unsafe_role_fails_start_up_naming_the_item(
    login: str,
    setup: str,
    undo: str,
    named: str,
    role_db: tuple[str, str],
    admin: asyncpg.Connection,
    pg_settings: Callable[..., Settings],
) -> None:
    url, reader_url = role_db
    reader = reader_name(reader_url)
    settings = pg_settings(url if login == "superuser" else reader_url)
    await admin.execute(setup.format(reader=reader))
    try:
        state = await pg_state(url)
        with pytest.raises(ConfigError) as err:
            async with open_executor(settings):
                pass
        assert err.value.code == "READER_ROLE_UNSAFE"
        assert named in err.value.message, err.value.message
        assert "Fix:" in err.value.message
        # The refusal changed nothing and left no session behind.
        assert await pg_state(url) == state
        assert await sqlmode_sessions(admin) == 0
    finally:
        await admin.execute(undo.format(reader=reader))
    async with open_executor(settings) as ex:
        assert isinstance(ex, PostgresExecutor) and ex.role == reader


async def test_a_login_role_without_a_reader_to_switch_to_is_refused(
    role_db: tuple[str, str], admin: asyncpg.Connection, pg_settings: Callable[..., Settings]
) -> None:
    settings = pg_settings(role_db[0], {"database": {"reader_role": "no_such_reader"}})
    with pytest.raises(ConfigError) as err:
        async with open_executor(settings):
            pass
    msg = err.value.message
    assert "'postgres' is a superuser" in msg and "'no_such_reader'" in msg and "does not exist" in msg
    assert "sqlmode db grants --apply" in msg
    assert await sqlmode_sessions(admin) == 0


async def test_a_fresh_database_without_grants_says_what_to_run(
    pg_admin_url: str, pg_settings: Callable[..., Settings]
) -> None:
    url = await create_database(pg_admin_url, "sqlmode_nogrants")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text, ssn text)")
    finally:
        await conn.close()
    settings = pg_settings(url, {"database": {"tables": [], "reader_role": "fresh_reader_x"}})
    with pytest.raises(ConfigError) as err:
        async with open_executor(settings):
            pass
    assert "blocked column public.customers.ssn" in err.value.message
    assert "run `sqlmode db grants --apply`" in err.value.message


async def test_the_development_opt_out_warns_and_marks_the_schema(
    role_db: tuple[str, str], pg_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = pg_settings(
        role_db[0], {"database": {"allow_privileged_role": True, "reader_role": "no_such_reader"}}
    )
    with caplog.at_level("WARNING", logger="sqlmode.execute"):
        async with CodeModeService(settings) as svc:
            assert svc.executor.privileged and svc.executor.role == "postgres"
            text = await svc.schema_text()
            assert text.startswith("# WARNING: development mode (database.allow_privileged_role)")
            # As the superuser, the database no longer stops a blocked read.
            r = await svc.executor.run("SELECT count(ssn) FROM customers")
            assert r.rows[0][0] > 0
    assert any("allow_privileged_role is on" in m for m in caplog.messages)
    async with CodeModeService(pg_settings(role_db[0])) as svc:
        assert not (await svc.schema_text()).startswith("# WARNING")


async def test_every_schema_refresh_proves_the_role_again(
    role_db: tuple[str, str], admin: asyncpg.Connection, pg_settings: Callable[..., Settings]
) -> None:
    url, reader_url = role_db
    reader = reader_name(reader_url)
    async with CodeModeService(pg_settings(url)) as svc:
        await admin.execute(
            "CREATE VIEW public.v_late AS SELECT ssn FROM customers;"
            f"GRANT SELECT ON public.v_late TO {reader}"
        )
        try:
            with pytest.raises(ConfigError, match=r"view public\.v_late reads public\.customers\.ssn"):
                await svc.refresh_schema()
            # Nothing is validated against the new snapshot: the old one stays until a refresh passes.
        finally:
            await admin.execute("DROP VIEW public.v_late")
        await svc.refresh_schema()


ATTACKS = [
    # The alias-shadowing leak: the subquery's ssn binds to the outer customers row.
    "SELECT name, (SELECT ssn || '' AS ssn FROM orders LIMIT 1) AS leak FROM customers AS \"a'b\" LIMIT 3",
    "SELECT name, (SELECT c2.ssn FROM customers c2 WHERE c2.id = c.id) FROM customers c LIMIT 3",
    "SELECT * FROM customers LIMIT 3",
    "SELECT c FROM customers c LIMIT 3",
    "SELECT string_agg(word, ',') FROM ts_stat('SELECT to_tsvector(ssn) FROM customers')",
    "SELECT set_config('role', 'postgres', true), "
    "(SELECT string_agg(word, ',') FROM ts_stat('SELECT to_tsvector(ssn) FROM customers'))",
    "SELECT secret FROM credentials",
]


@pytest.mark.parametrize("login", ["superuser", "reader"])
async def test_validate_and_execute_never_return_a_blocked_value(
    login: str, role_db: tuple[str, str], pg_settings: Callable[..., Settings]
) -> None:
    url, reader_url = role_db
    secrets = await secret_values(url)
    async with CodeModeService(pg_settings(url if login == "superuser" else reader_url)) as svc:
        for sql in ATTACKS:
            v = await svc.validate(sql)
            out: list[Any] = [v.model_dump_json()]
            if v.is_valid:
                try:
                    r = await svc.execute(v.normalized_code, v.approval_token or "")
                    out.append(r.model_dump_json())
                except PermissionDeniedError as e:
                    out.append(str(e))
            assert not [s for s in secrets if any(s in o for o in out)], sql


@pytest.mark.parametrize("login", ["superuser", "reader"])
async def test_engine_confirmation_gets_the_database_verdict(
    login: str, role_db: tuple[str, str], pg_settings: Callable[..., Settings]
) -> None:
    # The EXPLAIN runs as the reader too: the permission check speaks before anything runs.
    url, reader_url = role_db
    async with open_executor(pg_settings(url if login == "superuser" else reader_url)) as ex:
        with pytest.raises(PermissionDeniedError, match="customers"):
            await ex.explain("SELECT ssn FROM customers")
        with pytest.raises(PermissionDeniedError, match="customers"):
            await ex.explain("SELECT name, (SELECT ssn FROM orders LIMIT 1) FROM customers")
        assert "Plan" in await ex.explain("SELECT name FROM customers")


async def test_grants_revoke_set_config_and_let_the_login_role_switch(role_db: tuple[str, str]) -> None:
    url, reader_url = role_db
    reader = reader_name(reader_url)
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT has_function_privilege('public', 'pg_catalog.set_config(text,text,boolean)', 'EXECUTE'), "
            "has_function_privilege($1, 'pg_catalog.set_config(text,text,boolean)', 'EXECUTE'), "
            "pg_has_role('postgres', $1, 'MEMBER'), "
            "(SELECT count(*) FROM pg_auth_members "
            " WHERE roleid = $1::regrole AND member = 'postgres'::regrole)",
            reader,
        )
    finally:
        await conn.close()
    assert tuple(row) == (False, False, True, 1)
