"""In-band approval: execute_code asks the user through MCP elicitation for the configured risk levels.

Accepted runs the query, declined or cancelled refuses it (and says so in the audit log), and a
client that cannot be asked keeps the approval token as the gate. Both protocol generations are
covered: 2026-07-28 (input_required round trip) and 2025-11-25 (elicitation/create mid-call).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import mcp.types as types
import pytest
from mcp import Client

from sqlmode.config import Settings
from sqlmode.server import ELICITED, NOT_REQUIRED, UNAVAILABLE, build_server
from sqlmode.service import CodeModeService
from tests.narrow import block_text
from tests.server.conftest import EASY_SQL, http_client, running_http

ElicitAction = Literal["accept", "decline", "cancel"]  # mcp.types.ElicitResult.action


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def asking_service(server_settings: Callable[..., Settings]):
    async with CodeModeService(server_settings({"server": {"elicit_risk_levels": ["low", "medium"]}})) as svc:
        yield svc


def answering(action: ElicitAction, approve: bool = True) -> tuple[Callable[..., Any], list[str]]:
    asked: list[str] = []

    async def callback(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        assert isinstance(params, types.ElicitRequestFormParams)
        assert params.requested_schema["properties"]["approve"]["type"] == "boolean"
        return types.ElicitResult(action=action, content={"approve": approve} if action == "accept" else None)

    return callback, asked


async def validate_and_execute(client: Client, code: str = EASY_SQL) -> types.CallToolResult:
    v = (await client.call_tool("validate_code", {"code": code})).structured_content
    assert v is not None and v["is_valid"], v
    return await client.call_tool(
        "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
    )


def run_records(settings: Settings) -> list[dict[str, Any]]:
    recs = [json.loads(x) for x in Path(settings.audit.path).read_text().splitlines()]
    return [r for r in recs if r["event"] in ("execute", "executed")]


async def test_accepted_runs_the_query(asking_service: CodeModeService, mode: str) -> None:
    callback, asked = answering("accept")
    async with Client(build_server(asking_service), mode=mode, elicitation_callback=callback) as c:
        r = await validate_and_execute(c)
    assert not r.is_error, r.content
    assert r.structured_content["row_count"] == 4
    assert len(asked) == 1
    assert asked[0].startswith("sqlmode's analysis: a low-risk read query (SELECT) on customers.")
    assert "Reads customers" in asked[0]
    assert re.search(
        r"comments removed\):\nSELECT region, COUNT\(\*\) AS n FROM customers .* LIMIT \d+", asked[0]
    )
    intent, outcome = run_records(asking_service.settings)
    assert (intent["decision"], intent["approval"], outcome["decision"]) == ("run", ELICITED, "ok")


@pytest.mark.parametrize(("action", "approve"), [("decline", True), ("cancel", True), ("accept", False)])
async def test_declined_refuses_and_nothing_runs(
    asking_service: CodeModeService, mode: str, action: ElicitAction, approve: bool
) -> None:
    callback, asked = answering(action, approve)
    async with Client(build_server(asking_service), mode=mode, elicitation_callback=callback) as c:
        r = await validate_and_execute(c)
    assert r.is_error and len(asked) == 1
    text = block_text(r.content[0])
    assert text.startswith("USER_DECLINED:") and "nothing was run" in text and "Hint:" in text
    [declined] = run_records(asking_service.settings)  # no "executed" record: the query never ran
    assert (declined["event"], declined["decision"], declined["error"]) == (
        "execute",
        "declined",
        "USER_DECLINED",
    )


async def test_a_client_that_cannot_be_asked_keeps_the_token_as_the_gate(
    asking_service: CodeModeService, mode: str
) -> None:
    async with Client(build_server(asking_service), mode=mode) as c:  # no elicitation capability
        r = await validate_and_execute(c)
    assert not r.is_error, r.content
    intent, _ = run_records(asking_service.settings)
    assert intent["approval"] == UNAVAILABLE
    # The token is still required and still single use.
    async with Client(build_server(asking_service), mode=mode) as c:
        bad = await c.call_tool("execute_code", {"code": EASY_SQL, "approval_token": "sqlmode.k1.x.y"})
    assert bad.is_error and "TOKEN_" in block_text(bad.content[0])


async def test_risk_levels_not_configured_are_not_asked(server_settings: Callable[..., Settings]) -> None:
    callback, asked = answering("decline")
    async with (
        CodeModeService(server_settings({"server": {"elicit_risk_levels": ["high", "critical"]}})) as svc,
        Client(build_server(svc), elicitation_callback=callback) as c,
    ):
        r = await validate_and_execute(c)
        assert not r.is_error and asked == []
        assert run_records(svc.settings)[0]["approval"] == NOT_REQUIRED


async def test_elicitation_over_http(asking_service: CodeModeService, mode: str) -> None:
    callback, asked = answering("accept")
    async with (
        running_http(asking_service) as url,
        http_client(url, mode=mode, elicitation_callback=callback) as c,
    ):
        r = await validate_and_execute(c)
    assert not r.is_error, r.content
    assert len(asked) == 1 and run_records(asking_service.settings)[0]["approval"] == ELICITED
