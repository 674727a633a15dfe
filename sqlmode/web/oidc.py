"""Approvers log in through an OpenID Connect provider: the authorization code flow with PKCE.

    GET /login/oidc?next=...   a fresh state, nonce and PKCE verifier kept in the state store (single
                               use, 10 minutes) and a cookie holding the state, which binds the flow
                               to this browser; 303 to the provider's authorization endpoint with the
                               S256 challenge
    GET /login/oidc/callback   the state's cookie matched and its record taken (once); the code
                               exchanged at the token endpoint with the verifier (and the client
                               secret, when configured); the ID token verified: signature by a key of
                               the provider's JWKS (asymmetric algorithms only), ``iss``, ``aud`` (and
                               ``azp``), ``exp``/``iat``, ``nonce``; then the login form's own session

The provider's metadata comes from ``<issuer>/.well-known/openid-configuration``; its JWKS is
fetched when first needed and again once for a key id it does not hold (key rotation). The user is
the ``auth.oidc_user_claim`` claim, the groups ``auth.groups_claim``; the principal is external (an
identity-provider user is never the local default user, whatever its name).

The state cookie is SameSite=Lax, not Strict: the provider sends the browser back by a cross-site
navigation, on which a Strict cookie is not sent. Lax cookies go on top-level GETs only, which is
all the callback is, and the state in it is single use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..access import is_loopback
from ..auth import claim_groups, usable_subject
from ..config import AuthConfig
from ..errors import ConfigError
from ..models import Principal
from ..service import CodeModeService

__all__ = ["OidcClient", "OidcError", "oidc_client", "oidc_routes"]

log = logging.getLogger("sqlmode.web")

STATE_COOKIE = "sqlmode_oidc"
_FLOWS = "web-oidc"
_FLOW_SECONDS = 600
_LEEWAY_SECONDS = 30
_TIMEOUT_SECONDS = 10.0
# Asymmetric only: the provider signs, we hold no secret it could have signed with.
_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class OidcError(Exception):
    """A login through the provider that cannot be trusted; the message says why (no secret in it)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _challenge(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


class OidcClient:
    """One provider: its metadata and keys (cached), the authorization URL, the code exchange."""

    def __init__(self, auth: AuthConfig):
        issuer = (auth.oidc_issuer or "").rstrip("/")
        parts = urlsplit(issuer)
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname or "")):
            raise ConfigError(
                f"auth.oidc_issuer {auth.oidc_issuer!r} must be an https:// URL (http:// on loopback only)",
                key="auth.oidc_issuer",
            )
        if not auth.oidc_client_id:
            raise ConfigError(
                "auth.oidc_issuer is set but auth.oidc_client_id is not",
                key="auth.oidc_client_id",
                hint="Register sqlmode's approval page with the provider and set its client id.",
            )
        if "openid" not in auth.oidc_scopes:
            raise ConfigError("auth.oidc_scopes must include 'openid'", key="auth.oidc_scopes")
        self.issuer = issuer
        self.client_id = auth.oidc_client_id
        self.client_secret = auth.oidc_client_secret
        self.scopes = list(auth.oidc_scopes)
        self.user_claim = auth.oidc_user_claim
        self.groups_claim = auth.groups_claim
        self._meta: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            async with httpx2.AsyncClient(timeout=_TIMEOUT_SECONDS, follow_redirects=False) as h:
                r = await h.get(url, headers={"accept": "application/json"})
            doc = r.json() if r.status_code == 200 else None
        except (httpx2.HTTPError, ValueError) as e:
            raise OidcError(f"the identity provider did not answer at {url}: {type(e).__name__}") from None
        if not isinstance(doc, dict):
            raise OidcError(f"the identity provider answered {r.status_code} at {url}")
        return doc

    async def metadata(self) -> dict[str, Any]:
        if self._meta is None:
            meta = await self._get(f"{self.issuer}/.well-known/openid-configuration")
            if str(meta.get("issuer", "")).rstrip("/") != self.issuer:
                raise OidcError("the provider's metadata names another issuer")
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(meta.get(field), str):
                    raise OidcError(f"the provider's metadata has no {field}")
            self._meta = meta
        return self._meta

    async def authorization_url(self, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
        meta = await self.metadata()
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
        }
        endpoint = meta["authorization_endpoint"]
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)

    async def exchange(self, code: str, redirect_uri: str, verifier: str, nonce: str) -> dict[str, Any]:
        """The verified ID token's claims for ``code``; OidcError otherwise."""
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        if self.client_secret:
            form["client_secret"] = self.client_secret
        try:
            async with httpx2.AsyncClient(timeout=_TIMEOUT_SECONDS, follow_redirects=False) as h:
                r = await h.post(meta["token_endpoint"], data=form, headers={"accept": "application/json"})
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
        except (httpx2.HTTPError, ValueError) as e:
            raise OidcError(f"the provider's token endpoint did not answer: {type(e).__name__}") from None
        if r.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            error = body.get("error") if isinstance(body, dict) else None
            raise OidcError(
                f"the provider refused the code ({r.status_code}{', ' + str(error) if error else ''})"
            )
        return await self.verify_id_token(body["id_token"], nonce)

    async def _key(self, kid: str | None, alg: str) -> Any:
        import jwt

        for attempt in range(2):
            if self._jwks is None or attempt:
                self._jwks = await self._get((await self.metadata())["jwks_uri"])
            keys = [k for k in self._jwks.get("keys") or [] if isinstance(k, dict)]
            for k in keys:
                if (kid is None or k.get("kid") == kid) and k.get("use", "sig") == "sig":
                    if k.get("alg", alg) != alg:
                        continue
                    try:
                        return jwt.PyJWK(k, algorithm=alg).key
                    except jwt.PyJWTError:
                        continue
        raise OidcError("the ID token is signed with a key the provider does not publish")

    async def verify_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise OidcError("the ID token is not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in _ALGORITHMS:
            raise OidcError(f"the ID token's algorithm {alg!r} is not accepted")
        key = await self._key(kid if isinstance(kid, str) else None, str(alg))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[str(alg)],
                audience=self.client_id,
                issuer=self.issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as e:
            raise OidcError(f"the ID token is not valid: {e}") from None
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.client_id:
            raise OidcError("the ID token is for several audiences and names another authorized party")
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
            raise OidcError("the ID token's nonce is not this login's")
        return claims


def oidc_client(auth: AuthConfig) -> OidcClient | None:
    """The provider client when ``auth.oidc_issuer`` is set (ConfigError if unusable)."""
    return OidcClient(auth) if auth.oidc_issuer else None


StartSession = Callable[[Request, Principal, str], Awaitable[Response]]
Refuse = Callable[[Request, int, str, str], Response]


def oidc_routes(
    service: CodeModeService,
    client: OidcClient,
    safe_next: Callable[[str | None], str],
    start_session: StartSession,
    refuse: Refuse,
) -> list[Route]:
    """``/login/oidc`` and its callback; a good login becomes the same session as the login form's."""
    state_store = service.state

    def redirect_uri() -> str:
        return f"{service.approvals.base_url}/login/oidc/callback"

    async def start(request: Request) -> Response:
        nxt = safe_next(request.query_params.get("next"))
        state, nonce, verifier = (
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(48),
        )
        try:
            url = await client.authorization_url(redirect_uri(), state, nonce, verifier)
        except OidcError as e:
            log.warning("OIDC login could not start: %s", e, extra={"event": "oidc_refused"})
            return refuse(request, 502, "AUTH_FAILED", f"the identity provider is not available: {e}")
        value = {"nonce": nonce, "verifier": verifier, "next": nxt, "redirect_uri": redirect_uri()}
        await state_store.create(_FLOWS, state, value, expires_at=time.time() + _FLOW_SECONDS)
        resp = RedirectResponse(url, status_code=303)
        resp.set_cookie(
            STATE_COOKIE,
            state,
            max_age=_FLOW_SECONDS,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/login/oidc",
        )
        return resp

    async def callback(request: Request) -> Response:
        q = request.query_params
        state, cookie = q.get("state") or "", request.cookies.get(STATE_COOKIE) or ""
        # The cookie binds the flow to the browser that started it: a callback link someone else
        # started (login CSRF: being logged in as them) has no matching cookie here.
        if not state or len(state) > 100 or not hmac.compare_digest(state.encode(), cookie.encode()):
            return refuse(
                request, 400, "AUTH_FAILED", "this login was not started in this browser; log in again"
            )
        flow = await state_store.take(_FLOWS, state)
        if flow is None:
            return refuse(request, 400, "AUTH_FAILED", "this login expired or was already used; log in again")
        if q.get("error"):
            said = str(q.get("error"))[:100]
            return refuse(request, 401, "AUTH_FAILED", f"the identity provider refused: {said}")
        v = flow.value
        try:
            claims = await client.exchange(q.get("code") or "", v["redirect_uri"], v["verifier"], v["nonce"])
            user = claims.get(client.user_claim)
            if not usable_subject(user):  # an empty one would become policy.default_user
                raise OidcError(f"the ID token has no usable {client.user_claim!r} claim")
        except OidcError as e:
            log.info("refused an OIDC login: %s", e, extra={"event": "auth_refused", "reason": str(e)})
            return refuse(request, 401, "AUTH_FAILED", str(e))
        principal = service.principal(user, "web", claim_groups(claims.get(client.groups_claim)), True)
        resp = await start_session(request, principal, str(v["next"]))
        resp.delete_cookie(STATE_COOKIE, path="/login/oidc")
        return resp

    return [
        Route("/login/oidc", start, methods=["GET"]),
        Route("/login/oidc/callback", callback, methods=["GET"]),
    ]
