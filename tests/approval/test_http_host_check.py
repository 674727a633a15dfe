"""DNS rebinding on the pages ``serve --transport http`` mounts beside ``/mcp``.

The SDK's Host check guards ``/mcp`` only; the approval pages carry their own (web/hosts.py). Every
page route is sent a real HTTP request with a Host it does not answer to, carrying an approver's
valid credentials, and must be refused (421, the refusal's body and headers) with nothing changed;
the names it does answer to (loopback at the bound port, ``server.allowed_hosts``, the base URL's
host) still reach the page.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import httpx2
import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService
from sqlmode.web.hosts import REFUSAL
from tests.approval.conftest import TOKENS
from tests.approval.test_csrf import pending
from tests.server.conftest import running_http

ANA = {"authorization": f"Bearer {TOKENS['ana']}", "accept": "application/json"}
PUBLIC = "approve.example.org"  # the base URL's host (a proxy in front forwards it)
CONFIGURED = ["sqlmode.internal:*", "pages.example.net"]  # server.allowed_hosts

# Every route of web/approvals.py; {rid} is a pending request of the requester "local".
ROUTES = [
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/admin"),
    ("GET", "/approvals/{rid}"),
    ("POST", "/approvals/{rid}/approve"),
    ("POST", "/approvals/{rid}/deny"),
]
BAD_HOSTS = [
    "evil.example",  # the rebound name, default port
    "evil.example:{port}",  # the rebound name at this server's port
    "127.0.0.1:{other}",  # loopback, but not the port the request came in on
    "localhost.evil.example:{port}",
    "sqlmode.internal",  # "name:*" wants a port
    "pages.example.net:{port}",  # an exact entry is exact
    "approve.example.org:{port}",  # the base URL says the default port
    "127.0.0.1.nip.io:{port}",
]


@pytest.fixture
async def served(approval_settings: Callable[..., Settings]) -> AsyncIterator[tuple[CodeModeService, str]]:
    settings = approval_settings(server={"allowed_hosts": CONFIGURED}, base_url=f"https://{PUBLIC}/")
    async with CodeModeService(settings) as svc, running_http(svc) as url:
        yield svc, url.removesuffix("/mcp")


def _send(method: str, path: str, host: str) -> dict[str, object]:
    body = {"data": {"token": TOKENS["ana"], "next": "/admin"}} if path == "/login" else {"json": {}}
    sent = body if method == "POST" else {}
    return {"method": method, "url": path, "headers": {**ANA, "host": host}, **sent}


@pytest.mark.parametrize("bad", BAD_HOSTS)
async def test_every_page_route_refuses_an_unknown_host(
    served: tuple[CodeModeService, str], bad: str
) -> None:
    svc, base = served
    port = urlsplit(base).port
    host = bad.format(port=port, other=port + 1 if port and port < 65535 else 1)
    rid = await pending(svc)
    async with httpx2.AsyncClient(base_url=base, timeout=30) as h:
        for method, path in ROUTES:
            r = await h.request(**_send(method, path.format(rid=rid), host))  # type: ignore[arg-type]
            assert (r.status_code, r.content) == (421, REFUSAL), (method, path, r.text)
            assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
            assert "set-cookie" not in r.headers  # no login session was opened
        # Nothing was decided through the refused requests.
        rec = await svc.approvals.get(rid)
        assert rec is not None and rec["status"] == "pending" and not rec["decisions"]
        # The same requests with this server's own name reach the pages.
        shown = await h.get(f"/approvals/{rid}", headers=ANA)
        assert shown.status_code == 200 and shown.json()["id"] == rid


async def test_a_request_without_host_is_refused(served: tuple[CodeModeService, str]) -> None:
    _, base = served
    parts = urlsplit(base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        # HTTP/1.0 needs no Host header: no name at all is not a name this page answers to.
        writer.write(f"GET /admin HTTP/1.0\r\nAuthorization: {ANA['authorization']}\r\n\r\n".encode())
        await writer.drain()
        reply = await reader.read()
    finally:
        writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"421" and body == REFUSAL


async def test_mcp_keeps_the_sdk_s_own_check(served: tuple[CodeModeService, str]) -> None:
    _, base = served
    async with httpx2.AsyncClient(base_url=base, timeout=30) as h:
        r = await h.post("/mcp", json={}, headers={**ANA, "host": "evil.example"})
    assert r.status_code == 421 and r.content != REFUSAL  # the SDK answered, not the pages


@pytest.mark.parametrize(
    "good",
    [
        "127.0.0.1:{port}",
        "localhost:{port}",
        "LocalHost:{port}",  # names are case-insensitive
        "[::1]:{port}",
        "sqlmode.internal:{port}",  # "name:*": any port
        "sqlmode.internal:8443",
        "pages.example.net",
        PUBLIC,
    ],
)
async def test_the_names_the_pages_answer_to_still_work(
    served: tuple[CodeModeService, str], good: str
) -> None:
    svc, base = served
    host = good.format(port=urlsplit(base).port)
    rid = await pending(svc)
    async with httpx2.AsyncClient(base_url=base, timeout=30) as h:
        admin = await h.get("/admin", headers={**ANA, "host": host})
        assert admin.status_code == 200 and "Pending approvals" in admin.text
        decide = {"json": {"comment": "fine"}, "headers": {**ANA, "host": host}}
        ok = await h.post(f"/approvals/{rid}/approve", **decide)  # type: ignore[arg-type]
        assert ok.status_code == 200 and ok.json()["status"] == "approved"
    rec = await svc.approvals.get(rid)
    assert rec is not None and rec["status"] == "approved" and rec["decisions"][0]["who"] == "ana"
