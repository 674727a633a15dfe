"""Approvers log in through an OpenID Connect provider (authorization code flow with PKCE).

A real provider runs in the test (tests/approval/oidc_provider.py: discovery, authorize, a token
endpoint that checks client, redirect URI, single-use code and the PKCE verifier, RS256 ID tokens,
a JWKS), and the real HTTP server serves the approval page. The browser's part (following
redirects, keeping cookies) is an HTTP client with a cookie jar. What counts: the session the page
opens (or not), and the approval's record afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2
import pytest

from sqlmode.config import AuthConfig, Settings
from sqlmode.errors import ConfigError
from sqlmode.service import CodeModeService
from sqlmode.web.oidc import OidcClient
from sqlmode.web.page import check_page_config
from tests.approval.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, running_provider
from tests.approval.test_csrf import pending
from tests.server.conftest import running_http


@dataclass
class Setup:
    svc: CodeModeService
    base: str
    provider: Provider


def oidc_auth(issuer: str) -> dict[str, str]:
    return {"oidc_issuer": issuer, "oidc_client_id": CLIENT_ID, "oidc_client_secret": CLIENT_SECRET}


@pytest.fixture
async def setup(approval_settings: Callable[..., Settings]) -> AsyncIterator[Setup]:
    async with running_provider() as provider:
        settings = approval_settings(auth=oidc_auth(provider.issuer))
        async with CodeModeService(settings) as svc, running_http(svc) as url:
            base = url.removesuffix("/mcp")
            svc.approvals.base_url = base
            provider.redirect_uris = {f"{base}/login/oidc/callback"}
            yield Setup(svc, base, provider)


async def to_callback(h: httpx2.AsyncClient, s: Setup, nxt: str) -> str:
    """Start the login on the page and pass the provider's login; the callback URL it sends back."""
    start = await h.get(f"{s.base}/login/oidc", params={"next": nxt})
    assert start.status_code == 303 and "sqlmode_oidc" in start.cookies
    # Lax, not Strict: the provider sends the browser back by a cross-site navigation.
    cookie = start.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/login/oidc" in cookie
    auth_url = start.headers["location"]
    assert auth_url.startswith(f"{s.provider.issuer}/authorize?") and "code_challenge_method=S256" in auth_url
    assert CLIENT_SECRET not in auth_url  # the secret goes to the token endpoint only
    back = await h.get(auth_url)
    assert back.status_code == 302, back.text
    callback = back.headers["location"]
    assert callback.startswith(f"{s.base}/login/oidc/callback?")
    return callback


def logged_in_as_someone(h: httpx2.AsyncClient) -> bool:
    return "sqlmode_session" in h.cookies


async def test_an_approver_logs_in_at_the_provider_and_approves(setup: Setup) -> None:
    s = setup
    rid = await pending(s.svc)
    async with httpx2.AsyncClient(timeout=30) as h:
        form = await h.get(f"{s.base}/login", params={"next": f"/approvals/{rid}"})
        assert f"/login/oidc?next=/approvals/{rid}" in form.text
        done = await h.get(await to_callback(h, s, f"/approvals/{rid}"))
        # A page of ours moves on (a SameSite=Strict cookie is not sent along a cross-site redirect).
        assert done.status_code == 200 and f"url=/approvals/{rid}" in done.text
        assert logged_in_as_someone(h) and done.headers["x-frame-options"] == "DENY"
        shown = await h.get(f"{s.base}/approvals/{rid}")
        assert shown.status_code == 200 and "ana" in shown.text
        token = shown.text.split("name='csrf' value='")[1].split("'")[0]
        decision = {"csrf": token, "comment": "via idp"}
        ok = await h.post(f"{s.base}/approvals/{rid}/approve", data=decision, headers={"origin": s.base})
        assert ok.status_code == 303, ok.text
    rec = await s.svc.approvals.get(rid)
    assert rec is not None and rec["status"] == "approved"
    assert [(d["who"], d["verdict"]) for d in rec["decisions"]] == [("ana", "approve")]
    # The provider got the PKCE verifier of the challenge it was shown, and the client secret.
    assert s.provider.exchanges == [("S256", True, True)]


@pytest.mark.parametrize(
    "bad", ["other key", "unknown kid", "audience", "nonce", "no nonce", "issuer", "expired", "hs256"]
)
async def test_an_id_token_the_page_cannot_trust_opens_no_session(setup: Setup, bad: str) -> None:
    s = setup
    rid = await pending(s.svc)
    s.provider.bad = bad
    async with httpx2.AsyncClient(timeout=30) as h:
        refused = await h.get(await to_callback(h, s, "/admin"), headers={"accept": "application/json"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "AUTH_FAILED", refused.text
        assert not logged_in_as_someone(h)
        admin = await h.get(f"{s.base}/admin")
        assert admin.status_code == 303 and admin.headers["location"].startswith("/login")
    assert s.provider.exchanges == [("S256", True, True)]  # the provider did its part
    rec = await s.svc.approvals.get(rid)
    assert rec is not None and rec["status"] == "pending"


async def test_a_callback_from_another_browser_or_a_replay_is_refused(setup: Setup) -> None:
    s = setup
    async with httpx2.AsyncClient(timeout=30) as attacker, httpx2.AsyncClient(timeout=30) as victim:
        # Login CSRF: the attacker's own login, finished in the victim's browser, would log the
        # victim in as the attacker. The victim's browser holds no cookie for that flow.
        planted = await to_callback(attacker, s, "/admin")
        r = await victim.get(planted, headers={"accept": "application/json"})
        assert r.status_code == 400 and "not started in this browser" in r.json()["error"]["message"]
        assert not logged_in_as_someone(victim)
        # A state is used once: the same callback again (cookie and all) is refused.
        ok = await attacker.get(planted)
        assert ok.status_code == 200 and logged_in_as_someone(attacker)
        state = dict(p.split("=", 1) for p in urlsplit(planted).query.split("&"))["state"]
        replay = {"accept": "application/json", "cookie": f"sqlmode_oidc={state}"}
        again = await victim.get(planted, headers=replay)
        assert again.status_code == 400 and "already used" in again.json()["error"]["message"]
        assert not logged_in_as_someone(victim)


async def test_a_provider_user_outside_the_approvers_group_cannot_approve(setup: Setup) -> None:
    s = setup
    rid = await pending(s.svc)
    # A local group given to "carol" in config does not reach an identity-provider user.
    s.provider.user = {"sub": "carol", "groups": ["analysts"]}
    async with httpx2.AsyncClient(timeout=30) as h:
        assert (await h.get(await to_callback(h, s, "/admin"))).status_code == 200
        # She is logged in, but may not see the request (so she never gets its form's CSRF token)...
        shown = await h.get(f"{s.base}/approvals/{rid}", headers={"accept": "application/json"})
        assert shown.status_code == 403 and shown.json()["error"]["code"] == "APPROVAL_NOT_APPROVER"
        r = await h.post(f"{s.base}/approvals/{rid}/approve", json={}, headers={"accept": "application/json"})
        assert r.status_code == 403
        page = await h.get(f"{s.base}/admin")
        assert page.status_code == 403 and "APPROVAL_NOT_APPROVER" in page.text
    rec = await s.svc.approvals.get(rid)
    assert rec is not None and rec["status"] == "pending"


@pytest.mark.parametrize(
    "auth, needle",
    [
        ({"oidc_issuer": "http://idp.example.com", "oidc_client_id": "x"}, "must be an https:// URL"),
        ({"oidc_issuer": "https://idp.example.com"}, "auth.oidc_client_id is not"),
        (
            {"oidc_issuer": "https://idp.example.com", "oidc_client_id": "x", "oidc_scopes": ["email"]},
            "must include 'openid'",
        ),
    ],
)
def test_an_unusable_provider_config_is_a_config_error(auth: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        OidcClient(AuthConfig.model_validate(auth))
    assert needle in e.value.message


def test_a_stdio_page_may_log_approvers_in_through_the_provider_alone(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        {"auth": oidc_auth("https://idp.example.com"), "approval": {"actions": ["read"]}}
    )
    assert check_page_config(settings) is None  # no static token or JWT key, and no error
    without = make_settings({"approval": {"actions": ["read"]}})
    with pytest.raises(ConfigError) as e:
        check_page_config(without)
    assert "auth.oidc_issuer" in (e.value.hint or "")


UNUSABLE = [{"sub": ""}, {"sub": " ana"}, {"sub": "ana\n"}, {"email": "ana@example.org"}]


@pytest.mark.parametrize("user", UNUSABLE)
async def test_an_id_token_without_a_usable_user_opens_no_session(setup: Setup, user: dict[str, str]) -> None:
    s = setup
    s.provider.user = {**user, "groups": ["approvers"]}
    async with httpx2.AsyncClient(timeout=30) as h:
        r = await h.get(await to_callback(h, s, "/admin"), headers={"accept": "application/json"})
        assert r.status_code == 401 and "sub" in r.json()["error"]["message"], r.text
        assert not logged_in_as_someone(h)


async def test_in_a_real_browser_the_provider_on_another_site_logs_the_approver_in(
    approval_settings: Callable[..., Settings], chromium: str
) -> None:
    """Chromium keeps SameSite rules: the provider (localhost) is another site than the page
    (127.0.0.1) and the person clicks "Sign in" on the provider's page, so the way back is a
    navigation another site started: the state cookie must be Lax to come along, and the session's
    Strict cookie reaches the approval page only through a navigation the page itself starts."""
    from playwright.async_api import async_playwright

    from tests.approval.test_browser import FLAGS

    async with running_provider("localhost") as provider:
        settings = approval_settings(auth=oidc_auth(provider.issuer))
        async with CodeModeService(settings) as svc, running_http(svc) as url:
            base = url.removesuffix("/mcp")
            svc.approvals.base_url = base
            provider.redirect_uris = {f"{base}/login/oidc/callback"}
            provider.interactive = True
            rid = await pending(svc)
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
                try:
                    page = await browser.new_page()
                    page.set_default_timeout(120_000)
                    await page.goto(f"{base}/approvals/{rid}")
                    assert "/login" in page.url  # not logged in yet
                    await page.click("text=Log in with your identity provider")
                    await page.click("#signin")  # on the provider's own page
                    await page.wait_for_selector("#approve")
                    assert page.url == f"{base}/approvals/{rid}"
                    cookies = {c["name"]: c for c in await page.context.cookies()}
                    assert cookies["sqlmode_session"]["sameSite"] == "Strict"
                    assert "sqlmode_oidc" not in cookies  # the flow's cookie is gone
                    await page.click("#approve")
                    await page.wait_for_selector("text=approve by")
                finally:
                    await browser.close()
            rec = await svc.approvals.get(rid)
    assert rec is not None and rec["status"] == "approved"
    assert [(d["who"], d["verdict"]) for d in rec["decisions"]] == [("ana", "approve")]
    assert provider.exchanges == [("S256", True, True)]
