"""A stdio server serves its own approval page on loopback: `sqlmode serve` as a real process.

The MCP client speaks raw JSON-RPC lines on the process's stdin/stdout (so every byte of stdout is
checked to be a protocol frame); approvers decide over HTTP on the page whose address the tool
result names. The page shares the process's state store, so the decision releases the same token.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import ElicitRequestURLParams, ElicitResult

from sqlmode.config import Settings
from sqlmode.service import CodeModeService
from sqlmode.web.page import page_needed, stdio_page
from tests.approval.conftest import AUTH, READ_SQL, TOKENS, decide
from tests.narrow import block_text
from tests.plugins.sample import TEST_AUDIT_KEY, TEST_TOKEN_SECRET, deep_merge
from tests.server.conftest import SQLMODE, subprocess_env, toml_dumps

PROTOCOL = "2025-11-25"  # a client without elicitation: the approval_required path


@pytest.fixture
def stdio_config(
    sample_config_data: dict[str, Any], sample_duckdb_path: Path, tmp_path: Path
) -> Callable[..., Path]:
    """A config file for `sqlmode serve` over its own copy of the sample; reads wait for approval."""
    db = shutil.copy(sample_duckdb_path, tmp_path / "sample.duckdb")

    def write(overrides: dict[str, Any] | None = None, *, auth: bool = True) -> Path:
        data = deep_merge(
            sample_config_data,
            {
                "database": {"url": f"duckdb:///{db}", "build_sample": False},
                "code_mode": {"token_secret": TEST_TOKEN_SECRET},
                "audit": {"path": str(tmp_path / "audit.jsonl"), "key": TEST_AUDIT_KEY},
                "auth": AUTH if auth else {},
                "approval": {"actions": ["read"], "wait_seconds": 0.5},
            },
        )
        path = tmp_path / "sqlmode.toml"
        path.write_text(toml_dumps(deep_merge(data, overrides or {})) + "\n")
        return path

    return write


class StdioPeer:
    """One MCP client session as JSON-RPC lines; keeps every stdout line it read."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.stdout_lines: list[bytes] = []
        self._next = 0

    async def _send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        await self.proc.stdin.drain()

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        rid = self._next
        await self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
            assert line, "the server closed stdout"
            self.stdout_lines.append(line)
            msg = json.loads(line)
            if msg.get("id") == rid:
                assert "error" not in msg, msg
                result: dict[str, Any] = msg["result"]
                return result

    async def initialize(self) -> None:
        await self.request(
            "initialize",
            {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        )
        await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return await self.request("tools/call", {"name": name, "arguments": arguments})


@asynccontextmanager
async def stdio_server(config: Path) -> AsyncIterator[StdioPeer]:
    proc = await asyncio.create_subprocess_exec(
        *SQLMODE,
        "serve",
        "--config",
        str(config),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    peer = StdioPeer(proc)
    try:
        await peer.initialize()
        yield peer
    finally:
        if proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()  # the client goes away: the server (and its page) must stop
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                raise


def expected_rows(db: Path) -> list[list[Any]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [list(r) for r in con.execute(READ_SQL).fetchall()]


def _text(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result["content"])


async def test_stdio_approval_on_the_loopback_page_releases_the_query_once(
    stdio_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = stdio_config()
    want = expected_rows(tmp_path / "sample.duckdb")
    assert want
    async with stdio_server(config) as peer:
        v = (await peer.tool("validate_code", {"code": READ_SQL}))["structuredContent"]
        assert v["is_valid"] and v["approval"]["approvers"] == "approvers"
        args = {"code": v["normalized_code"], "approval_token": v["approval_token"]}
        first = await peer.tool("execute_code", args)
        assert not first.get("isError") and first["structuredContent"]["rows"] == []
        ticket = first["structuredContent"]["approval_required"]
        base, rid = ticket["url"].split("/approvals/")
        assert base.startswith("http://127.0.0.1:") and base != "http://127.0.0.1:0"
        assert ticket["url"] in _text(first)

        async with httpx2.AsyncClient(base_url=base, timeout=30) as h:

            def bearer(who: str) -> dict[str, str]:
                return {"authorization": f"Bearer {TOKENS[who]}", "accept": "application/json"}

            shown = await h.get(f"/approvals/{rid}", headers=bearer("ana"))
            assert shown.status_code == 200 and shown.headers["x-frame-options"] == "DENY"
            assert shown.json()["code_hash"] == v["code_hash"] and shown.json()["requester"] == "local"
            assert shown.json()["normalized_code"] == v["normalized_code"]
            # The stdio client is the requester ("local"): its own approver token cannot approve.
            self_ = await h.post(f"/approvals/{rid}/approve", json={}, headers=bearer("local"))
            assert self_.status_code == 403 and self_.json()["error"]["code"] == "APPROVAL_SELF"
            outsider = await h.post(f"/approvals/{rid}/approve", json={}, headers=bearer("carol"))
            assert outsider.status_code == 403
            anonymous = await h.post(f"/approvals/{rid}/approve", json={})
            assert anonymous.status_code == 401
            # A page on a rebound name (DNS rebinding) is not this page.
            rebound = await h.get(f"/approvals/{rid}", headers={**bearer("ana"), "host": "evil.example"})
            assert rebound.status_code == 421
            # Still nothing ran: the retry answers "pending" again.
            again = await peer.tool("execute_code", args)
            assert again["structuredContent"]["approval_required"]["id"] == rid

            ok = await h.post(f"/approvals/{rid}/approve", json={"comment": "fine"}, headers=bearer("ana"))
            assert ok.status_code == 200 and ok.json()["status"] == "approved"

            ran = await peer.tool("execute_code", args)
            assert not ran.get("isError"), ran
            assert ran["structuredContent"]["approval_required"] is None
            assert ran["structuredContent"]["rows"] == want
            replay = await peer.tool("execute_code", args)
            assert replay.get("isError") and _text(replay).startswith("APPROVAL_USED"), replay
            used = await h.get(f"/approvals/{rid}", headers=bearer("ana"))
            assert used.json()["status"] == "used"
            assert [d["who"] for d in used.json()["decisions"]] == ["ana"]

    proc = peer.proc
    assert proc.returncode == 0
    # stdout carried the protocol and nothing else; the page is gone with the process.
    assert peer.stdout_lines and all(json.loads(x)["jsonrpc"] == "2.0" for x in peer.stdout_lines)
    assert proc.stdout is not None and await proc.stdout.read() == b""
    assert proc.stderr is not None
    logs = [json.loads(x) for x in (await proc.stderr.read()).splitlines() if x.strip()]
    assert {"url": base, "event": "listening", "transport": "approval-page"}.items() <= next(
        r for r in logs if r.get("transport") == "approval-page"
    ).items()
    with pytest.raises(httpx2.ConnectError):
        async with httpx2.AsyncClient(timeout=5) as h:
            await h.get(f"{base}/approvals/{rid}")
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    events = [r["event"] for r in audit]
    assert "approval_decision" in events and events.count("executed") == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_url_elicitation_over_stdio_opens_the_loopback_page_and_the_call_runs_once_approved(
    stdio_config: Callable[..., Path], tmp_path: Path, mode: str
) -> None:
    """The SDK's own stdio client: 2026-07-28 (InputRequiredResult) and legacy (elicit_url)."""
    want = expected_rows(tmp_path / "sample.duckdb")
    asked: list[str] = []
    decisions: list[asyncio.Task[Any]] = []

    async def user(context: Any, params: Any) -> ElicitResult:
        # The user opens the link; an approver decides there a moment later.
        assert isinstance(params, ElicitRequestURLParams), params
        asked.append(params.url)
        base, rid = params.url.split("/approvals/")

        async def approve() -> None:
            await asyncio.sleep(0.5)
            r = await decide(base, rid, "approve", "bob")
            assert r.status_code == 200, r.text

        decisions.append(asyncio.create_task(approve()))
        return ElicitResult(action="accept")

    params = StdioServerParameters(
        command=SQLMODE[0],
        args=[*SQLMODE[1:], "serve", "--config", str(stdio_config({"approval": {"wait_seconds": 2}}))],
        env=subprocess_env(),
    )
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode, elicitation_callback=user) as c:
            v = (await c.call_tool("validate_code", {"code": READ_SQL})).structured_content
            assert v is not None and v["is_valid"]
            args = {"code": v["normalized_code"], "approval_token": v["approval_token"]}
            ran = await c.call_tool("execute_code", args)
            assert not ran.is_error, ran.content
            assert ran.structured_content is not None and ran.structured_content["rows"] == want
            await asyncio.gather(*decisions)
            replay = await c.call_tool("execute_code", args)
            assert replay.is_error and "APPROVAL_USED" in block_text(replay.content[0])
    assert len(asked) == 1 and asked[0].startswith("http://127.0.0.1:")
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    runs = [r for r in audit if r.get("decision") == "run"]
    assert len(runs) == 1 and runs[0]["approval"].endswith(" by bob")


def run_serve(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SQLMODE, "serve", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )


def assert_clean_exit(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # never a byte on the protocol channel
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_a_page_port_in_use_is_a_clear_start_up_error(stdio_config: Callable[..., Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_serve(stdio_config({"approval": {"page_port": port}}))
    assert_clean_exit(
        proc, f"error: [approval.page_port] cannot serve the approval page on 127.0.0.1:{port}", "hint:"
    )


@pytest.mark.parametrize(
    "overrides, needles",
    [
        ({"approval": {"page_host": "0.0.0.0"}}, ["'0.0.0.0', not a loopback address", "page_allow_remote"]),
        ({"approval": {"page_host": "192.0.2.7"}}, ["'192.0.2.7', not a loopback address"]),
        (
            {"approval": {"page_host": "0.0.0.0", "page_allow_remote": True}},
            ["listens on every interface", "approval.base_url"],
        ),
        ({}, ["approvers log in to the approval page with [auth] credentials", "hint:"]),
    ],
    ids=["wildcard", "remote-address", "wildcard-without-base-url", "no-credentials"],
)
def test_an_unsafe_or_unusable_page_refuses_to_start(
    stdio_config: Callable[..., Path], overrides: dict[str, Any], needles: list[str]
) -> None:
    assert_clean_exit(run_serve(stdio_config(overrides, auth=bool(overrides))), *needles)


async def test_base_url_overrides_the_links_and_a_fixed_port_is_used(
    make_settings: Callable[..., Settings],
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(
        {
            "auth": AUTH,
            "approval": {"actions": ["read"], "page_port": port, "base_url": "https://approve.example.org/"},
        }
    )
    async with CodeModeService(settings) as svc, stdio_page(svc) as url:
        assert url == f"http://127.0.0.1:{port}"
        assert svc.approvals.url_of("abc") == "https://approve.example.org/approvals/abc"
        async with httpx2.AsyncClient(timeout=30) as h:
            ana = {"authorization": f"Bearer {TOKENS['ana']}"}
            r = await h.get(f"{url}/admin", headers=ana)
            assert r.status_code == 200 and "Pending approvals" in r.text
            # The public name answers too (a proxy in front forwards its Host); other names do not.
            r = await h.get(f"{url}/admin", headers={**ana, "host": "approve.example.org"})
            assert r.status_code == 200 and "Pending approvals" in r.text
            r = await h.get(f"{url}/admin", headers={**ana, "host": "other.example.org"})
            assert r.status_code == 421 and r.headers["x-frame-options"] == "DENY"


async def test_the_page_runs_only_where_a_query_can_wait_for_approval(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with CodeModeService(make_settings()) as svc:
        assert not page_needed(svc)
    policy = tmp_path / "approval.cedar"
    policy.write_text(
        '@id("orders-need-approval")\n@approval("audited")\n'
        'permit(principal, action == Action::"read", resource in Table::"orders");\n'
    )
    async with CodeModeService(make_settings({"policy": {"paths": [str(policy)]}})) as svc:
        assert page_needed(svc)
