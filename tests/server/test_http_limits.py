"""One credential cannot lock the others out (issue 18 items 3 and 4): HTTP statuses, tool errors, audit.

Per-principal request rate (429 + Retry-After), session quota per credential, validation rate and
concurrency (RATE_LIMITED tool errors), and analysis on a bounded pool under a deadline
(ANALYSIS_TIMEOUT, a refusal with a hint). Timings are never asserted; the load test reports them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sqlmode.config import ServerConfig, Settings
from sqlmode.errors import RateLimitedError
from sqlmode.limits import PrincipalLimits, TokenBucket
from sqlmode.service import CodeModeService
from tests.narrow import block_text
from tests.server.conftest import EASY_SQL, TOKENS, http_client, running_http

PROTOCOL = "2025-11-25"
ACCEPT = {"accept": "application/json, text/event-stream", "mcp-protocol-version": PROTOCOL}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
# A 90 KB OR-chain: seconds of analysis (issue 18 item 4).
HEAVY_SQL = "SELECT id FROM orders WHERE " + " OR ".join(f"id = {i}" for i in range(7000))


def auth(who: str) -> dict[str, str]:
    return {**ACCEPT, "authorization": f"Bearer {TOKENS[who]}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_refills_and_says_how_long_to_wait() -> None:
    clock = Clock()
    bucket = TokenBucket(60, clock)  # one a second, bursts of 60
    assert [bucket.take("a") for _ in range(60)] == [0] * 60
    assert bucket.take("a") == 1 and bucket.take("b") == 0  # another key is not affected
    clock.now += 1.0
    assert bucket.take("a") == 0 and bucket.take("a") == 1
    slow = TokenBucket(2, clock)  # one every 30 s
    assert (slow.take("a"), slow.take("a"), slow.take("a")) == (0, 0, 30)


async def test_validation_slots_are_per_principal_queued_then_refused() -> None:
    limits = PrincipalLimits(
        ServerConfig(max_concurrent_validations=1, max_queued_validations=1, validations_per_minute=100)
    )
    a1 = await limits.validation_slot("a")
    queued = asyncio.create_task(limits.validation_slot("a"))
    await asyncio.sleep(0)
    assert not queued.done()  # waits its turn
    with pytest.raises(RateLimitedError) as ei:
        await limits.validation_slot("a")  # one running, one waiting: no more
    assert (
        ei.value.code == "RATE_LIMITED"
        and ei.value.retry_after == 1
        and "Retry after 1 s" in ei.value.message
    )
    (await limits.validation_slot("b"))()  # another principal is not affected
    a1()
    a1()  # releasing twice gives back one slot only
    a2 = await asyncio.wait_for(queued, 5)
    with pytest.raises(RateLimitedError):
        await asyncio.wait_for(asyncio.gather(limits.validation_slot("a"), limits.validation_slot("a")), 0.5)
    a2()


def limited(server_settings: Callable[..., Settings], **server: Any) -> Settings:
    return server_settings({"server": server})


async def test_request_rate_is_per_principal_with_retry_after(
    server_settings: Callable[..., Settings],
) -> None:
    settings = limited(server_settings, requests_per_minute=5)
    async with CodeModeService(settings) as svc, running_http(svc) as url, httpx2.AsyncClient() as h:
        statuses = [(await h.post(url, json=INIT, headers=auth("ana"))).status_code for _ in range(8)]
        assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 3
        r = await h.post(url, json=INIT, headers=auth("ana"))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        body = r.json()
        assert (
            body["error"]["message"].startswith("RATE_LIMITED:")
            and "requests_per_minute" in body["error"]["message"]
        )
        assert (await h.post(url, json=INIT, headers=auth("bob"))).status_code == 200
        # Unauthenticated requests are the auth layer's: 401, not counted against anyone.
        assert (await h.post(url, json=INIT, headers=ACCEPT)).status_code == 401


async def test_sessions_per_credential_are_capped_and_freed_by_delete(
    server_settings: Callable[..., Settings],
) -> None:
    settings = limited(server_settings, max_sessions_per_credential=2, session_idle_timeout_seconds=600)
    async with CodeModeService(settings) as svc, running_http(svc) as url, httpx2.AsyncClient() as h:
        opened = []
        for _ in range(2):
            r = await h.post(url, json=INIT, headers=auth("ana"))
            assert r.status_code == 200
            opened.append(r.headers["mcp-session-id"])
        third = await h.post(url, json=INIT, headers=auth("ana"))
        assert third.status_code == 429 and "retry-after" in third.headers
        assert "max_sessions_per_credential" in third.json()["error"]["message"]
        # Another credential is not locked out, and ana's open sessions still work.
        assert (await h.post(url, json=INIT, headers=auth("bob"))).status_code == 200
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        r = await h.post(url, json=ping, headers={**auth("ana"), "mcp-session-id": opened[0]})
        assert r.status_code == 200
        # Closing one frees a place.
        closed = await h.delete(url, headers={**auth("ana"), "mcp-session-id": opened[0]})
        assert closed.status_code in (200, 204)
        assert (await h.post(url, json=INIT, headers=auth("ana"))).status_code == 200


async def test_validations_over_the_rate_are_a_tool_error_with_retry_after(
    server_settings: Callable[..., Settings],
) -> None:
    settings = limited(server_settings, validations_per_minute=2)
    async with CodeModeService(settings) as svc, running_http(svc) as url:
        async with http_client(url) as c:
            results = [await c.call_tool("validate_code", {"code": EASY_SQL}) for _ in range(3)]
        assert [r.is_error for r in results] == [False, False, True]
        text = block_text(results[2].content[0])
        assert text.startswith("RATE_LIMITED:") and "Retry after" in text and "validations_per_minute" in text
        async with http_client(url, TOKENS["bob"]) as c:
            assert not (await c.call_tool("validate_code", {"code": EASY_SQL})).is_error


def audit(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(x) for x in Path(settings.audit.path).read_text().splitlines() if x.strip()]


@pytest.mark.parametrize("workers", ["threads", "processes"])
async def test_an_analysis_past_its_deadline_is_refused_with_a_hint(
    server_settings: Callable[..., Settings], workers: str
) -> None:
    settings = limited(server_settings, analysis_timeout_ms=1, analysis_workers=1)
    async with CodeModeService(settings) as svc:
        if workers == "processes":
            await svc.use_analysis_processes()  # the deadline is enforced inside the worker
        v = await svc.validate(HEAVY_SQL)
    assert not v.is_valid and v.approval_token is None
    [violation] = v.violations
    assert violation.code == "ANALYSIS_TIMEOUT" and "OR" in (violation.hint or "")
    record = [r for r in audit(settings) if r["event"] == "validate"][-1]
    assert (record["decision"], record["violations"]) == ("denied", ["ANALYSIS_TIMEOUT"])


async def test_concurrent_heavy_validations_of_one_principal_are_capped_while_others_are_answered(
    server_settings: Callable[..., Settings],
) -> None:
    settings = limited(
        server_settings, max_concurrent_validations=1, max_queued_validations=0, analysis_timeout_ms=60_000
    )
    async with CodeModeService(settings) as svc:
        await svc.use_analysis_processes()  # as `sqlmode serve --transport http` does
        async with (
            running_http(svc) as url,
            http_client(url) as abuser,
            http_client(url, TOKENS["bob"]) as victim,
        ):
            heavy = [
                asyncio.create_task(abuser.call_tool("validate_code", {"code": HEAVY_SQL})) for _ in range(6)
            ]
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            schema = await victim.call_tool("describe_schema", {})
            victim_ms = (time.perf_counter() - t0) * 1000
            easy = await victim.call_tool("validate_code", {"code": EASY_SQL})
            blocked = await victim.call_tool("validate_code", {"code": "SELECT ssn FROM customers"})
            results = await asyncio.gather(*heavy)
    refused = [r for r in results if r.is_error and block_text(r.content[0]).startswith("RATE_LIMITED:")]
    assert len(refused) == 5  # six at once, one in flight at most, none waiting
    assert "orders" in block_text(schema.content[0])
    # The worker processes decide as the service's own analyzer does.
    assert easy.structured_content is not None and easy.structured_content["is_valid"] is True
    assert blocked.structured_content is not None and blocked.structured_content["is_valid"] is False
    assert all(  # refused by the analysis itself (too complex, too deep, or too long to analyze)
        r.structured_content is not None
        and r.structured_content["violations"][0]["code"]
        in ("TOO_COMPLEX", "QUERY_TOO_LARGE", "ANALYSIS_TIMEOUT")
        for r in results
        if r not in refused
    )
    print(f"describe_schema while a heavy analysis ran: {victim_ms:.0f} ms")


async def test_sessionless_clients_are_not_counted_as_sessions(
    server_settings: Callable[..., Settings],
) -> None:
    settings = limited(server_settings, max_sessions_per_credential=1, max_concurrent_validations=8)
    async with CodeModeService(settings) as svc, running_http(svc) as url:
        async with http_client(url) as a, http_client(url) as b, http_client(url) as c:
            assert a.protocol_version == "2026-07-28"  # no MCP session: the quota does not apply
            results = await asyncio.gather(*(x.call_tool("describe_schema", {}) for x in (a, b, c, a, b, c)))
        assert not any(r.is_error for r in results)
        async with httpx2.AsyncClient() as h:  # a legacy session still counts
            assert (await h.post(url, json=INIT, headers=auth("ana"))).status_code == 200
            assert (await h.post(url, json=INIT, headers=auth("ana"))).status_code == 429
