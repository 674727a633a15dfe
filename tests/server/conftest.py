"""Fixtures for the MCP server tests: an opened service, in-process and HTTP clients, config files.

- ``service`` (function): a CodeModeService over the sample DuckDB, opened; ``make_service(settings)``
  opens one for other settings.
- ``client``: an in-process ``mcp.Client`` over ``build_server(service)``.
- ``running_http(service)``: async context manager serving the Streamable HTTP app on 127.0.0.1 at an
  ephemeral port; yields the endpoint URL.
- ``http_client(url, token=..., mode=...)``: an ``mcp.Client`` over HTTP with a bearer token.
- ``config_file(overrides)``: the sample config (test secret, tokens for ana and bob, audit log in
  tmp_path) written as TOML, for servers run as subprocesses (``sqlmode serve``, the Inspector).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from sqlmode.config import Settings
from sqlmode.server import build_server, http_app
from sqlmode.service import CodeModeService
from tests.plugins.sample import TEST_AUDIT_KEY, TEST_TOKEN_SECRET, deep_merge
from tests.plugins.serving import serving

TOKENS = {"ana": "tok-ana-" + "a1" * 12, "bob": "tok-bob-" + "b2" * 12}
AUTH = {
    "tokens": {
        TOKENS["ana"]: {"user": "ana", "groups": ["analysts"]},
        TOKENS["bob"]: {"user": "bob", "groups": ["sales"]},
    }
}
EASY_SQL = "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region"
# Runs for many seconds on the sample (6.5e9 pairs): for progress, timeouts and cancellation.
SLOW_SQL = (
    "SELECT count(*) AS n FROM order_items a CROSS JOIN order_items b WHERE a.unit_price > b.unit_price"
)


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """``make_settings`` with HTTP credentials for ana and bob."""

    def make(overrides: dict[str, Any] | None = None) -> Settings:
        return make_settings(deep_merge({"auth": AUTH}, overrides or {}))

    return make


@pytest.fixture(scope="module")
async def shared_service(
    sample_config_data: dict[str, Any], sample_duckdb_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CodeModeService]:
    """One opened service for a whole module of tests that do not change it (faster than ``service``).

    It reads its own copy of the sample: one process holds one DuckDB instance per file, and
    function-scoped services open and close theirs on the session's file meanwhile.
    """
    import shutil

    from sqlmode.config import sample_config_path, settings_from_dict

    folder = tmp_path_factory.mktemp("shared")
    db = shutil.copy(sample_duckdb_path, folder / "sample.duckdb")
    data = deep_merge(
        sample_config_data,
        {
            "database": {"url": f"duckdb:///{db}", "build_sample": False},
            "code_mode": {"token_secret": TEST_TOKEN_SECRET},
            "audit": {"path": str(folder / "audit.jsonl"), "key": TEST_AUDIT_KEY},
            "auth": AUTH,
        },
    )
    async with CodeModeService(settings_from_dict(data, source=str(sample_config_path()))) as svc:
        yield svc


@pytest.fixture
async def service(server_settings: Callable[..., Settings]) -> AsyncIterator[CodeModeService]:
    async with CodeModeService(server_settings()) as svc:
        yield svc


@asynccontextmanager
async def task_scoped(cm: AbstractAsyncContextManager[Any]) -> AsyncIterator[Any]:
    """Enter and exit ``cm`` in one dedicated task.

    pytest-asyncio sets an async fixture up and tears it down in different tasks, while the MCP
    client's anyio task group must be exited by the task that entered it.
    """
    import asyncio

    ready, done = asyncio.Event(), asyncio.Event()
    box: dict[str, Any] = {}

    async def hold() -> None:
        async with cm as value:
            box["value"] = value
            ready.set()
            await done.wait()

    task = asyncio.create_task(hold())
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        waiter.cancel()
        task.result()  # raises what entering failed with
    try:
        yield box["value"]
    finally:
        done.set()
        await task


@pytest.fixture
async def client(service: CodeModeService) -> AsyncIterator[Client]:
    async with task_scoped(Client(build_server(service))) as c:
        yield c


@asynccontextmanager
async def running_http(service: CodeModeService, host: str = "127.0.0.1", **app: Any) -> AsyncIterator[str]:
    """Serve ``service`` over Streamable HTTP on an ephemeral loopback port; yield the /mcp URL."""
    async with serving(http_app(service, host=host, port=0, **app), host, lifespan="on") as port:
        yield f"http://{host}:{port}/mcp"


@asynccontextmanager
async def http_client(
    url: str, token: str | None = TOKENS["ana"], mode: str = "auto", **kw: Any
) -> AsyncIterator[Client]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as h,
        Client(streamable_http_client(url, http_client=h), mode=mode, **kw) as c,
    ):
        yield c


# -- config files for subprocess servers ----------------------------------------------------------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def toml_dumps(data: dict[str, Any], prefix: str = "") -> str:
    """Just enough TOML for configs: scalars, lists, tables, arrays of tables."""
    out = []
    nested: list[tuple[str, list[dict[str, Any]], bool]] = []  # (key, its tables, is an array)
    for k, v in data.items():
        if isinstance(v, dict) and v:
            nested.append((k, [v], False))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            nested.append((k, v, True))
        else:
            out.append(f"{_key(k)} = {_value(v)}")
    for k, tables, is_array in nested:
        name = f"{prefix}{_key(k)}"
        for item in tables:
            out.append(f"\n[[{name}]]" if is_array else f"\n[{name}]")
            out.append(toml_dumps(item, name + "."))
    return "\n".join(out)


@pytest.fixture
def config_file(
    sample_config_data: dict[str, Any], sample_duckdb_path: Path, tmp_path: Path
) -> Callable[..., Path]:
    def write(overrides: dict[str, Any] | None = None, name: str = "sqlmode.toml") -> Path:
        data = deep_merge(
            sample_config_data,
            {
                "database": {"url": f"duckdb:///{sample_duckdb_path}", "build_sample": False},
                "code_mode": {"token_secret": TEST_TOKEN_SECRET},
                "audit": {"path": str(tmp_path / "audit.jsonl"), "key": TEST_AUDIT_KEY},
                "auth": AUTH,
            },
        )
        path = tmp_path / name
        path.write_text(toml_dumps(deep_merge(data, overrides or {})) + "\n")
        return path

    return write


def subprocess_env() -> dict[str, str]:
    """The environment without SQLMODE_* overrides, so only the written config counts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQLMODE_", "CODE_MODE_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


SQLMODE = [sys.executable, "-m", "sqlmode"]
