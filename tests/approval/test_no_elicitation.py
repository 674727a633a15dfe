"""Human approval on clients without URL elicitation: approval_required, a distinct approver, one run.

The client is a real in-process ``mcp.Client`` with no elicitation callback; approvers decide
through the real HTTP API of the server on a loopback port. "Nothing ran" is checked in the
database itself (a write that would change a row) and in the audit log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest
from mcp import Client

from sqlmode.config import Settings
from sqlmode.server import build_server
from sqlmode.service import CodeModeService
from tests.approval.conftest import READ_SQL, WRITE_SQL, decide
from tests.narrow import block_text
from tests.server.conftest import running_http, task_scoped


@pytest.fixture
async def client(service: CodeModeService) -> AsyncIterator[Client]:
    async with task_scoped(Client(build_server(service))) as c:
        yield c


async def validated(client: Client, sql: str) -> dict[str, Any]:
    r = await client.call_tool("validate_code", {"code": sql})
    v = r.structured_content
    assert v is not None and v["is_valid"], r.content
    return v


async def execute(client: Client, v: dict[str, Any]) -> Any:
    return await client.call_tool(
        "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
    )


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[tuple[CodeModeService, Client, str]]:
    """A service, its in-process client and its HTTP pages; the database is free again after exit."""
    async with CodeModeService(settings) as svc, running_http(svc) as url:
        base = url.removesuffix("/mcp")
        svc.approvals.base_url = base
        async with task_scoped(Client(build_server(svc))) as client:
            yield svc, client, base


def status_of(db: Path) -> Any:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT status FROM orders WHERE id = 3").fetchone()


def audit(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(x) for x in Path(settings.audit.path).read_text().splitlines() if x.strip()]


async def test_validate_says_approval_is_needed_and_by_whom(client: Client) -> None:
    v = await validated(client, READ_SQL)
    assert v["approval"] == {"approvers": "approvers", "required": 1, "expires_seconds": 900}
    r = await client.call_tool("validate_code", {"code": READ_SQL})
    assert "approvers" in block_text(r.content[0]) and "approval page" in block_text(r.content[0])


async def test_nothing_needs_approval_by_default(make_settings: Callable[..., Settings]) -> None:
    async with CodeModeService(make_settings()) as svc, task_scoped(Client(build_server(svc))) as c:
        v = await validated(c, READ_SQL)
        assert v["approval"] is None
        r = await execute(c, v)
        assert not r.is_error and r.structured_content["approval_required"] is None
        assert r.structured_content["row_count"] > 0


async def test_approval_required_then_a_distinct_approver_then_rows_once(
    client: Client, service: CodeModeService, pages: str
) -> None:
    v = await validated(client, READ_SQL)
    first = await execute(client, v)
    assert not first.is_error, first.content
    req = first.structured_content["approval_required"]
    assert first.structured_content["rows"] == [] and first.structured_content["row_count"] == 0
    assert req["approvers"] == "approvers" and req["url"] == f"{pages}/approvals/{req['id']}"
    assert req["url"] in block_text(first.content[0])
    # Still pending: the retry waits (approval.wait_seconds), then answers approval_required again.
    again = await execute(client, v)
    assert again.structured_content["approval_required"]["id"] == req["id"]

    resp = await decide(pages, req["id"], "approve", "ana", "looks fine")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "approved" and resp.json()["decisions"][0]["who"] == "ana"

    ran = await execute(client, v)
    assert not ran.is_error, ran.content
    assert ran.structured_content["approval_required"] is None
    assert ran.structured_content["rows"] and ran.structured_content["row_count"] > 0
    # The approval ran its query once: the same token and code again is refused.
    replay = await execute(client, v)
    assert replay.is_error and "APPROVAL_USED" in block_text(replay.content[0])
    events = [(r["event"], r.get("decision")) for r in audit(service.settings)]
    assert ("approval_requested", None) in events and ("approval_decision", None) in events
    assert events.count(("execute", "run")) == 1 and ("approval_used", None) in events
    run = next(r for r in audit(service.settings) if r.get("decision") == "run")
    assert run["approval"] == f"human approval {req['id']} by ana"


async def test_a_waiting_execute_code_runs_when_approved(
    client: Client, service: CodeModeService, pages: str
) -> None:
    service.settings.approval.wait_seconds = 30
    v = await validated(client, READ_SQL)
    req = (await execute(client, v)).structured_content["approval_required"]
    waiting = asyncio.create_task(execute(client, v))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    assert (await decide(pages, req["id"], "approve", "bob")).status_code == 200
    ran = await asyncio.wait_for(waiting, 30)
    assert ran.structured_content["row_count"] > 0


@pytest.mark.parametrize(
    "who, status, code", [("local", 403, "APPROVAL_SELF"), ("carol", 403, "APPROVAL_NOT_APPROVER")]
)
async def test_the_requester_and_non_approvers_cannot_approve(
    approval_settings: Callable[..., Settings], writable_db: Path, who: str, status: int, code: str
) -> None:
    before = status_of(writable_db)
    async with opened(approval_settings()) as (_, client, pages):
        v = await validated(client, WRITE_SQL)
        req = (await execute(client, v)).structured_content["approval_required"]
        resp = await decide(pages, req["id"], "approve", who)
        assert resp.status_code == status and resp.json()["error"]["code"] == code
        r = await execute(client, v)
        assert not r.is_error and r.structured_content["approval_required"]["id"] == req["id"]
    assert status_of(writable_db) == before != ("void",)  # nothing ran


async def test_four_eyes_needs_two_distinct_approvers(
    approval_settings: Callable[..., Settings], writable_db: Path
) -> None:
    async with opened(approval_settings(required=2)) as (svc, client, base):
        v = await validated(client, WRITE_SQL)
        assert v["approval"]["required"] == 2
        req = (await execute(client, v)).structured_content["approval_required"]
        assert (await decide(base, req["id"], "approve", "ana")).json()["status"] == "pending"
        twice = await decide(base, req["id"], "approve", "ana")
        assert twice.status_code == 409 and twice.json()["error"]["code"] == "APPROVAL_DECIDED"
        assert (await execute(client, v)).structured_content["approval_required"] is not None
        assert not any(r.get("decision") == "run" for r in audit(svc.settings))
        assert (await decide(base, req["id"], "approve", "bob")).json()["status"] == "approved"
        ran = await execute(client, v)
        assert not ran.is_error, ran.content
    assert status_of(writable_db) == ("void",)


async def test_a_denied_request_never_runs(
    approval_settings: Callable[..., Settings], writable_db: Path
) -> None:
    before = status_of(writable_db)
    async with opened(approval_settings()) as (_, client, pages):
        v = await validated(client, WRITE_SQL)
        req = (await execute(client, v)).structured_content["approval_required"]
        assert (await decide(pages, req["id"], "deny", "ana", "not today")).json()["status"] == "denied"
        late = await decide(pages, req["id"], "approve", "bob")
        assert late.status_code == 409 and late.json()["error"]["code"] == "APPROVAL_DECIDED"
        r = await execute(client, v)
        assert (
            r.is_error and "APPROVAL_DENIED" in block_text(r.content[0]) and "ana" in block_text(r.content[0])
        )
    assert status_of(writable_db) == before != ("void",)


async def test_an_expired_request_never_runs(
    approval_settings: Callable[..., Settings], writable_db: Path
) -> None:
    before = status_of(writable_db)
    async with opened(approval_settings(expires_seconds=1)) as (_, client, base):
        v = await validated(client, WRITE_SQL)
        req = (await execute(client, v)).structured_content["approval_required"]
        await asyncio.sleep(1.2)
        late = await decide(base, req["id"], "approve", "ana")
        assert late.status_code == 409 and late.json()["error"]["code"] == "APPROVAL_EXPIRED"
        r = await execute(client, v)
        assert r.is_error and "APPROVAL_EXPIRED" in block_text(r.content[0])
    assert status_of(writable_db) == before != ("void",)


async def test_an_approval_for_other_code_approves_nothing_else(
    approval_settings: Callable[..., Settings], writable_db: Path
) -> None:
    before = status_of(writable_db)
    async with opened(approval_settings()) as (_, client, pages):
        read = await validated(client, READ_SQL)
        req = (await execute(client, read)).structured_content["approval_required"]
        assert (await decide(pages, req["id"], "approve", "ana")).status_code == 200
        # The approved token with other code: refused before any approval is looked at.
        swapped = await client.call_tool(
            "execute_code", {"code": WRITE_SQL, "approval_token": read["approval_token"]}
        )
        assert swapped.is_error and "TOKEN_CODE_MISMATCH" in block_text(swapped.content[0])
        # The other code's own token opens its own request: the first approval does not carry over.
        write = await validated(client, WRITE_SQL)
        other = (await execute(client, write)).structured_content["approval_required"]
        assert other["id"] != req["id"] and other["url"].endswith(other["id"])
    assert status_of(writable_db) == before != ("void",)
