"""The approval page in a real headless browser (Debian's chromium-headless-shell, driven by playwright).

Log in with an approver's token, read the SQL and its hash, approve; the execute_code call that was
waiting meanwhile returns the rows. Plus the page's cookie and CSRF rules over plain HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx2
from playwright.async_api import async_playwright

from sqlmode.config import Settings
from tests.approval.conftest import READ_SQL, TOKENS
from tests.approval.test_no_elicitation import execute, opened, validated

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


async def test_log_in_see_the_sql_and_its_hash_approve_and_the_waiting_call_returns_rows(
    approval_settings: Callable[..., Settings], chromium: str
) -> None:
    async with opened(approval_settings(wait_seconds=60)) as (_, client, _base):
        v = await validated(client, READ_SQL)
        req = (await execute(client, v)).structured_content["approval_required"]
        waiting = asyncio.create_task(execute(client, v))
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
            try:
                page = await browser.new_page()
                # Generous waits: CI machines are shared; a slow step is not a failure here.
                page.set_default_timeout(120_000)
                first = await page.goto(req["url"])
                assert first is not None and "/login" in page.url  # not logged in yet
                await page.fill("input[name=token]", TOKENS["ana"])
                await page.click("button[type=submit]")
                await page.wait_for_selector("#sql")
                assert page.url == req["url"]
                assert (await page.inner_text("#sql")).strip() == v["normalized_code"]
                assert (await page.inner_text("#code-hash")).strip() == v["code_hash"]
                assert "local" in await page.inner_text("body")  # the requester is shown
                cookie = next(c for c in await page.context.cookies() if c["name"] == "sqlmode_session")
                assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
                assert not waiting.done()
                await page.fill("form[action$='/approve'] input[name=comment]", "checked the SQL")
                await page.click("#approve")
                await page.wait_for_selector("text=approve by")
                body = await page.inner_text("body")
                # The waiting call may already have run the query: then the request shows as used.
                assert ("approved" in body or "used" in body) and "ana" in body and "checked the SQL" in body
                assert await page.query_selector("#approve") is None  # decided: no more buttons
            finally:
                await browser.close()
        ran = await asyncio.wait_for(waiting, 60)
        assert not ran.is_error, ran.content
        assert ran.structured_content["row_count"] > 0 and ran.structured_content["rows"]


async def test_cookie_sessions_need_the_csrf_token_and_pages_refuse_framing_and_caching(
    approval_settings: Callable[..., Settings],
) -> None:
    async with opened(approval_settings()) as (svc, client, base):
        v = await validated(client, READ_SQL)
        req = (await execute(client, v)).structured_content["approval_required"]
        async with httpx2.AsyncClient(base_url=base, timeout=30, follow_redirects=False) as h:
            form = await h.get("/login")
            login_csrf = form.text.split("name='login_csrf' value='")[1].split("'")[0]
            bad = await h.post(
                "/login", data={"token": "not-a-token-at-all", "next": "/admin", "login_csrf": login_csrf}
            )
            assert bad.status_code == 401 and "sqlmode_session" not in bad.cookies
            # An open redirect through `next` is not possible.
            login = await h.post(
                "/login",
                data={"token": TOKENS["bob"], "next": "https://evil.example/", "login_csrf": login_csrf},
            )
            assert login.status_code == 303 and login.headers["location"] == "/admin"
            set_cookie = login.headers["set-cookie"].lower()
            assert "httponly" in set_cookie and "samesite=strict" in set_cookie
            page = await h.get(f"/approvals/{req['id']}")
            assert page.status_code == 200 and v["code_hash"] in page.text
            assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
            no_csrf = await h.post(f"/approvals/{req['id']}/approve", data={"comment": "x"})
            assert no_csrf.status_code == 403 and "CSRF_FAILED" in no_csrf.text
            csrf = page.text.split("name='csrf' value='")[1].split("'")[0]
            cross = await h.post(
                f"/approvals/{req['id']}/approve",
                data={"csrf": csrf},
                headers={"origin": "https://evil.example"},
            )
            assert cross.status_code == 403 and "CSRF_FAILED" in cross.text
            rec = await svc.approvals.get(req["id"])
            assert rec is not None and rec["status"] == "pending"
            ok = await h.post(f"/approvals/{req['id']}/approve", data={"csrf": csrf})
            assert ok.status_code == 303
        rec = await svc.approvals.get(req["id"])
        assert rec is not None and rec["status"] == "approved"
        # Without credentials: a browser is sent to log in, an API client gets 401.
        async with httpx2.AsyncClient(base_url=base, timeout=30) as anon:
            r = await anon.get(f"/approvals/{req['id']}", headers={"accept": "application/json"})
            assert r.status_code == 401
            r = await anon.post(f"/approvals/{req['id']}/deny", json={})
            assert r.status_code == 401


async def test_the_admin_page_lists_approvals_audit_status_and_policies_for_approvers_only(
    approval_settings: Callable[..., Settings],
) -> None:
    async with opened(approval_settings()) as (_, client, base):
        v = await validated(client, READ_SQL)
        req = (await execute(client, v)).structured_content["approval_required"]
        done = await validated(client, READ_SQL + " LIMIT 3")
        other = (await execute(client, done)).structured_content["approval_required"]
        async with httpx2.AsyncClient(base_url=base, timeout=30) as h:
            r = await h.post(
                f"/approvals/{other['id']}/deny",
                json={"comment": "no"},
                headers={"authorization": f"Bearer {TOKENS['bob']}"},
            )
            assert r.status_code == 200
            page = await h.get("/admin", headers={"authorization": f"Bearer {TOKENS['ana']}"})
            assert page.status_code == 200 and page.headers["x-frame-options"] == "DENY"
            pending, decided = page.text.split("<h2>Decided approvals</h2>")
            assert req["id"] in pending and other["id"] not in pending
            assert other["id"] in decided.split("<h2>Audit log</h2>")[0] and "bob: deny" in decided
            assert "audit verify: intact" in page.text and "approval_decision" in page.text
            assert "baseline" in page.text  # the effective policy set, with its layers
            refused = await h.get("/admin", headers={"authorization": f"Bearer {TOKENS['carol']}"})
            assert refused.status_code == 403
