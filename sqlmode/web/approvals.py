"""The approval page and its API, beside ``/mcp``: where a person, not the model, approves a query.

    GET  /approvals/{id}            the request: requester, SQL and its hash, explanation, risk,
                                    tables and columns, estimates, expiry, decisions (HTML or JSON)
    POST /approvals/{id}/approve    form or JSON {"comment": ...}
    POST /approvals/{id}/deny
    GET  /login, POST /login        browsers: a static token (or a JWT) once, then an HttpOnly,
    POST /logout                    SameSite=Strict session cookie kept in the shared state store

Credentials are the MCP endpoint's (``[auth]`` bearer tokens or JWTs). A request with an
``Authorization`` header carries no ambient authority, so it needs no CSRF token. Every POST whose
Origin (or, without one, Referer) names another site is refused. A cookie session must send the
session's CSRF token with every POST (decide, log out); the login form, which has no session yet,
must send back the token its GET set in a cookie (double submit), so a POST without Origin or
Referer (old browsers, stripping proxies) is never trusted on headers alone. Every response forbids
framing and caching. The decision rules (approvers group, never the
requester, distinct approvers) are the book's, so every path to a decision obeys them.
"""

from __future__ import annotations

import hmac
import html
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from mcp.server.auth.provider import AccessToken
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route, Router

from ..auth import ConfigTokenVerifier
from ..errors import HumanApprovalError, SqlmodeError
from ..models import Principal
from ..service import CodeModeService
from .admin import admin_html
from .oidc import oidc_client, oidc_routes

__all__ = ["WEB_PREFIXES", "approval_routes"]

log = logging.getLogger("sqlmode.web")

WEB_PREFIXES = ("/approvals/", "/login", "/logout", "/admin")
COOKIE = "sqlmode_session"
LOGIN_COOKIE = "sqlmode_login"
_BAD_CSRF = "the form's CSRF token is missing or wrong; reload the page"
_SESSIONS = "web-session"
_SESSION_SECONDS = 8 * 3600
_HEADERS = {
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    # Not no-referrer: with it a browser sends "Origin: null" on its own forms, which the check refuses.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
_STATUS = {
    "APPROVAL_NOT_FOUND": 404,
    "APPROVAL_SELF": 403,
    "APPROVAL_NOT_APPROVER": 403,
    "APPROVAL_DECIDED": 409,
    "APPROVAL_EXPIRED": 409,
    "APPROVAL_BUSY": 409,
    "APPROVAL_NOT_ALLOWED": 400,
}


class _Who:
    def __init__(self, principal: Principal, csrf: str | None):
        self.principal = principal
        self.csrf = csrf  # None: the request authenticated by header, not by cookie


def _secure(resp: Response) -> Response:
    for k, v in _HEADERS.items():
        resp.headers[k] = v
    return resp


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or request.headers.get(
        "content-type", ""
    ).startswith("application/json")


def _cross_site(request: Request) -> bool:
    """Whether the POST says it comes from another site: its Origin, else its Referer, is not this
    server. Neither header says nothing: the caller then relies on a token (bearer or CSRF)."""
    source = request.headers.get("origin")
    if source is None:
        source = request.headers.get("referer") or None
    if source is None:
        return False
    parts = urlsplit(source)
    host = request.headers.get("host", "")
    return not (parts.netloc.lower() == host.lower() and parts.scheme in ("http", "https"))


def _tokens_match(sent: str, expected: str | None) -> bool:
    return bool(sent) and bool(expected) and hmac.compare_digest(sent.encode(), str(expected).encode())


def _principal_of(service: CodeModeService, access: AccessToken) -> Principal:
    """The approver a verified bearer token or JWT names (the same for the API and the login form)."""
    claims = access.claims or {}
    groups = claims.get("groups")
    return service.principal(
        access.subject or access.client_id,
        "web",
        list(groups) if groups else None,
        claims.get("method") == "jwt",
    )


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _page(title: str, body: str, status: int = 200) -> Response:
    doc = (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + "</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "pre{background:#f4f4f4;padding:1em;white-space:pre-wrap;word-break:break-all}"
        "td,th{padding:.2em .6em;text-align:left;vertical-align:top}</style></head><body>"
        + body
        + "</body></html>"
    )
    return _secure(HTMLResponse(doc, status_code=status))


def _error(request: Request, status: int, code: str, message: str) -> Response:
    if _wants_json(request):
        return _secure(JSONResponse({"error": {"code": code, "message": message}}, status_code=status))
    return _page("sqlmode: " + code, f"<h1>{html.escape(code)}</h1><p>{html.escape(message)}</p>", status)


def approval_routes(service: CodeModeService, verifier: ConfigTokenVerifier | None) -> Router:
    """The approval pages and API as a Starlette router over ``service`` and the MCP credentials."""
    state = service.state
    oidc = oidc_client(service.settings.auth)
    can_log_in = verifier is not None or oidc is not None

    async def who(request: Request) -> _Who | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            if verifier is None:
                return None
            access = await verifier.verify_token(auth[7:].strip())
            if access is None:
                return None
            return _Who(_principal_of(service, access), None)
        sid = request.cookies.get(COOKIE)
        if not sid or len(sid) > 100:
            return None
        rec = await state.get(_SESSIONS, sid)
        if rec is None:
            return None
        v = rec.value
        p = service.principal(v["user"], "web", v["groups"], bool(v["external"]))
        return _Who(p, str(v["csrf"]))

    def login_redirect(request: Request) -> Response:
        return _secure(RedirectResponse("/login?next=" + quote(request.url.path), status_code=303))

    async def show(request: Request) -> Response:
        w = await who(request)
        if w is None:
            if _wants_json(request) or not can_log_in:
                return _error(request, 401, "AUTH_FAILED", "log in or send a bearer token")
            return login_redirect(request)
        rec = await service.approvals.get(request.path_params["id"])
        if rec is None:
            return _error(request, 404, "APPROVAL_NOT_FOUND", "no such approval request")
        p = w.principal
        if p.user != rec["requester"] and rec["approvers_group"] not in p.groups:
            return _error(request, 403, "APPROVAL_NOT_APPROVER", "only approvers and the requester see this")
        if _wants_json(request):
            return _secure(JSONResponse(_public(rec)))
        return _page(f"Approval {rec['id']}", _render(rec, w))

    async def decide(request: Request) -> Response:
        verdict = request.path_params["verdict"]
        w = await who(request)
        if w is None:
            return _error(request, 401, "AUTH_FAILED", "log in or send a bearer token")
        if _cross_site(request):
            return _error(request, 403, "CSRF_FAILED", "the request came from another site")
        comment = ""
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return _error(request, 400, "BAD_INPUT", 'send a JSON object, e.g. {"comment": "ok"}')
            comment = str(body.get("comment") or "")
            sent_csrf = str(body.get("csrf") or "")
        else:
            form = await request.form()
            comment = str(form.get("comment") or "")
            sent_csrf = str(form.get("csrf") or "")
        if w.csrf is not None and not _tokens_match(sent_csrf, w.csrf):
            return _error(request, 403, "CSRF_FAILED", _BAD_CSRF)
        rid = request.path_params["id"]
        try:
            rec = await service.decide_approval(rid, w.principal, verdict, comment)
        except HumanApprovalError as e:
            return _error(request, _STATUS.get(e.code, 409), e.code, e.message)
        except SqlmodeError as e:
            log.warning("approval decision failed: %s", e.message)
            return _error(request, 503, e.code, e.message)
        if _wants_json(request):
            return _secure(JSONResponse(_public(rec)))
        return _secure(RedirectResponse(f"/approvals/{rec['id']}", status_code=303))

    async def admin(request: Request) -> Response:
        w = await who(request)
        if w is None:
            if not can_log_in:
                return _error(request, 401, "AUTH_FAILED", "this server has no credentials configured")
            return login_redirect(request)
        group = service.settings.approval.approvers_group
        if group not in w.principal.groups:
            return _error(
                request, 403, "APPROVAL_NOT_APPROVER", f"the admin page is for members of {group!r}"
            )
        raw = request.query_params.get("page", "0")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
            return _error(request, 400, "BAD_INPUT", "page is a whole number from 0 (the newest requests)")
        body = await admin_html(service, w.principal.user, w.csrf or "", int(raw))
        return _page("sqlmode admin", body)

    async def login_form(request: Request) -> Response:
        nxt = _safe_next(request.query_params.get("next"))
        # One token per browser (kept while it lasts), so two open login tabs both work.
        token = request.cookies.get(LOGIN_COOKIE) or ""
        if not 20 <= len(token) <= 100:
            token = secrets.token_urlsafe(24)
        resp = _page("sqlmode: log in", _login_html(nxt, "", token, oidc is not None))
        resp.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=3600,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/login",
        )
        return resp

    async def login(request: Request) -> Response:
        if verifier is None:
            return _error(request, 403, "AUTH_FAILED", "this server has no credentials configured")
        if _cross_site(request):
            return _error(request, 403, "CSRF_FAILED", "the request came from another site")
        form = await request.form()
        nxt = _safe_next(str(form.get("next") or ""))
        token = request.cookies.get(LOGIN_COOKIE)
        if not _tokens_match(str(form.get("login_csrf") or ""), token):
            return _error(request, 403, "CSRF_FAILED", _BAD_CSRF)
        access = await verifier.verify_token(str(form.get("token") or "").strip())
        if access is None:
            link = oidc is not None
            return _page(
                "sqlmode: log in", _login_html(nxt, "That token is not valid.", token or "", link), 401
            )
        resp = await start_session(request, _principal_of(service, access), nxt)
        resp.delete_cookie(LOGIN_COOKIE, path="/login")
        return resp

    async def start_session(request: Request, principal: Principal, nxt: str) -> Response:
        """A logged-in browser: the session in the shared store, its HttpOnly SameSite=Strict cookie."""
        sid = secrets.token_urlsafe(32)
        await state.create(
            _SESSIONS,
            sid,
            {
                "user": principal.user,
                "groups": list(principal.groups),
                "external": principal.external,
                "csrf": secrets.token_urlsafe(24),
            },
            expires_at=time.time() + _SESSION_SECONDS,
        )
        resp: Response
        if request.url.path == "/login":
            resp = RedirectResponse(nxt, status_code=303)
        else:
            # Back from the identity provider, the browser is in a navigation that began on another
            # site: it would not send a SameSite=Strict cookie along a redirect. A page of ours
            # that moves on starts a same-site navigation, which does.
            e = html.escape(nxt, quote=True)
            resp = _page(
                "sqlmode: logged in",
                f"<meta http-equiv='refresh' content='0;url={e}'>"
                f"<p>Logged in. <a href='{e}'>Continue</a></p>",
            )
        resp.set_cookie(
            COOKIE,
            sid,
            max_age=_SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return _secure(resp)

    async def logout(request: Request) -> Response:
        if _cross_site(request):
            return _error(request, 403, "CSRF_FAILED", "the request came from another site")
        sid = request.cookies.get(COOKIE)
        rec = await state.get(_SESSIONS, sid) if sid and len(sid) <= 100 else None
        if rec is not None:
            form = await request.form()
            if not _tokens_match(str(form.get("csrf") or ""), rec.value.get("csrf")):
                return _error(request, 403, "CSRF_FAILED", _BAD_CSRF)
            await state.take(_SESSIONS, str(sid))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return _secure(resp)

    return Router(
        routes=[
            *(oidc_routes(service, oidc, _safe_next, start_session, _error) if oidc is not None else []),
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/admin", admin, methods=["GET"]),
            Route("/approvals/{id}", show, methods=["GET"]),
            Route("/approvals/{id}/{verdict:str}", decide, methods=["POST"]),
        ]
    )


def _safe_next(value: str | None) -> str:
    """Only this server's approval or admin pages: never an open redirect."""
    if value and value.startswith(("/approvals/", "/admin")) and "//" not in value and "\\" not in value:
        return value
    return "/admin"


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    keep = [
        "id",
        "status",
        "requester",
        "normalized_code",
        "code_hash",
        "explanation",
        "risk",
        "action",
        "statement_type",
        "tables",
        "columns",
        "estimates",
        "reasons",
        "created_at",
        "expires_at",
        "required",
        "approvers_group",
        "decisions",
    ]
    return {k: rec.get(k) for k in keep}


def _login_html(nxt: str, message: str, token: str, oidc: bool = False) -> str:
    e = html.escape
    provider = (
        f"<p><a href='/login/oidc?next={e(quote(nxt, safe='/'), quote=True)}'>Log in with your identity "
        "provider</a></p><p>or with an access token:</p>"
        if oidc
        else ""
    )
    return (
        "<h1>sqlmode approvals: log in</h1>"
        + (f"<p role='alert'>{e(message)}</p>" if message else "")
        + provider
        + "<form method='post' action='/login'>"
        f"<input type='hidden' name='next' value='{e(nxt, quote=True)}'>"
        f"<input type='hidden' name='login_csrf' value='{e(token, quote=True)}'>"
        "<label>Access token <input type='password' name='token' autocomplete='off' required></label> "
        "<button type='submit'>Log in</button></form>"
    )


def _render(rec: dict[str, Any], w: _Who) -> str:
    e = html.escape
    rows = [
        ("Status", rec["status"]),
        ("Requester", rec["requester"]),
        ("Risk", f"{rec['risk']} ({rec['action']}, {rec['statement_type']})"),
        ("Why approval", ", ".join(rec.get("reasons") or []) or "policy"),
        ("Tables", ", ".join(rec["tables"]) or "none"),
        ("Columns", ", ".join(rec["columns"]) or "none"),
        ("Estimates", ", ".join(f"{k}: {v}" for k, v in (rec.get("estimates") or {}).items()) or "none"),
        ("Approvals needed", f"{rec['required']} from group {rec['approvers_group']}"),
        ("Expires", _ts(rec["expires_at"])),
    ]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    decisions = "".join(
        f"<li>{e(d['verdict'])} by <b>{e(d['who'])}</b> at {e(_ts(d['at']))}"
        + (f": {e(d['comment'])}" if d.get("comment") else "")
        + "</li>"
        for d in rec["decisions"]
    )
    body = (
        f"<h1>Approval request</h1><p>You are <b>{e(w.principal.user)}</b>.</p>"
        f"<table>{table}</table>"
        f"<h2>Explanation</h2><p>{e(rec['explanation'])}</p>"
        "<h2>SQL (exactly what will run)</h2>"
        f"<pre id='sql'>{e(rec['normalized_code'])}</pre>"
        f"<p>SHA-256: <code id='code-hash'>{e(rec['code_hash'])}</code></p>"
        f"<h2>Decisions</h2><ul>{decisions or '<li>none yet</li>'}</ul>"
    )
    can_decide = (
        rec["status"] == "pending"
        and w.principal.user != rec["requester"]
        and rec["approvers_group"] in w.principal.groups
        and not any(d["who"] == w.principal.user for d in rec["decisions"])
    )
    if can_decide:
        csrf = f"<input type='hidden' name='csrf' value='{e(w.csrf or '', quote=True)}'>"
        rid = e(rec["id"], quote=True)
        body += (
            "<h2>Decide</h2>"
            f"<form method='post' action='/approvals/{rid}/approve'>{csrf}"
            "<label>Comment <input name='comment' maxlength='2000'></label> "
            "<button type='submit' id='approve'>Approve</button></form>"
            f"<form method='post' action='/approvals/{rid}/deny'>{csrf}"
            "<label>Reason <input name='comment' maxlength='2000'></label> "
            "<button type='submit' id='deny'>Deny</button></form>"
        )
    elif rec["status"] == "pending" and w.principal.user == rec["requester"]:
        body += "<p>You asked for this query: another approver has to decide.</p>"
    return body
