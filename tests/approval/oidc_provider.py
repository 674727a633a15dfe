"""A tiny OpenID Connect provider for tests, served over real HTTP on loopback.

Discovery, an authorization endpoint that logs in whoever the test says is at the keyboard
(``provider.user``), a token endpoint that checks what a real provider checks (client, redirect
URI, single-use code, PKCE S256 verifier) and issues RS256 ID tokens, and a JWKS. ``provider.bad``
makes the next ID token wrong in one way (another key, audience, nonce, issuer, expiry, algorithm)
so the page's own verification is what is tested.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.plugins.serving import serving

CLIENT_ID = "sqlmode-approvals"
CLIENT_SECRET = "provider-client-secret-" + "x" * 16


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Provider:
    issuer: str = ""
    redirect_uris: set[str] = field(default_factory=set)
    user: dict[str, Any] = field(default_factory=lambda: {"sub": "ana", "groups": ["approvers"]})
    bad: str | None = None
    # A sign-in page the person clicks through (a navigation the provider's page starts), instead
    # of an immediate redirect (which the page that started the login would count as its own).
    interactive: bool = False
    key: rsa.RSAPrivateKey = field(default_factory=_key)
    other_key: rsa.RSAPrivateKey = field(default_factory=_key)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What the token endpoint saw: (code_challenge_method, verifier matched, client secret matched).
    exchanges: list[tuple[str, bool, bool]] = field(default_factory=list)

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}

    def id_token(self, grant: dict[str, Any]) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **grant["user"],
        }
        key: Any = self.key
        headers = {"kid": "k1"}
        alg = "RS256"
        if self.bad == "other key":
            key = self.other_key
        elif self.bad == "unknown kid":
            key, headers = self.other_key, {"kid": "k9"}
        elif self.bad == "audience":
            claims["aud"] = "another-client"
        elif self.bad == "nonce":
            claims["nonce"] = "not-the-login-s-nonce"
        elif self.bad == "issuer":
            claims["iss"] = "https://evil.example"
        elif self.bad == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 600
        elif self.bad == "hs256":  # "signed" with the client secret, which sqlmode also holds
            key, alg = CLIENT_SECRET, "HS256"
        elif self.bad == "no nonce":
            del claims["nonce"]
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    def app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "jwks_uri": f"{self.issuer}/jwks",
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            )

        async def authorize(request: Request) -> Response:
            q = request.query_params
            if q.get("client_id") != CLIENT_ID or q.get("redirect_uri") not in self.redirect_uris:
                return JSONResponse({"error": "invalid_client"}, status_code=400)
            if q.get("response_type") != "code" or "openid" not in (q.get("scope") or "").split():
                return JSONResponse({"error": "invalid_request"}, status_code=400)
            if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
                why = "PKCE S256 required"
                return JSONResponse({"error": "invalid_request", "why": why}, status_code=400)
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "redirect_uri": q["redirect_uri"],
                "challenge": q["code_challenge"],
                "nonce": q.get("nonce"),
                "user": dict(self.user),
            }
            back = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state') or ''})}"
            if self.interactive:
                link = html.escape(back, quote=True)
                return HTMLResponse(f"<h1>Provider</h1><a id='signin' href='{link}'>Sign in</a>")
            return RedirectResponse(back, status_code=302)

        async def token(request: Request) -> Response:
            form = await request.form()
            grant = self.codes.pop(str(form.get("code") or ""), None)  # single use
            if grant is None or form.get("grant_type") != "authorization_code":
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            verifier = str(form.get("code_verifier") or "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
            pkce = digest.decode() == grant["challenge"]
            secret = form.get("client_secret") == CLIENT_SECRET
            self.exchanges.append(("S256", pkce, secret))
            if form.get("client_id") != CLIENT_ID or not secret:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if form.get("redirect_uri") != grant["redirect_uri"] or not pkce:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            issued = {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer"}
            return JSONResponse({**issued, "id_token": self.id_token(grant)})

        async def jwks(request: Request) -> Response:
            return JSONResponse(self.jwks())

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
                Route("/jwks", jwks),
            ]
        )


@asynccontextmanager
async def running_provider(name: str = "127.0.0.1") -> AsyncIterator[Provider]:
    """The provider on a loopback port; its issuer URL names ``name`` (``localhost``: another site
    than a page on 127.0.0.1, for a browser)."""
    provider = Provider()
    async with serving(provider.app(), lifespan="off") as port:
        provider.issuer = f"http://{name}:{port}"
        yield provider
