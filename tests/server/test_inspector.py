"""The external MCP Inspector CLI (npm @modelcontextprotocol/inspector) against `sqlmode serve`.

The Inspector is installed with npm into the git-ignored ``.ci-node/`` folder on first use. Without
npm the test fails with a clear message: it is never skipped.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx2
import pytest

from tests.server.conftest import EASY_SQL, SQLMODE, subprocess_env

INSPECTOR_VERSION = "0.15.0"
PREFIX = Path(__file__).resolve().parents[2] / ".ci-node"
PACKAGE = PREFIX / "node_modules" / "@modelcontextprotocol" / "inspector" / "package.json"
BIN = PREFIX / "node_modules" / ".bin" / "mcp-inspector"


@pytest.fixture(scope="session")
def inspector() -> Path:
    """The Inspector's CLI entry point, installed with npm when missing or at another version."""
    installed = json.loads(PACKAGE.read_text()).get("version") if PACKAGE.exists() else None
    if installed != INSPECTOR_VERSION or not BIN.exists():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            pytest.fail(
                "The MCP Inspector test needs Node.js 18+ with npm on PATH (`apt-get install nodejs npm`); "
                f"it installs @modelcontextprotocol/inspector@{INSPECTOR_VERSION} into {PREFIX}.",
                pytrace=False,
            )
        PREFIX.mkdir(exist_ok=True)
        proc = subprocess.run(
            [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", "--no-save",
             f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}"],
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
        if proc.returncode != 0 or not BIN.exists():
            pytest.fail(f"npm could not install the MCP Inspector:\n{proc.stderr[-2000:]}", pytrace=False)
    return BIN


def start_inspector(inspector: Path, config: Path, *args: str) -> subprocess.Popen[str]:
    # The config goes through the environment: the Inspector owns a --config option of its own.
    return subprocess.Popen(
        [str(inspector), "--cli", "-e", f"SQLMODE_CONFIG={config}", *SQLMODE, "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


def answer(proc: subprocess.Popen[str]) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out)


def test_inspector_lists_the_tools_and_validates(inspector: Path, config_file: Callable[..., Path]) -> None:
    config = config_file()
    # Two independent Inspector runs (each starts its own server), side by side.
    listing = start_inspector(inspector, config, "--method", "tools/list")
    call = start_inspector(
        inspector,
        config,
        "--method",
        "tools/call",
        "--tool-name",
        "validate_code",
        "--tool-arg",
        f"code={EASY_SQL}",
    )
    by_name = {t["name"]: t for t in answer(listing)["tools"]}
    assert set(by_name) == {"validate_code", "execute_code", "describe_schema"}
    assert by_name["validate_code"]["annotations"]["readOnlyHint"] is True
    assert "approval_token" in by_name["execute_code"]["inputSchema"]["required"]

    result = answer(call)
    assert result["isError"] is False
    sc = result["structuredContent"]
    assert sc["is_valid"] is True and sc["approval_token"].startswith("sqlmode.")
    assert "LIMIT" in sc["normalized_code"] and sc["tables"] == ["customers"]


# The no-elicitation approval path (issue 17) needs a client that can send a bearer token and speak
# the sessionless 2026-07-28 protocol: approval tokens are bound to the session, and only there is
# the session a fingerprint of the credential that survives from one Inspector run to the next.
# Inspector 0.15.0 has neither (no --header, SDK 1.x speaks 2025-11-25 with a fresh Mcp-Session-Id
# per run), so this path uses the 2.x CLI with --header and --protocol-era modern.
MODERN_INSPECTOR_VERSION = "2.12.0"
MODERN_PREFIX = PREFIX / f"inspector-{MODERN_INSPECTOR_VERSION}"


def install(version: str, prefix: Path) -> Path:
    """The Inspector's CLI entry point under ``prefix``, installed with npm when missing or stale."""
    package = prefix / "node_modules" / "@modelcontextprotocol" / "inspector" / "package.json"
    binary = prefix / "node_modules" / ".bin" / "mcp-inspector"
    installed = json.loads(package.read_text()).get("version") if package.exists() else None
    if installed != version or not binary.exists():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            pytest.fail(
                "The MCP Inspector test needs Node.js with npm on PATH (`apt-get install nodejs npm`); "
                f"it installs @modelcontextprotocol/inspector@{version} into {prefix}.",
                pytrace=False,
            )
        prefix.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save",
             f"@modelcontextprotocol/inspector@{version}"],
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
        if proc.returncode != 0 or not binary.exists():
            pytest.fail(f"npm could not install the MCP Inspector:\n{proc.stderr[-2000:]}", pytrace=False)
    return binary


@pytest.fixture(scope="session")
def modern_inspector() -> Path:
    return install(MODERN_INSPECTOR_VERSION, MODERN_PREFIX)


def listening_url(server: subprocess.Popen[bytes], log: Path) -> str:
    """The /mcp URL `sqlmode serve` logs once it listens (port 0: the OS picked it)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("{") and json.loads(line).get("event") == "listening":
                return str(json.loads(line)["url"])
        assert server.poll() is None, f"server exited with {server.returncode}:\n{log.read_text()[-2000:]}"
        time.sleep(0.1)
    raise AssertionError(f"server not listening after 60 s:\n{log.read_text()[-2000:]}")


def inspector_call(inspector: Path, url: str, token: str, tool: str, **args: str) -> dict:
    """One Inspector CLI run (its own connection) calling ``tool`` over HTTP as the token's user."""
    proc = subprocess.run(
        [str(inspector), "--cli", url, "--transport", "http", "--protocol-era", "modern",
         "--header", f"Authorization: Bearer {token}",
         "--method", "tools/call", "--tool-name", tool,
         *[a for k, v in args.items() for a in ("--tool-arg", f"{k}={v}")]],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )  # fmt: skip
    assert proc.returncode in (0, 5), proc.stderr[-2000:]  # 5: the tool answered isError (still printed)
    result = json.loads(proc.stdout)
    assert result["isError"] is (proc.returncode == 5), proc.stderr[-2000:]
    return result


def test_inspector_cli_waits_for_a_human_approval_then_runs_once(
    modern_inspector: Path, config_file: Callable[..., Path], sample_duckdb_path: Path, tmp_path: Path
) -> None:
    """Issue 17's no-elicitation path with a real client: each step is a separate Inspector run."""
    from tests.approval.conftest import AUTH as APPROVAL_AUTH
    from tests.approval.conftest import READ_SQL, TOKENS

    cfg = config_file({"auth": APPROVAL_AUTH, "approval": {"actions": ["read"], "wait_seconds": 0.3}})
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        server = subprocess.Popen(
            [*SQLMODE, "serve", "--config", str(cfg), "--transport", "http", "--port", "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=subprocess_env(),
        )  # fmt: skip
    try:
        url = listening_url(server, log)
        base = url.removesuffix("/mcp")
        # "local" asks; validation says approval is needed and by whom.
        v = inspector_call(modern_inspector, url, TOKENS["local"], "validate_code", code=READ_SQL)
        assert v["isError"] is False, v
        sc = v["structuredContent"]
        assert sc["approval"] == {"approvers": "approvers", "required": 1, "expires_seconds": 900}
        run = {"code": sc["normalized_code"], "approval_token": sc["approval_token"]}

        first = inspector_call(modern_inspector, url, TOKENS["local"], "execute_code", **run)
        assert first["isError"] is False, first
        req = first["structuredContent"]["approval_required"]
        assert first["structuredContent"]["rows"] == [] and first["structuredContent"]["row_count"] == 0
        assert req["approvers"] == "approvers" and req["url"] == f"{base}/approvals/{req['id']}"

        # The token stays bound to the requester's credential: another user cannot spend it.
        stolen = inspector_call(modern_inspector, url, TOKENS["bob"], "execute_code", **run)
        assert stolen["isError"] is True and "TOKEN_USER_MISMATCH" in stolen["content"][0]["text"]

        # The approver decides over HTTP with their own bearer token (no cookie: no CSRF token).
        resp = httpx2.post(
            f"{base}/approvals/{req['id']}/approve",
            json={"comment": "ok"},
            headers={"authorization": f"Bearer {TOKENS['ana']}", "accept": "application/json"},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "approved"

        ran = inspector_call(modern_inspector, url, TOKENS["local"], "execute_code", **run)
        assert ran["isError"] is False, ran
        assert ran["structuredContent"]["approval_required"] is None
        with duckdb.connect(str(sample_duckdb_path), read_only=True) as con:
            expected = [list(r) for r in con.execute(READ_SQL).fetchall()]
        got = ran["structuredContent"]["rows"]
        assert [[r[c] for c in ("region", "n")] if isinstance(r, dict) else r for r in got] == expected

        replay = inspector_call(modern_inspector, url, TOKENS["local"], "execute_code", **run)
        assert replay["isError"] is True and "APPROVAL_USED" in replay["content"][0]["text"]
        audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines() if x.strip()]
        runs = [r for r in audit if r.get("decision") == "run"]
        assert [r["approval"] for r in runs] == [f"human approval {req['id']} by ana"]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(15)
