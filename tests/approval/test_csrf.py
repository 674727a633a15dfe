"""Cross-site request forgery on the approval page: which POSTs count, judged by what they changed.

Browsers send Origin on every POST, but a POST may arrive without it (an old browser, a proxy that
strips it). Then a cookie session's POST counts only with the session's CSRF token, and a login only
with the token its form set in a cookie (double submit); an Origin or Referer naming another site
is refused whatever else is sent. Bearer requests carry no ambient authority and keep working
without any of it.
"""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from sqlmode.errors import ApprovalPending
from sqlmode.service import CodeModeService
from tests.approval.conftest import READ_SQL, TOKENS

EVIL = "https://evil.example"


async def pending(service: CodeModeService) -> str:
    """A new approval request of the requester ``local``; its id."""
    v = await service.validate(READ_SQL, user="local", session="s1")
    with pytest.raises(ApprovalPending) as caught:
        await service.execute(v.normalized_code, v.approval_token or "", user="local", session="s1")
    return str(caught.value.data["id"])


async def logged_in(h: httpx2.AsyncClient, who: str) -> None:
    form = await h.get("/login")
    token = form.text.split("name='login_csrf' value='")[1].split("'")[0]
    r = await h.post("/login", data={"token": TOKENS[who], "next": "/admin", "login_csrf": token})
    assert r.status_code == 303 and "sqlmode_session" in h.cookies


async def csrf_of(h: httpx2.AsyncClient, rid: str) -> str:
    page = await h.get(f"/approvals/{rid}")
    return page.text.split("name='csrf' value='")[1].split("'")[0]


def _headers(base: str, kind: str) -> dict[str, str]:
    return {
        "none": {},
        "same-origin referer": {"referer": f"{base}/approvals/x"},
        "cross-site referer": {"referer": f"{EVIL}/page"},
        "same origin": {"origin": base},
        "cross-site origin": {"origin": EVIL},
        "null origin": {"origin": "null"},
    }[kind]


@pytest.mark.parametrize(
    "headers, send_token, status, after",
    [
        ("none", True, 303, "approved"),
        ("none", False, 403, "pending"),
        ("same-origin referer", False, 403, "pending"),  # a cookie session always needs its token
        ("same-origin referer", True, 303, "approved"),
        ("cross-site referer", True, 403, "pending"),
        ("same origin", True, 303, "approved"),
        ("cross-site origin", True, 403, "pending"),
        ("null origin", True, 403, "pending"),
    ],
)
async def test_cookie_decisions_need_the_session_token_and_never_another_site(
    service: CodeModeService, pages: str, headers: str, send_token: bool, status: int, after: str
) -> None:
    rid = await pending(service)
    async with httpx2.AsyncClient(base_url=pages, timeout=30) as h:
        await logged_in(h, "ana")
        data = {"comment": "ok"} | ({"csrf": await csrf_of(h, rid)} if send_token else {})
        r = await h.post(f"/approvals/{rid}/approve", data=data, headers=_headers(pages, headers))
        assert r.status_code == status, r.text
        if status == 403:
            assert "CSRF_FAILED" in r.text and r.headers["x-frame-options"] == "DENY"
    rec = await service.approvals.get(rid)
    assert rec is not None and rec["status"] == after
    assert [d["who"] for d in rec["decisions"]] == (["ana"] if after == "approved" else [])


@pytest.mark.parametrize(
    "headers, status, after",
    [
        ("none", 200, "approved"),
        ("cross-site origin", 403, "pending"),
        ("cross-site referer", 403, "pending"),
    ],
)
async def test_bearer_decisions_need_no_csrf_token(
    service: CodeModeService, pages: str, headers: str, status: int, after: str
) -> None:
    rid = await pending(service)
    async with httpx2.AsyncClient(base_url=pages, timeout=30) as h:
        r = await h.post(
            f"/approvals/{rid}/approve",
            json={"comment": "api"},
            headers={"authorization": f"Bearer {TOKENS['bob']}", **_headers(pages, headers)},
        )
    assert r.status_code == status, r.text
    rec = await service.approvals.get(rid)
    assert rec is not None and rec["status"] == after


@pytest.mark.parametrize(
    "case, status",
    [
        ("form token, none", 303),
        ("form token, same origin", 303),
        ("no form visited", 403),
        ("wrong form token", 403),
        ("form token, cross-site origin", 403),
        ("form token, cross-site referer", 403),
    ],
)
async def test_login_needs_the_forms_own_token_and_this_site(pages: str, case: str, status: int) -> None:
    async with httpx2.AsyncClient(base_url=pages, timeout=30) as h:
        data: dict[str, Any] = {"token": TOKENS["ana"], "next": "/admin"}
        if case != "no form visited":
            form = await h.get("/login")
            set_cookie = form.headers["set-cookie"].lower()
            assert (
                "sqlmode_login=" in set_cookie
                and "httponly" in set_cookie
                and "samesite=strict" in set_cookie
            )
            token = form.text.split("name='login_csrf' value='")[1].split("'")[0]
            data["login_csrf"] = token + "x" if case == "wrong form token" else token
        headers = _headers(pages, case.split(", ")[1]) if ", " in case else {}
        r = await h.post("/login", data=data, headers=headers)
        assert r.status_code == status, r.text
        logged = "sqlmode_session" in h.cookies
        assert logged == (status == 303)
        # The session works exactly when the login counted.
        admin = await h.get("/admin")
        assert admin.status_code == (200 if logged else 303)


async def test_logout_needs_the_session_token(pages: str) -> None:
    async with httpx2.AsyncClient(base_url=pages, timeout=30) as h:
        await logged_in(h, "ana")
        admin = await h.get("/admin")
        assert admin.status_code == 200
        forged = await h.post("/logout", data={})
        assert forged.status_code == 403 and "CSRF_FAILED" in forged.text
        assert (await h.get("/admin")).status_code == 200  # still logged in
        token = admin.text.split("name='csrf' value='")[1].split("'")[0]
        cross = await h.post("/logout", data={"csrf": token}, headers={"origin": EVIL})
        assert cross.status_code == 403 and (await h.get("/admin")).status_code == 200
        out = await h.post("/logout", data={"csrf": token})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        # The session is gone from the store, not only from this browser.
        h.cookies.set(
            "sqlmode_session", admin.request.headers["cookie"].split("sqlmode_session=")[1].split(";")[0]
        )
        assert (await h.get("/admin")).status_code == 303
