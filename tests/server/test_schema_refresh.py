"""The bounded schema is re-reflected on demand and when its TTL expires; tokens follow the schema hash."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest
from mcp import Client

from sqlmode.config import Settings
from sqlmode.server import build_server
from sqlmode.service import CodeModeService
from tests.narrow import block_text
from tests.plugins.postgres import apply_sample_grants, create_database
from tests.server.conftest import EASY_SQL


async def test_refresh_while_the_duckdb_executor_is_open(service: CodeModeService) -> None:
    # Reflection joins the executor's DuckDB instance: both must use the very same configuration.
    from sqlmode.engines._duckdb_exec import duckdb_config

    assert duckdb_config(service.settings) == service.settings.database.duckdb_config()
    before = (await service.schema()).schema_hash
    assert (await service.refresh_schema()).schema_hash == before
    v = await service.validate(EASY_SQL)
    assert (await service.execute(v.normalized_code, v.approval_token or "")).row_count == 4


@pytest.mark.postgres
async def test_postgres_schema_changes_show_up_on_ttl_and_on_demand(
    pg_admin_url: str, pg_settings: Callable[..., Settings]
) -> None:
    url = await create_database(pg_admin_url, "sqlmode_refresh")
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);"
            "INSERT INTO accounts VALUES (1, 'a'), (2, 'b');"
        )
        settings = pg_settings(
            url,
            {
                "database": {"tables": [], "schema_ttl_seconds": 2},
                # This database has none of the sample's tables, so nothing of it to block.
                "code_mode": {"blocked_tables": [], "blocked_fields": []},
            },
        )
        await apply_sample_grants(url, settings)  # as `db grants --apply`: queries switch to the reader
        async with CodeModeService(settings) as svc, Client(build_server(svc)) as client:
            v = (
                await client.call_tool("validate_code", {"code": "SELECT id, name FROM accounts"})
            ).structured_content
            assert v is not None and v["is_valid"], v
            await svc.refresh_schema()  # the TTL starts now, however long the validation took
            await admin.execute("ALTER TABLE accounts ADD COLUMN region text")
            # Within the TTL the cached schema is served ...
            text = block_text((await client.read_resource("schema://analytics/accounts")).contents[0])
            assert "region" not in text
            await asyncio.sleep(2.1)
            # ... after it, the change is visible and the outstanding token no longer matches.
            text = block_text((await client.read_resource("schema://analytics/accounts")).contents[0])
            assert "region TEXT" in text
            r = await client.call_tool(
                "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
            )
            assert r.is_error and block_text(r.content[0]).startswith("TOKEN_SCHEMA_CHANGED")
            # On demand: visible at once, no TTL wait.
            await admin.execute("CREATE TABLE regions (code text PRIMARY KEY)")
            await svc.refresh_schema()
            tool = await client.call_tool("describe_schema", {})
            assert "regions" in block_text(tool.content[0])
    finally:
        await admin.close()
