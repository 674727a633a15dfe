"""/admin pages through every approval request the store keeps, not only the latest 200.

The index is one small record for the newest ids, sealed into a chunk every 200; a page reads the
chunks it needs. Checked over the in-memory store and a durable one shared by two replicas.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sqlmode.approval import ApprovalBook
from sqlmode.config import Settings
from sqlmode.service import CodeModeService
from sqlmode.state import open_state_store
from sqlmode.web.admin import PAGE_SIZE
from tests.approval.conftest import READ_SQL, TOKENS
from tests.server.conftest import running_http

TOTAL = 2 * PAGE_SIZE + 57  # three pages; more than one sealed index chunk of 200


async def open_requests(books: list[ApprovalBook], svc: CodeModeService, n: int) -> list[str]:
    """``n`` requests opened in turn by ``books`` (replicas); their ids in creation order."""
    analysis = await svc.analyze(READ_SQL)
    who = svc.principal("local", "s1", None)
    ids = []
    for i in range(n):
        rec, created = await books[i % len(books)].open(
            nonce=secrets.token_hex(8),
            nonce_expires_at=time.time() + 600,
            principal=who,
            code_hash=f"h{i}",
            schema_hash="s",
            policy_hash="p",
            analysis=analysis,
            reasons=["test"],
        )
        assert created
        ids.append(rec["id"])
    return ids


def listed(page_html: str) -> list[str]:
    return re.findall(r"href='/approvals/([^']+)'", page_html)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_admin_pages_reach_every_request_newest_first(
    approval_settings: Callable[..., Settings], tmp_path: Path, store: str
) -> None:
    state: dict[str, Any] = {} if store == "memory" else {"url": f"sqlite:///{tmp_path / 'state.db'}"}
    settings = approval_settings(state=state)
    async with CodeModeService(settings) as svc:
        books = [svc.approvals]
        # A second replica, with its own connection, writing to the same index.
        other = await open_state_store(settings) if store == "sqlite" else None
        try:
            if other is not None:
                books.append(ApprovalBook(settings.approval, other))
            ids = await open_requests(books, svc, TOTAL)
        finally:
            if other is not None:
                await other.close()
        await svc.decide_approval(ids[3], svc.principal("ana", "web", ["approvers"]), "deny", "old one")
        async with running_http(svc) as url, httpx2.AsyncClient(timeout=60) as h:
            base = url.removesuffix("/mcp")
            ana = {"authorization": f"Bearer {TOKENS['ana']}"}
            newest_first = list(reversed(ids))
            for page in range(3):
                r = await h.get(f"{base}/admin", params={"page": page}, headers=ana)
                assert r.status_code == 200, r.text
                on_page = listed(r.text)
                assert len(on_page) == (PAGE_SIZE if page < 2 else TOTAL - 2 * PAGE_SIZE)
                assert ("id='older'" in r.text) == (page < 2)
                assert ("id='newer'" in r.text) == (page > 0)
                # Positions page*PAGE_SIZE onwards, across index chunks (pending listed before decided).
                assert sorted(on_page) == sorted(newest_first[page * PAGE_SIZE : (page + 1) * PAGE_SIZE])
            last = await h.get(f"{base}/admin", params={"page": 2}, headers=ana)
            assert "ana: deny" in last.text.split("<h2>Decided approvals</h2>")[1]
            beyond = await h.get(f"{base}/admin", params={"page": 3}, headers=ana)
            assert beyond.status_code == 200 and listed(beyond.text) == []
            for bad in ["-1", "x", "1.5", "9999999"]:
                r = await h.get(
                    f"{base}/admin", params={"page": bad}, headers={**ana, "accept": "application/json"}
                )
                assert r.status_code == 400 and r.json()["error"]["code"] == "BAD_INPUT"
