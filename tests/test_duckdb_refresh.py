"""DuckDB schema refreshes read the executor's own instance, writes on or off, file or memory.

DuckDB refuses, in one process, a second connection to a file with another configuration: with
writes on the executor holds the file read-write, so a refresh on a read-only connection of its
own failed (DATABASE_UNAVAILABLE) and every tool call with it once the schema TTL had passed.
Schema changes come from this process (``open_duckdb`` joins the service's instance, as the write
executor does): another process cannot open a file this one holds, read-only or read-write.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.engines._duckdb_exec import DuckDBExecutor, open_duckdb
from sqlmode.errors import PermissionDeniedError
from sqlmode.schema import reflect_schema
from sqlmode.service import CodeModeService
from tests.plugins.sample import TEST_TOKEN_SECRET

TABLES = ["customers", "products", "orders", "order_items", "support_tickets", "contacts"]
TTL_S = 1


def sample_copy(make: Callable[..., Settings], sample: Path, tmp: Path, writes: bool) -> Settings:
    db = tmp / "copy.duckdb"
    shutil.copy(sample, db)
    ops = ["read", "write"] if writes else ["read"]
    return make(
        {
            "database": {
                "url": f"duckdb:///{db}",
                "tables": [{"name": t, "operations": ops} for t in TABLES],
                "schema_ttl_seconds": TTL_S,
            },
            "code_mode": {"allow_writes": writes, "cedar_policies": {"read_only_mode": not writes}},
        }
    )


def bare(make: Callable[..., Settings], url: str, writes: bool) -> Settings:
    """A database with nothing in it: no names to allow, block or describe."""
    return make(
        {
            "database": {"url": url, "tables": [], "descriptions": None, "schema_ttl_seconds": TTL_S},
            "code_mode": {
                "allow_writes": writes,
                "blocked_tables": [],
                "blocked_fields": [],
                "cedar_policies": {"read_only_mode": not writes},
            },
        }
    )


async def expire(svc: CodeModeService) -> None:
    """Let the schema's TTL pass: the next tool call reflects again (service.schema())."""
    await asyncio.sleep(TTL_S + 0.05)


async def select(svc: CodeModeService, sql: str) -> list[Any]:
    v = await svc.validate(sql)
    assert v.is_valid, v.violations
    r = await svc.execute(v.normalized_code, v.approval_token or "")
    return list(r.rows)


@pytest.mark.parametrize("writes", [True, False], ids=["writes", "read-only"])
async def test_refresh_of_the_sample_after_the_ttl_keeps_tool_calls_working(
    make_settings: Callable[..., Settings], sample_duckdb_path: Path, tmp_path: Path, writes: bool
) -> None:
    settings = sample_copy(make_settings, sample_duckdb_path, tmp_path, writes)
    async with CodeModeService(settings) as svc:
        first = await svc.schema()
        assert await svc.refresh_schema() == first  # the lead's repro: this raised with writes on
        if writes:
            # Another writer of this process (the only kind there can be): a column and a row.
            con = open_duckdb(settings, read_only=False)
            try:
                con.execute("ALTER TABLE orders ADD COLUMN note VARCHAR")
                con.execute("UPDATE orders SET note = 'checked' WHERE id = 7")
            finally:
                con.close()
        await expire(svc)
        rows = await select(svc, "SELECT id, status FROM orders WHERE id = 7")
        assert [r[0] for r in rows] == [7]
        now = await svc.schema()
        if not writes:
            assert now.content_hash == first.content_hash
            return
        assert "note" in [c.name for c in now.tables["orders"].columns]
        assert "note" not in [c.name for c in first.tables["orders"].columns]
        assert now.content_hash != first.content_hash and now.schema_hash != first.schema_hash
        assert "note" in await svc.schema_text("orders")
        assert await select(svc, "SELECT note FROM orders WHERE id = 7") == [["checked"]]
        # A write through execute_code after the refresh, then read back after another expiry.
        v = await svc.validate("UPDATE orders SET note = 'again' WHERE id = 7")
        assert v.is_valid, v.violations
        w = await svc.execute(v.normalized_code, v.approval_token or "")
        assert getattr(w, "affected_rows", None) == 1
        await expire(svc)
        assert await select(svc, "SELECT note FROM orders WHERE id = 7") == [["again"]]
    with duckdb.connect(str(settings.database.duckdb_path), read_only=True) as con:
        assert con.execute("SELECT note FROM orders WHERE id = 7").fetchone() == ("again",)


@pytest.mark.parametrize("writes", [True, False], ids=["writes", "read-only"])
@pytest.mark.parametrize("where", ["fresh-file", "memory"])
async def test_refresh_of_an_empty_database_sees_a_table_created_in_this_process(
    make_settings: Callable[..., Settings], tmp_path: Path, writes: bool, where: str
) -> None:
    if where == "memory":
        url = "duckdb:///:memory:"
    else:
        path = tmp_path / "fresh.duckdb"
        duckdb.connect(str(path)).close()  # an empty DuckDB file
        url = f"duckdb:///{path}"
    settings = bare(make_settings, url, writes)
    async with CodeModeService(settings) as svc:
        first = await svc.schema()
        assert first.tables == {}
        await expire(svc)
        assert await select(svc, "SELECT 41 + 1 AS answer") == [[42]]
        if not writes or where == "memory":
            # Nothing in this process can change it: DuckDB refuses a writer beside a read-only
            # file, and an in-memory database is private to its instance (the executor's).
            assert (await svc.refresh_schema()).content_hash == first.content_hash
            reader = svc.executor
            assert isinstance(reader, DuckDBExecutor)
            reader._check_text = False  # the instance or its read-only transaction alone refuses
            with pytest.raises(PermissionDeniedError):
                await reader.run("CREATE TABLE sneaked (i INTEGER)")
            assert (await svc.refresh_schema()).tables == {}
            return
        con = open_duckdb(settings, read_only=False)  # joins the service's instance
        try:
            con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body VARCHAR)")
            con.execute("INSERT INTO notes VALUES (1, 'hello')")
        finally:
            con.close()
        await expire(svc)
        rows = await select(svc, "SELECT body FROM notes WHERE id = 1")
        assert rows == [["hello"]]
        now = await svc.schema()
        assert [c.name for c in now.tables["notes"].columns] == ["id", "body"]
        assert now.tables["notes"].columns[0].primary_key
        assert now.content_hash != first.content_hash


async def test_a_reflection_of_its_own_joins_a_file_held_read_write(
    make_settings: Callable[..., Settings], sample_duckdb_path: Path, tmp_path: Path
) -> None:
    """schema.reflect_schema(settings) while a writes-on service holds the file: the same tables."""
    settings = sample_copy(make_settings, sample_duckdb_path, tmp_path, writes=True)
    async with CodeModeService(settings) as svc:
        own = await reflect_schema(settings)
        assert svc.executor is not None
        on_executor = await svc.executor.reflect()
        assert own.content_hash == on_executor.content_hash == (await svc.refresh_schema()).content_hash
        assert own.tables == on_executor.tables
        assert set(own.tables) >= set(TABLES)
        # Joined read-write, it still only read: a write on it after the reflection is ours.
        assert await select(svc, "SELECT count(*) FROM orders WHERE id = 7") == [[1]]


@pytest.mark.parametrize("writes", [True, False], ids=["writes", "read-only"])
def test_cli_schema_validate_and_query_with_writes_on_and_off(
    sample_duckdb_path: Path, tmp_path: Path, writes: bool
) -> None:
    """The CLI's one-shot service reflects on a connection it closes, then opens the executor."""
    from sqlmode.config import sample_config_path

    db = tmp_path / "copy.duckdb"
    shutil.copy(sample_duckdb_path, db)
    text = sample_config_path().read_text()
    text = text.replace(
        'url = "duckdb:///${SQLMODE_SAMPLE_DB:-~/.cache/sqlmode/sample-v1.duckdb}"', f'url = "duckdb:///{db}"'
    )
    text = text.replace("build_sample = true", "build_sample = false")
    text = text.replace("allow_writes = false", f"allow_writes = {str(writes).lower()}")
    text = text.replace("read_only_mode = true", f"read_only_mode = {str(not writes).lower()}")
    text = text.replace('token_secret = "${CODE_MODE_SECRET:-}"', f'token_secret = "{TEST_TOKEN_SECRET}"')
    text = text.replace(
        'path = "${SQLMODE_AUDIT_LOG:-~/.cache/sqlmode/audit.jsonl}"', f'path = "{tmp_path / "audit.jsonl"}"'
    )
    assert str(db) in text and f"allow_writes = {str(writes).lower()}" in text
    config = tmp_path / "sqlmode.toml"
    config.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLMODE_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sqlmode", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    r = cli("schema")
    assert r.returncode == 0, r.stderr
    assert "orders" in r.stdout and "ssn" not in r.stdout and "Traceback" not in r.stderr
    r = cli("validate", "--json", "SELECT id FROM orders WHERE id = 7")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["is_valid"] is True and out["approval_token"]
    r = cli("query", "--yes", "--format", "csv", "SELECT id, status FROM orders WHERE id = 7")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "id,status" and r.stdout.splitlines()[1].startswith("7,")
