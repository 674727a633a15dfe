"""The column-restricted writer role (issue 18 item 2): made by `db grants`, checked at start-up.

Run against the embedded PostgreSQL as the writer role the script creates (the superuser side is
in test_write_hostile.py); every case checks the rows afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from sqlmode.analyze import Analyzer
from sqlmode.config import Settings
from sqlmode.engines._postgres_grants import apply_grants, grant_script
from sqlmode.engines._postgres_writer_role import writer_script
from sqlmode.errors import ConfigError, ExecutionError, PermissionDeniedError
from sqlmode.execute import open_write_executor
from sqlmode.schema.reflect import reflect_schema
from tests.plugins.postgres import create_database, fetchval

SSN = "123-45-6789"


def config(url: str, write_url: str | None = None, **code_mode: Any) -> dict[str, Any]:
    return {
        "database": {
            "url": url,
            "write_url": write_url or url,
            "tables": [
                {"name": "people", "operations": ["read", "write"]},
                {"name": "log", "operations": ["read"]},
            ],
        },
        "code_mode": {
            "allow_writes": True,
            "max_write_rows": 5,
            "blocked_tables": ["secrets"],
            "blocked_fields": ["people.ssn"],
            **code_mode,
        },
    }


@pytest.fixture(scope="module")
async def admin_db(pg_admin_url: str) -> AsyncIterator[str]:
    url = await create_database(pg_admin_url, "sqlmode_writer")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TABLE people (id serial PRIMARY KEY, name text NOT NULL, "
            f"ssn text NOT NULL DEFAULT '000', note text);"
            f"INSERT INTO people (name, ssn, note) SELECT 'p' || g, '{SSN}', 'n' "
            "FROM generate_series(1, 5) g;"
            "CREATE TABLE log (id int);"
            "CREATE TABLE secrets (k text); INSERT INTO secrets VALUES ('s3cret');"
        )
    finally:
        await conn.close()
    yield url


@pytest.fixture(scope="module")
async def writer_url(admin_db: str, pg_settings_factory: Callable[..., Settings]) -> str:
    """Both scripts, as `sqlmode db grants --apply` runs them with writes on: the reader's revokes
    EXECUTE on set_config from PUBLIC, which the writer must do without (asyncpg's type
    introspection calls it unless told not to)."""
    settings = pg_settings_factory(admin_db, config(admin_db))
    snapshot = await reflect_schema(settings)
    await apply_grants(admin_db, grant_script(settings, snapshot, role="sqlmode_writer_t_reader"))
    return await apply_grants(admin_db, writer_script(settings, snapshot, role="sqlmode_writer_t"))


async def rows(url: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch("SELECT id, name, ssn, note FROM people ORDER BY id")]
    finally:
        await conn.close()


async def test_the_writer_role_is_proven_and_writes_what_is_allowed(
    pg_settings_factory: Callable[..., Settings], admin_db: str, writer_url: str
) -> None:
    settings = pg_settings_factory(admin_db, config(admin_db, writer_url))
    async with open_write_executor(settings) as w:
        assert w.warnings == []
        r = await w.run_write("UPDATE people SET note = 'seen' WHERE id = 1 RETURNING id, name")
        assert (r.affected_rows, r.rows) == (1, [[1, "p1"]])
        r = await w.run_write("INSERT INTO people (name) VALUES ('new') RETURNING id")  # sequence usable
        assert r.affected_rows == 1
    after = await rows(admin_db)
    assert after[0] == (1, "p1", SSN, "seen") and after[-1][1:] == ("new", "000", None)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE people SET ssn = 'x' WHERE id = 2",  # a blocked column
        "INSERT INTO people (name, ssn) VALUES ('x', 'y')",
        "UPDATE people SET note = ssn WHERE id = 2",  # reading a blocked column
        "INSERT INTO log VALUES (1)",  # not a writable table
        "UPDATE people SET note = (SELECT k FROM secrets) WHERE id = 2",  # a blocked table
    ],
)
async def test_the_database_refuses_the_rest(
    pg_settings_factory: Callable[..., Settings], admin_db: str, writer_url: str, sql: str
) -> None:
    before = await rows(admin_db)
    settings = pg_settings_factory(admin_db, config(admin_db, writer_url))
    async with open_write_executor(settings) as w:
        with pytest.raises(PermissionDeniedError):
            await w.run_write(sql)
    assert await rows(admin_db) == before


async def test_an_upsert_the_analyzer_passed_runs_as_the_writer(
    pg_settings_factory: Callable[..., Settings], admin_db: str, writer_url: str
) -> None:
    """ON CONFLICT ... DO UPDATE SET c = excluded.c: analyzed (excluded is the proposed row of the
    target), then run by the column-restricted writer; the blocked column is untouched."""
    settings = pg_settings_factory(admin_db, config(admin_db, writer_url))
    snapshot = await reflect_schema(settings)
    sql = (
        "INSERT INTO people AS p (id, name, note) VALUES (5, 'five', 'upserted') "
        "ON CONFLICT (id) DO UPDATE SET note = excluded.note WHERE p.note IS DISTINCT FROM excluded.note"
    )
    a = Analyzer(settings).analyze(sql, snapshot)
    assert a.violations == [], a.violations
    leak = Analyzer(settings).analyze(
        sql.replace("SET note = excluded.note", "SET note = excluded.ssn"), snapshot
    )
    assert {v.code for v in leak.violations} == {"COLUMN_BLOCKED"}
    async with open_write_executor(settings) as w:
        r = await w.run_write(a.normalized_code)
    assert r.affected_rows == 1
    assert (await rows(admin_db))[4] == (5, "p5", SSN, "upserted")


async def test_deletes_are_refused_by_the_role_when_the_grants_say_so(
    pg_settings_factory: Callable[..., Settings], admin_db: str, writer_url: str
) -> None:
    # The executor would allow a DELETE here; the role, made without allow_deletes, does not.
    before = await rows(admin_db)
    settings = pg_settings_factory(admin_db, config(admin_db, writer_url, allow_deletes=True))
    async with open_write_executor(settings) as w:
        assert any("delete" in x for x in w.warnings) is False
        with pytest.raises(PermissionDeniedError):
            await w.run_write("DELETE FROM people WHERE id = 3")
    assert await rows(admin_db) == before


async def test_a_failing_write_as_the_writer_shows_no_stored_value(
    pg_settings_factory: Callable[..., Settings], admin_db: str, writer_url: str
) -> None:
    settings = pg_settings_factory(admin_db, config(admin_db, writer_url))
    async with open_write_executor(settings) as w:
        with pytest.raises(ExecutionError) as ei:
            await w.run_write("UPDATE people SET name = NULL WHERE id = 4")
    assert "NOT NULL" in ei.value.message and "name" in ei.value.message
    assert (
        SSN not in ei.value.message and "Failing row" not in ei.value.message and "p4" not in ei.value.message
    )


async def test_start_up_refuses_a_write_role_that_may_do_more_than_the_configuration(
    pg_settings_factory: Callable[..., Settings], admin_db: str, pg_admin_url: str, writer_url: str
) -> None:
    before = await rows(admin_db)
    with pytest.raises(ConfigError) as ei:
        async with open_write_executor(pg_settings_factory(admin_db, config(admin_db))):  # the superuser
            pass
    assert ei.value.code == "WRITER_ROLE_UNSAFE" and "superuser" in ei.value.message
    assert "db grants --apply" in (ei.value.hint or "")
    dev = config(admin_db)
    dev["database"]["allow_privileged_role"] = True  # development opt-out: warnings instead
    async with open_write_executor(pg_settings_factory(admin_db, dev)) as w:
        assert len(w.warnings) == 1 and "superuser" in w.warnings[0]
    conn = await asyncpg.connect(admin_db)
    try:
        await conn.execute(
            "CREATE ROLE sqlmode_wide LOGIN PASSWORD 'wide-password-0123';"
            "GRANT SELECT, INSERT, UPDATE, DELETE ON people, log, secrets TO sqlmode_wide;"
        )
        wide = admin_db.replace(admin_db.split("@")[0].split("//")[1], "sqlmode_wide:wide-password-0123")
        with pytest.raises(ConfigError) as wide_err:
            async with open_write_executor(pg_settings_factory(admin_db, config(admin_db, wide))):
                pass
    finally:
        await conn.execute("DROP OWNED BY sqlmode_wide; DROP ROLE sqlmode_wide")
        await conn.close()
    found = wide_err.value.message
    assert wide_err.value.code == "WRITER_ROLE_UNSAFE"
    assert "blocked column(s) ssn of people" in found
    assert "may use table secrets" in found
    assert "may insert or update log" in found
    assert "may delete from people" in found
    # Refusing start-up changed nothing in the database.
    assert await rows(admin_db) == before
    # The role db grants creates passes the same proof.
    async with open_write_executor(pg_settings_factory(admin_db, config(admin_db, writer_url))) as w:
        assert w.warnings == []


@pytest.mark.parametrize("entry", ["secrets", "public.secrets", "PUBLIC.Secrets"])
async def test_a_schema_qualified_blocked_table_is_checked_on_the_write_role(
    pg_settings_factory: Callable[..., Settings], admin_db: str, entry: str
) -> None:
    # The catalog names the table bare; the config may qualify it. Both name the same table.
    conn = await asyncpg.connect(admin_db)
    try:
        await conn.execute(
            "CREATE ROLE sqlmode_peek LOGIN PASSWORD 'peek-password-0123';"
            "GRANT SELECT ON secrets TO sqlmode_peek;"
        )
        peek = admin_db.replace(admin_db.split("@")[0].split("//")[1], "sqlmode_peek:peek-password-0123")
        data = config(admin_db, peek, blocked_tables=[entry])
        data["database"]["tables"] = []  # every table exposed: only the block list keeps secrets out
        with pytest.raises(ConfigError) as ei:
            async with open_write_executor(pg_settings_factory(admin_db, data)):
                pass
    finally:
        await conn.execute("DROP OWNED BY sqlmode_peek; DROP ROLE sqlmode_peek")
        await conn.close()
    assert ei.value.code == "WRITER_ROLE_UNSAFE"
    assert "may use table secrets" in ei.value.message


def test_db_grants_prints_the_writer_role_when_writes_are_on(
    admin_db: str, sample_config_data: dict[str, Any], tmp_path: Any
) -> None:
    import subprocess
    import sys

    from sqlmode.config import deep_merge
    from tests.plugins.sample import TEST_TOKEN_SECRET
    from tests.server.conftest import subprocess_env, toml_dumps

    data = deep_merge(sample_config_data, config(admin_db))
    data = deep_merge(
        data, {"code_mode": {"token_secret": TEST_TOKEN_SECRET}, "database": {"build_sample": False}}
    )
    data["database"].pop("descriptions", None)
    cfg = tmp_path / "sqlmode.toml"
    cfg.write_text(toml_dumps(data))
    r = subprocess.run(
        [sys.executable, "-m", "sqlmode", "db", "grants", "--config", str(cfg), "--writer-role", "w_cli"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    writer = r.stdout[r.stdout.index("column-restricted writer role w_cli") :]
    assert 'GRANT INSERT ("id", "name", "note"), UPDATE ("id", "name", "note") ON "public"."people"' in writer
    assert "secrets" not in writer.split("-- SELECT on readable")[1] and "ssn" not in writer
    assert "GRANT DELETE" not in writer and 'GRANT SELECT ("id") ON "public"."log"' in writer
    assert 'INSERT ("id") ON "public"."log"' not in writer  # log is read-only


async def test_a_table_name_with_dollar_quotes_stays_inside_the_writer_script(
    pg_admin_url: str, pg_settings_factory: Callable[..., Settings]
) -> None:
    """The sequence grants run in a DO block naming the table: a name with ``$$`` must neither end
    the block early nor run as the administrator's SQL, and its sequence is still granted."""
    table = "odd$$; DROP TABLE keep; DO $$"
    url = await create_database(
        pg_admin_url,
        "sqlmode_writer_dollar",
        f'CREATE TABLE keep (id int); CREATE TABLE "{table}" (id serial PRIMARY KEY, name text)',
    )
    overrides = config(url)
    overrides["database"]["tables"] = [{"name": table, "operations": ["read", "write"]}]
    settings = pg_settings_factory(url, overrides)
    snapshot = await reflect_schema(settings)
    script = writer_script(settings, snapshot, role="sqlmode_writer_dollar")
    assert "DO $sqlmode_0$" in script
    writer = await apply_grants(url, script)
    conn = await asyncpg.connect(writer)
    try:
        # The serial's sequence was granted: the insert draws an id as the writer.
        await conn.execute(f"INSERT INTO \"{table}\" (name) VALUES ('x')")
        assert await conn.fetchval(f'SELECT id FROM "{table}"') == 1
    finally:
        await conn.close()
    assert await fetchval(url, "SELECT to_regclass('public.keep') IS NOT NULL")
