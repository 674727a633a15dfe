"""Fixtures for human approval: a service whose queries wait for approvers, its HTTP pages on loopback.

Principals: the in-process MCP client is the default user ``local`` (the requester); ``ana`` and
``bob`` approve; ``carol`` is not an approver; ``LOCAL`` is a bearer token for the requester.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService
from tests.plugins.sample import deep_merge
from tests.server.conftest import running_http

TOKENS = {
    "ana": "tok-ana-" + "a1" * 12,
    "bob": "tok-bob-" + "b2" * 12,
    "carol": "tok-carol-" + "c3" * 12,
    "local": "tok-local-" + "d4" * 12,
}
AUTH = {
    "tokens": {
        TOKENS["ana"]: {"user": "ana", "groups": ["approvers"]},
        TOKENS["bob"]: {"user": "bob", "groups": ["approvers", "sales"]},
        TOKENS["carol"]: {"user": "carol", "groups": ["analysts"]},
        TOKENS["local"]: {"user": "local", "groups": ["approvers"]},
    }
}
TABLES = ["customers", "products", "orders", "order_items", "support_tickets", "contacts"]
READ_SQL = "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region"
WRITE_SQL = "UPDATE orders SET status = 'void' WHERE id = 3"


@pytest.fixture
def writable_db(sample_duckdb_path: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "writable.duckdb"
    shutil.copy(sample_duckdb_path, copy)
    return copy


@pytest.fixture
def approval_settings(make_settings: Callable[..., Settings], writable_db: Path) -> Callable[..., Settings]:
    """Reads and writes wait for ``required`` approvers; writes are allowed on a copy of the sample."""

    def make(
        state: dict[str, Any] | None = None,
        db: Path | None = None,
        server: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
        **approval: Any,
    ) -> Settings:
        ops = ["read", "write"]
        return make_settings(
            {
                "state": state or {},
                "server": server or {},
                "auth": deep_merge(AUTH, auth or {}),
                "database": {
                    "url": f"duckdb:///{db or writable_db}",
                    "tables": [{"name": t, "operations": ops} for t in TABLES],
                },
                "code_mode": {
                    "allow_writes": True,
                    "max_write_rows": 5,
                    "cedar_policies": {"read_only_mode": False},
                },
                "approval": deep_merge({"actions": ["read", "write"], "wait_seconds": 0.3}, approval),
            }
        )

    return make


@pytest.fixture
async def service(approval_settings: Callable[..., Settings]) -> AsyncIterator[CodeModeService]:
    async with CodeModeService(approval_settings()) as svc:
        yield svc


@pytest.fixture
async def pages(service: CodeModeService) -> AsyncIterator[str]:
    """The HTTP server (MCP and approval pages) on a loopback port; yields its base URL."""
    async with running_http(service) as url:
        base = url.removesuffix("/mcp")
        service.approvals.base_url = base
        yield base


async def decide(base: str, rid: str, verdict: str, who: str, comment: str = "") -> httpx2.Response:
    """An approver's decision through the HTTP API with their bearer token."""
    async with httpx2.AsyncClient(timeout=30) as h:
        return await h.post(
            f"{base}/approvals/{rid}/{verdict}",
            json={"comment": comment},
            headers={"authorization": f"Bearer {TOKENS[who]}", "accept": "application/json"},
        )


# Debian's headless Chromium: `.ci/run` installs it (apt-get install chromium-headless-shell), and
# playwright never downloads one (no internet here but the package registries).
_CHROMIUM = Path("/usr/lib/chromium/chromium-headless-shell")
REQUIRE_BROWSER = "SQLMODE_REQUIRE_BROWSER"


@pytest.fixture
def chromium() -> str:
    """The browser's path. Missing: a failure where the browser is required (``.ci/run`` sets
    SQLMODE_REQUIRE_BROWSER=1), a skip that says how to install it elsewhere (a fresh machine with
    only Python and pip runs the rest of the suite)."""
    import os

    found = str(_CHROMIUM) if _CHROMIUM.exists() else shutil.which("chromium-headless-shell")
    if found:
        return found
    why = "chromium-headless-shell is not installed (apt-get install chromium-headless-shell)"
    if os.environ.get(REQUIRE_BROWSER):
        pytest.fail(f"{why}; {REQUIRE_BROWSER} is set, so the browser tests must run", pytrace=False)
    pytest.skip(f"{why}; .ci/run installs it and runs this test")
