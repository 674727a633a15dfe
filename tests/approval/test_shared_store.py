"""Two processes' worth of services over one shared state store: the one that runs the query never serves
the page, the one that serves the page never runs it (a stdio server beside `serve --transport http`,
or replicas). The decision travels through the store only."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from mcp import Client

from sqlmode.config import Settings
from sqlmode.server import build_server
from sqlmode.service import CodeModeService
from tests.approval.conftest import READ_SQL, decide
from tests.approval.test_no_elicitation import execute, validated
from tests.narrow import block_text
from tests.server.conftest import running_http, task_scoped


async def test_a_decision_on_another_replicas_page_releases_the_query_once(
    approval_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    state = {"url": f"sqlite:///{tmp_path / 'state.sqlite'}"}
    runner_settings = approval_settings(state=state)
    # Another process has its own copy of the database file; one process holds one DuckDB instance a file.
    page_db = tmp_path / "page.duckdb"
    shutil.copy(runner_settings.database.duckdb_path, page_db)
    page_settings = approval_settings(state=state, db=page_db)
    async with (
        CodeModeService(runner_settings) as runner,
        CodeModeService(page_settings) as pages,
        running_http(pages) as url,
        task_scoped(Client(build_server(runner))) as client,
    ):
        base = url.removesuffix("/mcp")
        runner.approvals.base_url = base
        v = await validated(client, READ_SQL)
        req = (await execute(client, v)).structured_content["approval_required"]
        assert req["url"].startswith(base)
        shown = await pages.approvals.get(req["id"])
        assert shown is not None and shown["normalized_code"] == v["normalized_code"]
        assert (await decide(base, req["id"], "approve", "ana")).json()["status"] == "approved"
        ran = await execute(client, v)
        assert not ran.is_error and ran.structured_content["row_count"] > 0, ran.content
        again = await execute(client, v)
        assert again.is_error and "APPROVAL_USED" in block_text(again.content[0])
