"""The approvers' webhook: a real HTTP receiver on loopback gets one signed POST per new request."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sqlmode.config import Settings
from sqlmode.errors import ApprovalPending
from sqlmode.service import CodeModeService
from tests.approval.conftest import READ_SQL
from tests.plugins.serving import serving

SECRET = "webhook-secret-" + "e5" * 12


async def test_a_new_request_is_posted_once_signed_without_the_sql(
    approval_settings: Callable[..., Settings],
) -> None:
    got: list[tuple[bytes, dict[str, str]]] = []
    arrived = asyncio.Event()

    async def hook(request: Request) -> Response:
        got.append((await request.body(), dict(request.headers)))
        arrived.set()
        return Response(status_code=204)

    async with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as port:
        settings = approval_settings(webhook_url=f"http://127.0.0.1:{port}/hook", webhook_secret=SECRET)
        async with CodeModeService(settings) as svc:
            svc.approvals.base_url = "https://sqlmode.example"
            v = await svc.validate(READ_SQL)
            ids: list[Any] = []
            for _ in range(2):  # the retry finds the same request: no second notification
                try:
                    await svc.execute(v.normalized_code, v.approval_token or "")
                except ApprovalPending as e:
                    ids.append(e.data["id"])
            await asyncio.wait_for(arrived.wait(), 10)
            await asyncio.sleep(0.3)
    assert len(got) == 1 and ids[0] == ids[1]
    body, headers = got[0]
    doc = json.loads(body)
    assert doc["id"] == ids[0] and doc["url"] == f"https://sqlmode.example/approvals/{ids[0]}"
    assert doc["requester"] == "local" and doc["approvers"] == "approvers" and doc["code_hash"] == v.code_hash
    assert doc["tables"] == ["customers"] and "SELECT" not in body.decode() and "region" not in body.decode()
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-sqlmode-signature"] == f"sha256={expected}"
