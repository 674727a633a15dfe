"""`sqlmode serve` as a real process: stdio through the SDK's stdio client, Streamable HTTP on 127.0.0.1.

Logs are JSON lines on stderr; under stdio, stdout carries the protocol and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.server.conftest import EASY_SQL, SQLMODE, TOKENS, http_client, subprocess_env


async def round_trip(client: Client) -> dict[str, Any]:
    names = {t.name for t in (await client.list_tools()).tools}
    assert names == {"validate_code", "execute_code", "describe_schema"}
    v = (await client.call_tool("validate_code", {"code": EASY_SQL})).structured_content
    assert v is not None and v["is_valid"], v
    r = await client.call_tool(
        "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
    )
    assert not r.is_error, r.content
    assert r.structured_content is not None
    return r.structured_content


async def test_stdio_subprocess_round_trip(config_file: Callable[..., Path], tmp_path: Path) -> None:
    cfg = config_file()
    errlog = (tmp_path / "stderr.log").open("w")
    params = StdioServerParameters(
        command=SQLMODE[0], args=[*SQLMODE[1:], "serve", "--config", str(cfg)], env=subprocess_env()
    )
    # The SDK client's default protocol (2026-07-28); the raw-protocol test below and the Inspector
    # speak 2025-11-25 over stdio.
    async with Client(stdio_client(params, errlog=errlog)) as c:
        result = await round_trip(c)
    errlog.close()
    assert result["row_count"] == 4
    logs = [json.loads(line) for line in (tmp_path / "stderr.log").read_text().splitlines() if line.strip()]
    assert any(rec.get("event") == "serving" and rec["transport"] == "stdio" for rec in logs), logs
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["event"] for r in audit] == ["validate", "execute", "executed"]
    assert audit[0]["session"].startswith("local-") and audit[0]["session"] == audit[2]["session"]


def test_stdio_stdout_carries_only_the_protocol(config_file: Callable[..., Path]) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    proc = subprocess.run(
        [*SQLMODE, "serve", "--config", str(config_file()), "--log-level", "debug"],
        input=json.dumps(init) + "\n",
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [m.get("id") for m in out] == [1] and out[0]["result"]["serverInfo"]["name"] == "sqlmode-analytics"
    # Every stderr line is a JSON log record.
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)


async def read_listening_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        if not line:
            raise AssertionError(f"server exited with {await proc.wait()} before listening")
        rec = json.loads(line)
        if rec.get("event") == "listening":
            return rec["url"]


async def test_http_subprocess_round_trip(config_file: Callable[..., Path], tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *SQLMODE,
        "serve",
        "--config",
        str(config_file()),
        "--transport",
        "http",
        "--port",
        "0",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(),
    )
    try:
        url = await read_listening_url(proc)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        async with http_client(url, TOKENS["bob"], mode="legacy") as c:
            assert (await round_trip(c))["row_count"] == 4
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 15)
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {(r["user"], tuple(r["groups"])) for r in audit} == {("bob", ("sales",))}
    assert audit[0]["session"].startswith("mcp-")


def test_http_serving_without_a_token_secret_exits_with_a_clear_error(
    config_file: Callable[..., Path],
) -> None:
    cfg = config_file({"code_mode": {"token_secret": ""}})
    proc = subprocess.run(
        [*SQLMODE, "serve", "--config", str(cfg), "--transport", "http", "--port", "0"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    assert "token_secret" in proc.stderr and "hint:" in proc.stderr
