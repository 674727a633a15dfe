"""Long queries: progress notifications while they run, and cancelling the request cancels the query."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from mcp import Client

from sqlmode.config import Settings
from sqlmode.server import build_server
from sqlmode.service import CodeModeService
from tests.narrow import block_text
from tests.server.conftest import SLOW_SQL, http_client, running_http


async def approved(client: Client, code: str = SLOW_SQL) -> dict[str, str]:
    v = (await client.call_tool("validate_code", {"code": code})).structured_content
    assert v is not None and v["is_valid"], v
    return {"code": v["normalized_code"], "approval_token": v["approval_token"]}


async def start_and_cancel(
    client: Client, args: dict[str, str], while_running: Callable[[], Awaitable[None]] | None = None
) -> list[float]:
    """Start execute_code, wait until it reports progress (the query is running), cancel the request."""
    reported: list[float] = []
    running = asyncio.Event()

    # the parameter names are the SDK's ProgressFnT protocol's (it may pass them by keyword)
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append(progress)
        running.set()

    call = asyncio.create_task(client.call_tool("execute_code", args, progress_callback=on_progress))
    await asyncio.wait_for(running.wait(), 10)
    if while_running is not None:
        await while_running()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    return reported


def audit(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(x) for x in Path(settings.audit.path).read_text().splitlines()]


async def test_progress_is_reported_until_the_time_limit(server_settings: Callable[..., Settings]) -> None:
    settings = server_settings({"code_mode": {"query_timeout_ms": 1200}})
    reported: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append((progress, message))

    async with CodeModeService(settings) as svc, Client(build_server(svc, progress_interval=0.2)) as c:
        started = time.perf_counter()
        r = await c.call_tool("execute_code", await approved(c), progress_callback=on_progress)
        elapsed = time.perf_counter() - started
    assert r.is_error and block_text(r.content[0]).startswith("QUERY_TIMEOUT:")
    assert "Hint:" in block_text(r.content[0])
    # The cross join runs for minutes when nothing stops it; the slack is for a loaded machine.
    assert elapsed < 10
    assert len(reported) >= 3, reported
    values = [p for p, _ in reported]
    assert values == sorted(values) and all("query running" in (m or "") for _, m in reported)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_cancelling_the_request_interrupts_the_duckdb_query(
    server_settings: Callable[..., Settings], mode: str
) -> None:
    settings = server_settings({"code_mode": {"query_timeout_ms": 60_000}})
    async with CodeModeService(settings) as svc:
        async with Client(build_server(svc, progress_interval=0.2), mode=mode) as c:
            await start_and_cancel(c, await approved(c))
        # The run is audited as cancelled, and the database is free again at once.
        for _ in range(50):
            if audit(settings)[-1].get("decision") == "cancelled":
                break
            await asyncio.sleep(0.05)
        assert audit(settings)[-1]["decision"] == "cancelled"
        started = time.perf_counter()
        v = await svc.validate("SELECT count(*) AS n FROM customers")
        assert (await svc.execute(v.normalized_code, v.approval_token or "")).rows == [[2000]]
        assert time.perf_counter() - started < 1.0


async def active_queries(admin_url: str, needle: str) -> list[str]:
    conn = await asyncpg.connect(admin_url)
    try:
        rows = await conn.fetch(
            "SELECT query FROM pg_stat_activity "
            "WHERE state = 'active' AND query LIKE $1 AND pid <> pg_backend_pid()",
            f"%{needle}%",
        )
        return [r["query"] for r in rows]
    finally:
        await conn.close()


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_cancelling_an_http_request_cancels_the_postgres_query(
    pg_reader_url: str, pg_sample_url: str, pg_settings: Callable[..., Settings], mode: str, tmp_path: Path
) -> None:
    from tests.server.conftest import AUTH

    settings = pg_settings(
        pg_reader_url,
        {
            "code_mode": {"query_timeout_ms": 60_000},
            "auth": AUTH,
            "audit": {"path": str(tmp_path / "a.jsonl")},
        },
    )
    async with CodeModeService(settings) as svc, running_http(svc) as url, http_client(url, mode=mode) as c:

        async def is_running() -> None:
            assert await active_queries(pg_sample_url, "CROSS JOIN order_items"), (
                "the query should be running"
            )

        await start_and_cancel(c, await approved(c), is_running)
        deadline = time.monotonic() + 3
        while await active_queries(pg_sample_url, "CROSS JOIN order_items"):
            assert time.monotonic() < deadline, "the query kept running after the request was cancelled"
            await asyncio.sleep(0.1)
    assert audit(settings)[-1]["decision"] == "cancelled"
