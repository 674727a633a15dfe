"""The reader role: column grants only, nothing on blocked tables, role defaults, PUBLIC revokes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
import pytest

from sqlmode.config import Settings
from sqlmode.engines import engine_for_url
from sqlmode.engines._postgres_grants import apply_grants, grant_script
from sqlmode.errors import ConfigError, PermissionDeniedError
from sqlmode.execute import open_executor
from sqlmode.schema.reflect import reflect_schema
from sqlmode.schema.snapshot import ColumnInfo, SchemaSnapshot, TableInfo
from tests.plugins.postgres import create_database, fetchval


def snapshot(**blocks: list[str]) -> SchemaSnapshot:
    tables = [
        TableInfo(
            "customers", (ColumnInfo("id", "int"), ColumnInfo("name", "text"), ColumnInfo("ssn", "text"))
        ),
        TableInfo("orders", (ColumnInfo("id", "int"), ColumnInfo("total", "numeric"))),
        TableInfo("credentials", (ColumnInfo("id", "int"), ColumnInfo("secret", "text"))),
        TableInfo("scratch", (ColumnInfo("id", "int"),)),
    ]
    return SchemaSnapshot.build(
        "postgres",
        "db",
        tables,
        blocked_tables=blocks.get("tables", ["credentials"]),
        blocked_fields=blocks.get("fields", ["customers.ssn"]),
        allowed_tables=blocks.get("allowed"),
    )


def test_script_grants_columns_never_tables(pg_settings: Callable[..., Settings]) -> None:
    settings = pg_settings("postgresql://admin@localhost/db")
    script = grant_script(settings, snapshot(allowed=["customers", "orders"]), password="pw")
    assert 'GRANT SELECT ("id", "name") ON "public"."customers" TO "sqlmode_reader";' in script
    assert 'GRANT SELECT ("id", "total") ON "public"."orders" TO "sqlmode_reader";' in script
    grants = [line for line in script.splitlines() if line.startswith("GRANT SELECT")]
    assert len(grants) == 2 and all(re.match(r'GRANT SELECT \("', g) for g in grants)
    assert "credentials" not in "\n".join(grants) and "scratch" not in "\n".join(grants)
    assert '"ssn"' not in "\n".join(grants)
    assert "Nothing granted on: credentials (blocked), scratch (not in [[database.tables]])" in script
    assert 'ALTER ROLE "sqlmode_reader" SET default_transaction_read_only = on;' in script
    assert "ALTER ROLE \"sqlmode_reader\" SET statement_timeout = '5000ms';" in script
    # This database's settings for the role, and no search_path for the role everywhere.
    here = "IN DATABASE %I SET search_path = %s', 'sqlmode_reader', current_database(), '\"public\"');"
    assert here in script
    assert 'ALTER ROLE "sqlmode_reader" RESET search_path;' in script
    assert 'ALTER ROLE "sqlmode_reader" SET search_path' not in script
    assert "REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC" in script and "'^(lo_|dblink)'" in script
    assert "pg_read_file" in script and "pg_ls_dir" in script and "pg_stat_file" in script
    assert script.role == "sqlmode_reader" and script.password == "pw"


def test_script_revokes_set_config_and_grants_the_reader_to_the_login_role(
    pg_settings: Callable[..., Settings],
) -> None:
    set_config = "pg_catalog.set_config(text, text, boolean)"
    script = grant_script(pg_settings("postgresql://admin@localhost/db"), snapshot(), password="pw")
    assert f"REVOKE EXECUTE ON FUNCTION {set_config} FROM PUBLIC;" in script
    assert f'GRANT EXECUTE ON FUNCTION {set_config} TO "admin";' in script
    assert 'GRANT "sqlmode_reader" TO "admin";' in script
    # Logged in as the reader itself: it never gets set_config back, nor itself as a member.
    as_reader = grant_script(pg_settings("postgresql://sqlmode_reader@localhost/db"), snapshot())
    assert f"REVOKE EXECUTE ON FUNCTION {set_config} FROM PUBLIC;" in as_reader
    assert f'{set_config} TO "sqlmode_reader"' not in as_reader
    assert 'GRANT "sqlmode_reader" TO' not in as_reader


def test_script_refuses_duckdb_and_odd_role_names(make_settings: Callable[..., Settings]) -> None:
    duck = make_settings()
    with pytest.raises(ConfigError, match="DuckDB has no roles"):
        engine_for_url(duck.database.url).grant_script(duck, snapshot())
    pg = make_settings({"database": {"url": "postgresql://a@h/db"}})
    with pytest.raises(ConfigError):
        grant_script(pg, snapshot(), role='x"; DROP ROLE postgres; --')


@pytest.fixture(scope="module")
async def fresh_db(pg_admin_url: str) -> AsyncIterator[str]:
    url = await create_database(pg_admin_url, "sqlmode_grants")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            CREATE TABLE customers (id int PRIMARY KEY, name text, ssn text);
            CREATE TABLE orders (id int PRIMARY KEY, total numeric);
            CREATE TABLE credentials (id int PRIMARY KEY, secret text);
            INSERT INTO customers VALUES (1, 'Ada', '123-45-6789');
            INSERT INTO orders VALUES (1, 9.5);
            INSERT INTO credentials VALUES (1, 'hunter2');
            """
        )
    finally:
        await conn.close()
    yield url


async def test_applied_role_reads_only_what_is_exposed(
    fresh_db: str, pg_settings: Callable[..., Settings]
) -> None:
    settings = pg_settings(fresh_db, {"database": {"tables": []}})
    snap = await reflect_schema(settings)
    reader = await apply_grants(fresh_db, grant_script(settings, snap, role="grants_test_reader"))
    assert unquote(urlsplit(reader).username or "") == "grants_test_reader"
    async with open_executor(pg_settings(reader, {"database": {"tables": []}})) as ex:
        assert ex.warnings == []
        assert (await ex.run("SELECT id, name FROM customers")).rows == [[1, "Ada"]]
        for sql in [
            "SELECT ssn FROM customers",
            "SELECT * FROM customers",
            "SELECT row_to_json(c) FROM customers c",
            "SELECT * FROM credentials",
            "SELECT lo_create(0)",
            "SELECT pg_read_file('/etc/hostname')",
            "SELECT pg_ls_dir('.')",
        ]:
            with pytest.raises(PermissionDeniedError):
                await ex.run(sql)
        r = await ex.run(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, "
            "(SELECT setconfig FROM pg_db_role_setting s WHERE s.setrole = r.oid AND s.setdatabase = 0), "
            "(SELECT setconfig FROM pg_db_role_setting s, pg_database d WHERE s.setrole = r.oid "
            "AND s.setdatabase = d.oid AND d.datname = current_database()) "
            "FROM pg_roles r WHERE rolname = current_user"
        )
        su, cr, cd, br, everywhere, here = r.rows[0]
        assert (su, cr, cd, br) == (False, False, False, False)
        assert "default_transaction_read_only=on" in everywhere and "statement_timeout=5000ms" in everywhere
        assert not any(s.startswith("search_path=") for s in everywhere)
        assert {"default_transaction_read_only=on", "statement_timeout=5000ms", "search_path=public"} <= set(
            here
        )
        session = await ex.run(
            "SELECT current_setting('search_path'), current_setting('statement_timeout'), "
            "current_setting('default_transaction_read_only')"
        )
        assert session.rows == [["public", "5s", "on"]]


async def test_two_databases_sharing_a_role_name_keep_their_own_settings(
    pg_admin_url: str, pg_settings: Callable[..., Settings]
) -> None:
    """A role's settings reach every database of the server: each deployment's must be its own.

    Two databases on one server, one reader role name, different schemas and query timeouts:
    applying the second deployment's script leaves the first's search_path and timeout in place.
    """
    role = "grants_shared_reader"
    # As an earlier `db grants` left it: a search_path set for the role in every database.
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"CREATE ROLE {role} LOGIN; END IF; END $$; ALTER ROLE {role} SET search_path = elsewhere"
        )
    finally:
        await conn.close()
    urls = []
    for schema, timeout in (("north", 4000), ("south", 7000)):
        url = await create_database(pg_admin_url, f"sqlmode_grants_{schema}")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.sites (id int, name text); "
                f"INSERT INTO {schema}.sites VALUES (1, '{schema}')"
            )
        finally:
            await conn.close()
        overrides = {
            "database": {"tables": [], "schemas": [schema]},
            "code_mode": {"query_timeout_ms": timeout},
        }
        settings = pg_settings(url, overrides)
        reader = await apply_grants(url, grant_script(settings, await reflect_schema(settings), role=role))
        urls.append((reader, overrides, schema, timeout))
    for reader, overrides, schema, timeout in urls:
        conn = await asyncpg.connect(reader)
        try:
            row = await conn.fetchrow(
                "SELECT current_setting('search_path') AS path, current_setting('statement_timeout') AS t"
            )
            assert (row["path"], row["t"]) == (schema, f"{timeout // 1000}s")
            # A bare name resolves in this deployment's schema, not the other's.
            assert await conn.fetchval("SELECT name FROM sites") == schema
        finally:
            await conn.close()
        async with open_executor(pg_settings(reader, overrides)) as ex:
            assert (await ex.run("SELECT name FROM sites")).rows == [[schema]]
    conn = await asyncpg.connect(pg_admin_url)
    try:
        everywhere = await conn.fetchval(
            "SELECT setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE r.rolname = $1 AND s.setdatabase = 0",
            role,
        )
    finally:
        await conn.close()
    # The old role-wide search_path is gone; the role-wide limits stay as a fallback.
    assert not any(x.startswith("search_path=") for x in everywhere)
    assert "default_transaction_read_only=on" in everywhere


async def test_running_again_converges_to_the_new_blocks(
    fresh_db: str, pg_settings: Callable[..., Settings]
) -> None:
    role = "grants_converge_reader"
    loose = pg_settings(
        fresh_db, {"database": {"tables": []}, "code_mode": {"blocked_fields": ["customers.ssn"]}}
    )
    snap = await reflect_schema(loose)
    reader = await apply_grants(fresh_db, grant_script(loose, snap, role=role))
    loose_reader = pg_settings(
        reader, {"database": {"tables": []}, "code_mode": {"blocked_fields": ["customers.ssn"]}}
    )
    async with open_executor(loose_reader) as ex:
        assert (await ex.run("SELECT total FROM orders")).rows == [["9.5"]]
    tight = pg_settings(
        fresh_db,
        {"database": {"tables": []}, "code_mode": {"blocked_tables": ["credentials", "orders"]}},
    )
    # A script read back from text (no attributes) applies too.
    text = str(grant_script(tight, await reflect_schema(tight), role=role))
    reader = await apply_grants(fresh_db, text)
    tight_reader = pg_settings(
        reader, {"database": {"tables": []}, "code_mode": {"blocked_tables": ["credentials", "orders"]}}
    )
    async with open_executor(tight_reader) as ex:
        with pytest.raises(PermissionDeniedError):
            await ex.run("SELECT total FROM orders")
        assert (await ex.run("SELECT name FROM customers")).rows == [["Ada"]]


async def test_public_loses_execute_on_large_object_functions(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        rows = await conn.fetch(
            "SELECT p.proname FROM pg_proc p "
            "WHERE p.proname IN ('lo_create', 'lo_import', 'loread', 'lo_open') "
            "AND has_function_privilege('public', p.oid, 'EXECUTE')"
        )
    finally:
        await conn.close()
    assert rows == []


def test_cli_prints_the_script_and_applies_it(fresh_db: str, tmp_path) -> None:
    import asyncio

    from click.testing import CliRunner

    from sqlmode.cli import main

    cfg = tmp_path / "sqlmode.toml"
    cfg.write_text(
        f'[database]\nurl = "{fresh_db}"\n'
        '[code_mode]\nblocked_tables = ["credentials"]\nblocked_fields = ["customers.ssn"]\n'
        f'[audit]\npath = "{tmp_path / "audit.jsonl"}"\n'
    )
    runner = CliRunner()
    shown = runner.invoke(main, ["db", "grants", "--config", str(cfg), "--role", "cli_reader"])
    assert shown.exit_code == 0, shown.output
    assert 'GRANT SELECT ("id", "name") ON "public"."customers" TO "cli_reader";' in shown.output
    applied = runner.invoke(
        main,
        ["db", "grants", "--config", str(cfg), "--apply", "--postgres", fresh_db, "--role", "cli_reader"],
    )
    assert applied.exit_code == 0, applied.output
    url = applied.stdout.strip().splitlines()[-1]
    assert url.startswith("postgresql://cli_reader:")

    async def check() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT name FROM customers")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch("SELECT ssn FROM customers")
            return [r[0] for r in rows]
        finally:
            await conn.close()

    assert asyncio.run(check()) == ["Ada"]


async def test_a_schema_name_with_dollar_quotes_stays_inside_the_script(
    pg_admin_url: str, pg_settings: Callable[..., Settings]
) -> None:
    """The per-database settings run in a DO block; a schema named with ``$$`` (its search_path)
    must neither end that block early nor run as the administrator's SQL."""
    schema = "odd$$; DROP TABLE keep; DO $$"
    url = await create_database(
        pg_admin_url,
        "sqlmode_grants_dollar",
        f'CREATE TABLE keep (id int); CREATE SCHEMA "{schema}"; '
        f'CREATE TABLE "{schema}".sites (id int, name text); '
        f"INSERT INTO \"{schema}\".sites VALUES (1, 'odd')",
    )
    overrides = {"database": {"tables": [], "schemas": [schema]}}
    settings = pg_settings(url, overrides)
    script = grant_script(settings, await reflect_schema(settings), role="grants_dollar_reader")
    assert "DO $sqlmode_0$" in script
    reader = await apply_grants(url, script)
    assert await fetchval(reader, "SELECT current_setting('search_path')") == f'"{schema}"'
    assert await fetchval(reader, "SELECT name FROM sites") == "odd"
    assert await fetchval(url, "SELECT to_regclass('public.keep') IS NOT NULL")
