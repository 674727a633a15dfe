"""`sqlmode serve` on stdio answers the tool list without HTTP, SQLAlchemy or sqlglot imports.

A real `sqlmode serve` process (DuckDB config) is run through a small wrapper that records
``sys.modules`` when ``tools/list`` and the first ``tools/call`` (the service open by then) have
been answered. The MCP SDK itself imports parts of Starlette, sse-starlette and uvicorn whatever the
transport, so the HTTP check is against what ``import mcp.server.mcpserver`` alone imports: the floor
any MCPServer pays. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.server.conftest import EASY_SQL, subprocess_env

# Runs `sqlmode serve` with a middleware (first in line) that writes the loaded module names to
# $MODULES_OUT.<method> when the first request of each method has been answered.
WRAPPER = """
import json, os, sys

import sqlmode.server as server

built = server.build_server


def build(*args, **kwargs):
    mcp = built(*args, **kwargs)

    async def snapshot(ctx, call_next):
        result = await call_next(ctx)
        path = os.environ["MODULES_OUT"] + "." + ctx.method.replace("/", "_")
        if not os.path.exists(path):
            with open(path, "w") as f:
                json.dump(sorted(sys.modules), f)
        return result

    mcp.middleware.insert(0, snapshot)
    return mcp


server.build_server = build
from sqlmode.cli import main

main(sys.argv[1:])
"""

# Packages only HTTP serving needs (Streamable HTTP, the approval page, JWT bearer tokens).
HTTP_ONLY = ("uvicorn", "starlette", "sse_starlette", "jwt", "httpx", "httpx2", "python_multipart")
# Modules of sqlmode that serve HTTP or the approval page only.
SQLMODE_HTTP = ("sqlmode.web.approvals", "sqlmode.web.page", "sqlmode.web.admin")
# Never on a DuckDB server: reflection reads DuckDB's catalog directly.
NEVER_ON_DUCKDB = ("sqlalchemy", "duckdb_engine", "jwt")


def _under(names: set[str], prefixes: tuple[str, ...]) -> set[str]:
    return {n for n in names if n in prefixes or n.startswith(tuple(p + "." for p in prefixes))}


def _recorded(out: Path, method: str) -> set[str]:
    return set(json.loads(Path(f"{out}.{method}").read_text()))


def _sdk_floor() -> set[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, mcp.server.mcpserver; print(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=subprocess_env(),
    )
    return set(json.loads(out.stdout))


async def test_stdio_serve_imports_nothing_http_only_nor_sqlalchemy(
    config_file: Callable[..., Path], tmp_path: Path
) -> None:
    wrapper = tmp_path / "serve_recording.py"
    wrapper.write_text(WRAPPER)
    out = tmp_path / "modules"
    env = subprocess_env() | {"MODULES_OUT": str(out)}
    params = StdioServerParameters(
        command=sys.executable, args=[str(wrapper), "serve", "--config", str(config_file())], env=env
    )
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            tools = await client.list_tools()
            v = await client.call_tool("validate_code", {"code": EASY_SQL})
    assert {t.name for t in tools.tools} == {"validate_code", "execute_code", "describe_schema"}
    assert v.structured_content is not None and v.structured_content["is_valid"], v.content
    at_list, at_call = _recorded(out, "tools_list"), _recorded(out, "tools_call")
    floor = _sdk_floor()

    # The recording is real: the SDK is loaded at the tool list, the analyzer once a call is served.
    assert "mcp.server.mcpserver" in at_list and "sqlmode.service" in at_call and "sqlglot" in at_call
    assert not _under(floor, NEVER_ON_DUCKDB)  # else the checks below could not fail
    # sqlglot (its dialects take ~80 ms to import) loads with the analyzer, after the handshake.
    assert _under(at_list, ("sqlglot",)) == set(), "sqlglot imported before the tool list was answered"
    for when, names in (("tools/list", at_list), ("the first tools/call", at_call)):
        assert _under(names - floor, HTTP_ONLY) == set(), f"HTTP-only imports beyond the SDK's by {when}"
        assert _under(names, SQLMODE_HTTP) == set(), f"sqlmode's HTTP modules imported by {when}"
        assert _under(names, NEVER_ON_DUCKDB) == set(), f"SQLAlchemy or JWT imported by {when}"
