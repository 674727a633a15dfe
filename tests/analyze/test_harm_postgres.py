"""The attack fixtures are honest on PostgreSQL too: let through, each would do harm.

Every case runs the fixture's SQL verbatim on its own copy of the sample warehouse
(``CREATE DATABASE ... TEMPLATE``), connected as the administrator and without any of
the executor's protections, which is how the peers that were caught out ran them.
Multi-statement attacks go through the simple query protocol (``execute``), the way a
server that passes text through would run them. The analyzer must refuse the same SQL.
Attacks that would hurt the shared test server itself (terminating backends, ALTER
SYSTEM, huge allocations) have no case here; endless ones (pg_sleep, huge generators)
are shown still running when a short statement_timeout stops them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sqlmode.analyze import Analyzer
from tests.analyze.conftest import make_settings, sample_snapshot
from tests.fixtures.cases import attack_cases
from tests.plugins.postgres import with_database

pytestmark = pytest.mark.postgres

CASES = {c.name: c for c in attack_cases("postgres")}
ANALYZER = Analyzer(make_settings("postgres"))
SNAPSHOT = sample_snapshot("postgres")


@pytest.fixture
async def scratch(
    pg_admin_url: str, analyze_pg_template: str
) -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    name = f"sqlmode_harm_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{analyze_pg_template}"')
        url = with_database(pg_admin_url, name)
        conn = await asyncpg.connect(url)
        yield conn, url
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    """A directory the server's OS user may write into (COPY TO PROGRAM / file)."""
    path = Path(tempfile.mkdtemp(prefix="sqlmode-harm-"))
    os.chmod(path, 0o777)
    return path


async def val(conn: asyncpg.Connection, sql: str) -> Any:
    return await conn.fetchval(sql)


def has_secret(rows: Any) -> bool:
    return "sk_live_" in str(rows)


def has_ssn(rows: Any) -> bool:
    import re

    return bool(re.search(r"\d{3}-\d{2}-\d{4}", str(rows)))


Check = Callable[[asyncpg.Connection, Any, Path, str], Awaitable[bool]]


async def gone(conn: asyncpg.Connection, table: str) -> bool:
    return await val(conn, f"SELECT to_regclass('{table}') IS NULL")


async def empty(conn: asyncpg.Connection, table: str) -> bool:
    return await val(conn, f"SELECT count(*) = 0 FROM {table}")


def rows_have(pred: Callable[[Any], bool]) -> Check:
    async def check(conn: asyncpg.Connection, rows: Any, work: Path, url: str) -> bool:
        return pred(rows)

    return check


def state(fn: Callable[[asyncpg.Connection], Awaitable[bool]]) -> Check:
    async def check(conn: asyncpg.Connection, rows: Any, work: Path, url: str) -> bool:
        return await fn(conn)

    return check


def holds(sql: str) -> Check:
    """The harm is a fact the database now states (a boolean query)."""
    return state(lambda c: val(c, sql))


async def _locked_elsewhere(url: str) -> bool:
    other = await asyncpg.connect(url)
    try:
        # lock_timeout, not NOWAIT: planning the probe already waits for a table lock.
        await other.execute("SET lock_timeout = '200ms'")
        await other.fetch("SELECT id FROM orders WHERE id = 1 FOR UPDATE")
    except asyncpg.LockNotAvailableError:
        return True
    finally:
        await other.close()
    return False


# name -> (how to run it, what proves the harm)
# mode, then the check of the harm done (None: the case has its own test in _run_special)
HARM: dict[str, tuple[str, Check | None]] = {
    # several statements in one: the read-only transaction is committed, then the damage runs
    "commit_then_drop": ("readonly", state(lambda c: gone(c, "order_items"))),
    "select_then_drop": ("execute", state(lambda c: gone(c, "order_items"))),
    "nested_block_comment_then_drop": ("execute", state(lambda c: gone(c, "order_items"))),
    "dollar_quote_semicolon_then_drop": ("execute", state(lambda c: gone(c, "order_items"))),
    "e_string_escaped_quote_then_drop": ("execute", state(lambda c: gone(c, "order_items"))),
    "unicode_escape_string_then_drop": ("execute", state(lambda c: gone(c, "order_items"))),
    "rollback_then_delete": ("readonly", state(lambda c: empty(c, "contacts"))),
    "semicolon_in_block_comment_then_delete": ("execute", state(lambda c: empty(c, "contacts"))),
    "line_comment_then_newline_delete": ("execute", state(lambda c: empty(c, "contacts"))),
    "tagged_dollar_quote_then_delete": ("execute", state(lambda c: empty(c, "contacts"))),
    "select_then_copy_program": ("execute", None),
    # statements that are not queries
    "drop_table": ("execute", state(lambda c: gone(c, "order_items"))),
    "delete_all": ("execute", state(lambda c: empty(c, "contacts"))),
    "truncate_contacts": ("execute", state(lambda c: empty(c, "contacts"))),
    "update_totals": ("execute", holds("SELECT sum(total) = 0 FROM orders")),
    "insert_row": ("execute", holds("SELECT count(*) = 1 FROM products WHERE id = 9999")),
    "create_table_as": (
        "execute",
        holds("SELECT count(*) > 0 FROM stolen WHERE ssn IS NOT NULL"),
    ),
    "do_block": ("execute", state(lambda c: empty(c, "contacts"))),
    "copy_to_program": ("execute", None),
    "set_search_path": (
        "execute",
        holds("SELECT current_setting('search_path') LIKE 'evil%'"),
    ),
    "comment_on_table": (
        "execute",
        holds("SELECT obj_description('orders'::regclass) = 'pwned'"),
    ),
    "grant_all": (
        "execute",
        holds("SELECT has_table_privilege('public', 'credentials', 'SELECT')"),
    ),
    "lock_table": ("in_txn", None),
    # writes hidden inside a query
    "delete_in_cte": ("fetch", state(lambda c: empty(c, "contacts"))),
    "delete_cte_unreferenced": ("fetch", state(lambda c: empty(c, "contacts"))),
    "update_in_cte": ("fetch", holds("SELECT sum(total) = 0 FROM orders")),
    "insert_in_cte": ("fetch", holds("SELECT count(*) = 1 FROM products WHERE id = 9999")),
    "select_into_table": ("execute", holds("SELECT count(*) > 0 FROM stolen")),
    "for_update_lock": ("in_txn", None),
    # functions with side effects, files, SQL in strings, settings
    "pg_read_file_in_select": ("fetch", rows_have(lambda r: "root:" in str(r))),
    "pg_read_file_in_from": ("fetch", rows_have(lambda r: "root:" in str(r))),
    "pg_read_file_schema_prefixed": ("fetch", rows_have(lambda r: "root:" in str(r))),
    "pg_read_file_upper_quoted": ("fetch", rows_have(lambda r: "root:" in str(r))),
    "pg_read_binary_file": ("fetch", rows_have(lambda r: "root:" in str(r))),
    "pg_ls_dir": ("fetch", rows_have(lambda r: "PG_VERSION" in str(r))),
    "pg_stat_file": ("fetch", rows_have(lambda r: r[0]["size"] > 0)),
    "set_config_search_path": (
        "fetch",
        holds("SELECT current_setting('search_path') = 'evil'"),
    ),
    "set_config_in_where": (
        "fetch",
        holds("SELECT current_setting('statement_timeout') = '0'"),
    ),
    "advisory_lock": (
        "fetch",
        state(
            lambda c: val(
                c, "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
        ),
    ),
    # (query_to_xml runs SQL from a string too, but the embedded server is built without libxml)
    "ts_stat_sql_in_string": ("fetch", rows_have(lambda r: any(str(x["word"]).startswith("sk") for x in r))),
    "current_setting_data_dir": ("fetch", rows_have(lambda r: "/data" in str(r))),
    "pg_sleep_long": ("timeout", None),
    "generate_series_huge": ("timeout", None),
    "recursive_cte_unbounded": ("timeout", None),
    "version_fn": ("fetch", rows_have(lambda r: "PostgreSQL" in str(r))),
    # catalogs
    "information_schema_columns": (
        "fetch",
        rows_have(lambda r: ("customers", "ssn") in [tuple(x) for x in r]),
    ),
    "pg_tables_unqualified": ("fetch", rows_have(lambda r: "credentials" in str(r))),
    "pg_stats_histograms": ("fetch_text", rows_have(has_ssn)),
    "pg_stat_activity": ("fetch", rows_have(lambda r: "pg_stat_activity" in str(r))),
    "pg_settings_view": ("fetch", rows_have(lambda r: "data_directory" in str(r))),
    "regclass_cast": ("fetch", rows_have(lambda r: r[0][0] > 0)),
    # blocked tables under other spellings
    "table_command_credentials": ("fetch", rows_have(has_secret)),
    "credentials_plain": ("fetch", rows_have(has_secret)),
    "credentials_upper": ("fetch", rows_have(has_secret)),
    "credentials_quoted": ("fetch", rows_have(has_secret)),
    "credentials_schema_qualified": ("fetch", rows_have(has_secret)),
    "credentials_only": ("fetch", rows_have(has_secret)),
    "credentials_cte_shadows_allowed_name": ("fetch", rows_have(has_secret)),
    "credentials_in_union": ("fetch", rows_have(has_secret)),
    "credentials_lateral": ("fetch", rows_have(has_secret)),
    "credentials_scalar_subquery": ("fetch", rows_have(has_secret)),
    # blocked columns by every route
    "ssn_explicit": ("fetch", rows_have(has_ssn)),
    "ssn_quoted": ("fetch", rows_have(has_ssn)),
    "ssn_schema_qualified_column": ("fetch", rows_have(has_ssn)),
    "ssn_via_star": ("fetch", rows_have(has_ssn)),
    "ssn_via_table_star": ("fetch", rows_have(has_ssn)),
    "ssn_via_whole_row": ("fetch", rows_have(has_ssn)),
    "ssn_via_row_to_json": ("fetch", rows_have(has_ssn)),
    "ssn_via_to_jsonb": ("fetch", rows_have(has_ssn)),
    "ssn_via_json_agg": ("fetch", rows_have(has_ssn)),
    "ssn_via_row_constructor": ("fetch", rows_have(has_ssn)),
    "ssn_via_whole_row_text_cast": ("fetch", rows_have(has_ssn)),
    "ssn_via_table_name_row": ("fetch", rows_have(has_ssn)),
    "ssn_composite_field_access": ("fetch", rows_have(has_ssn)),
    "ssn_renamed_by_alias": ("fetch", rows_have(has_ssn)),
    "ssn_via_subquery_rename": ("fetch", rows_have(has_ssn)),
    "ssn_via_cte_column_list": ("fetch", rows_have(has_ssn)),
    "ssn_via_cte_star_then_named": ("fetch", rows_have(has_ssn)),
    "ssn_via_derived_alias_columns": ("fetch", rows_have(has_ssn)),
    "ssn_string_agg": ("fetch", rows_have(has_ssn)),
    "ssn_jsonb_build_object": ("fetch", rows_have(has_ssn)),
    "ssn_union_branch": ("fetch", rows_have(has_ssn)),
    "ssn_lateral_reference": ("fetch", rows_have(has_ssn)),
    "ssn_recursive_cte": ("fetch", rows_have(has_ssn)),
    "ssn_ordered_set_aggregate": ("fetch", rows_have(has_ssn)),
    "ssn_count_distinct": ("fetch", rows_have(lambda r: r[0][0] > 1)),
    # an unconstrained product of two tables
    "cartesian_comma": ("fetch", rows_have(lambda r: len(r) > 100_000)),
}


async def _run_special(name: str, conn: asyncpg.Connection, url: str, sql: str, work: Path) -> bool:
    if name in ("copy_to_program", "select_then_copy_program"):
        try:
            await conn.execute(sql)
        except asyncpg.InternalServerError as e:
            # `touch` reads no input: when it exits before the server writes the row, the server
            # reports the broken pipe. The program ran all the same, and that is the harm.
            if "Broken pipe" not in str(e):
                raise
        return (work / "sqlmode_pwned").exists()
    if name in ("for_update_lock", "lock_table"):
        async with conn.transaction():
            await conn.execute(sql)
            return await _locked_elsewhere(url)
    if name in ("pg_sleep_long", "generate_series_huge", "recursive_cte_unbounded"):
        # Unsafe to run to the end: show it is still running when a short timeout hits.
        await conn.execute("SET statement_timeout = '300ms'")
        try:
            await conn.fetch(sql)
        except asyncpg.QueryCanceledError:
            return True
        return False
    raise AssertionError(name)


@pytest.mark.parametrize("name", sorted(HARM))
async def test_attack_would_do_harm_and_is_refused(
    name: str, scratch: tuple[asyncpg.Connection, str], shared_dir: Path
) -> None:
    conn, url = scratch
    case = CASES[name]
    assert ANALYZER.analyze(case.sql, SNAPSHOT).violations, f"{name} must be refused"
    work = Path(tempfile.mkdtemp(dir=shared_dir))
    os.chmod(work, 0o777)
    sql = case.sql.replace("/tmp/", f"{work}/")
    mode, check = HARM[name]
    if check is None:
        assert await _run_special(name, conn, url, sql, work)
        return
    rows: Any = None
    if mode == "readonly":
        await conn.execute("BEGIN READ ONLY")  # what a "read-only" server wraps the text in
        await conn.execute(sql)
    elif mode == "execute":
        await conn.execute(sql)
    elif mode == "fetch_text":
        # anyarray columns have no client codec: read the verbatim query's rows as text
        rows = await conn.fetch(f"SELECT q::text FROM ({sql}) q")
    else:
        rows = await conn.fetch(sql)
    assert await check(conn, rows, work, url)


async def test_notify_reaches_a_listener(scratch: tuple[asyncpg.Connection, str]) -> None:
    conn, url = scratch
    sql = CASES["pg_notify_channel"].sql
    assert ANALYZER.analyze(sql, SNAPSHOT).violations
    listener = await asyncpg.connect(url)
    got: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("ch", lambda *args: got.put_nowait(args[-1]))
    try:
        await conn.fetch(sql)
        assert await asyncio.wait_for(got.get(), 5) == "payload"
    finally:
        await listener.close()


async def test_lo_import_reads_a_server_file(scratch: tuple[asyncpg.Connection, str]) -> None:
    conn, _ = scratch
    sql = CASES["lo_import_file"].sql
    assert ANALYZER.analyze(sql, SNAPSHOT).violations
    oid = await conn.fetchval(sql)
    assert b"root:" in await conn.fetchval("SELECT lo_get($1)", oid)
