"""Human approval over URL elicitation: 2026-07-28 (InputRequiredResult) and legacy (elicit_url).

The client's elicitation callback plays the user who opens the page: it accepts, and an approver
decides on the real HTTP API a moment later, while the call long-polls. The URL the client is shown
approves nothing by itself: a test also checks that accepting without an approver runs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from mcp import Client
from mcp.types import ElicitRequestURLParams, ElicitResult

from sqlmode.config import Settings
from sqlmode.server import build_server
from sqlmode.service import CodeModeService
from tests.approval.conftest import READ_SQL, decide
from tests.approval.test_no_elicitation import audit, running_http
from tests.narrow import block_text
from tests.server.conftest import task_scoped


class User:
    """Opens the URL (accepts); ``approver`` then decides on the page after ``delay`` seconds."""

    def __init__(self, base: str, approver: str | None, delay: float = 0.8):
        self.base, self.approver, self.delay = base, approver, delay
        self.asked: list[ElicitRequestURLParams] = []
        self.tasks: list[asyncio.Task[Any]] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestURLParams), params
        self.asked.append(params)
        if self.approver is not None:
            rid = params.url.rsplit("/", 1)[1]

            async def later() -> None:
                await asyncio.sleep(self.delay)
                r = await decide(self.base, rid, "approve", self.approver or "")
                assert r.status_code == 200, r.text

            self.tasks.append(asyncio.create_task(later()))
        return ElicitResult(action="accept")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_url_elicitation_waits_for_the_approver_then_runs_once(
    approval_settings: Callable[..., Settings], mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqlmode.access")
    async with CodeModeService(approval_settings(wait_seconds=0.3)) as svc, running_http(svc) as url:
        base = url.removesuffix("/mcp")
        svc.approvals.base_url = base
        user = User(base, "ana")
        async with task_scoped(Client(build_server(svc), mode=mode, elicitation_callback=user)) as client:
            v = (await client.call_tool("validate_code", {"code": READ_SQL})).structured_content
            r = await client.call_tool(
                "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
            )
            assert not r.is_error, r.content
            assert r.structured_content["row_count"] > 0 and r.structured_content["approval_required"] is None
            # Asked once: later rounds carry only the state (modern) or wait in the call (legacy).
            assert len(user.asked) == 1 and user.asked[0].url.startswith(f"{base}/approvals/")
            assert "approvers" in user.asked[0].message
            await asyncio.gather(*user.tasks)
        runs = [x for x in audit(svc.settings) if x.get("decision") == "run"]
        assert len(runs) == 1 and runs[0]["approval"].endswith("by ana")
    outcomes = [
        getattr(rec, "outcome", None) for rec in caplog.records if getattr(rec, "tool", "") == "execute_code"
    ]
    if mode == "auto":  # 2026-07-28: InputRequiredResult rounds, then the rows
        assert outcomes[0] == "input_required" and outcomes[-1] == "ok" and len(outcomes) >= 2
    else:  # legacy: one call that asked mid-call and waited
        assert outcomes == ["ok"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_accepting_the_url_is_not_an_approval(
    approval_settings: Callable[..., Settings], mode: str
) -> None:
    # Expires while nobody approves: the call ends with APPROVAL_EXPIRED and nothing ran.
    async with CodeModeService(approval_settings(wait_seconds=0.3, expires_seconds=2)) as svc:
        svc.approvals.base_url = "http://127.0.0.1:9"
        user = User("", None)
        client_kw: dict[str, Any] = {
            "mode": mode,
            "elicitation_callback": user,
            "input_required_max_rounds": 100,
        }
        async with task_scoped(Client(build_server(svc), **client_kw)) as client:
            v = (await client.call_tool("validate_code", {"code": READ_SQL})).structured_content
            r = await client.call_tool(
                "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
            )
            assert r.is_error and "APPROVAL_EXPIRED" in block_text(r.content[0])
            assert len(user.asked) == 1
        assert not [x for x in audit(svc.settings) if x.get("decision") == "run"]
