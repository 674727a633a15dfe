"""The external MCP Inspector CLI (npm @modelcontextprotocol/inspector) against `sqlmode serve`.

The Inspector is installed with npm into the git-ignored ``.ci-node/`` folder on first use. Without
npm the test fails with a clear message: it is never skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

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
