"""Streamable HTTP on 127.0.0.1: credentials, principals, sessions bound into tokens, host/origin checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sqlmode.auth import ConfigTokenVerifier
from sqlmode.config import AuthConfig, Settings
from sqlmode.errors import ConfigError, SecretError
from sqlmode.server import http_security, serve
from sqlmode.service import CodeModeService
from tests.narrow import block_text
from tests.server.conftest import EASY_SQL, TOKENS, http_client, running_http

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
ACCEPT = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
ISSUER = "https://idp.example.com/"


@pytest.fixture(scope="module")
async def shared_url(shared_service: CodeModeService):
    """One server for the tests that only need answers (not their own audit log)."""
    async with running_http(shared_service) as u:
        yield u


@pytest.fixture
async def url(service: CodeModeService):
    async with running_http(service) as u:
        yield u


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong-token-0123456789"}, 401),
        ({"authorization": f"Basic {TOKENS['ana']}"}, 401),
        ({"authorization": f"Bearer {TOKENS['ana']}", "host": "evil.example:80"}, 421),
        ({"authorization": f"Bearer {TOKENS['ana']}", "origin": "http://evil.example"}, 403),
    ],
    ids=["missing", "wrong", "not-bearer", "foreign-host", "foreign-origin"],
)
async def test_requests_without_valid_credentials_or_from_foreign_hosts_are_refused(
    shared_url: str, headers: dict[str, str], status: int
) -> None:
    async with httpx2.AsyncClient() as h:
        r = await h.post(shared_url, json=LIST, headers={**ACCEPT, **headers})
    assert r.status_code == status, r.text
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "tools" not in r.text


async def test_a_valid_token_lists_the_tools(shared_url: str) -> None:
    async with http_client(shared_url) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert names == {"validate_code", "execute_code", "describe_schema"}


def audit_records(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(settings.audit.path).read_text().splitlines()]


async def test_principal_and_mcp_session_are_recorded_and_bound_into_tokens(
    url: str, service: CodeModeService
) -> None:
    async with http_client(url, mode="legacy") as a, http_client(url, mode="legacy") as a2:
        v = (await a.call_tool("validate_code", {"code": EASY_SQL})).structured_content
        assert v is not None and v["is_valid"]
        args = {"code": v["normalized_code"], "approval_token": v["approval_token"]}
        # The same user in another MCP session may not use the token ...
        other = await a2.call_tool("execute_code", args)
        assert other.is_error and block_text(other.content[0]).startswith("TOKEN_SESSION_MISMATCH")
        # ... nor may another user ...
        async with http_client(url, TOKENS["bob"], mode="legacy") as b:
            stolen = await b.call_tool("execute_code", args)
        assert stolen.is_error and block_text(stolen.content[0]).startswith("TOKEN_USER_MISMATCH")
        # ... while the session that validated it can.
        ok = await a.call_tool("execute_code", args)
        assert not ok.is_error, ok.content
    recs = audit_records(service.settings)
    validated = next(r for r in recs if r["event"] == "validate")
    assert validated["user"] == "ana" and validated["groups"] == ["analysts"]
    assert validated["session"].startswith("mcp-") and len(validated["session"]) == 36
    ran = [r for r in recs if r["event"] == "executed"]
    assert len(ran) == 1 and ran[0]["session"] == validated["session"] and ran[0]["rows"] == 4
    refused = [r for r in recs if r.get("decision") == "refused"]
    assert [(r["user"], r["error"]) for r in refused] == [
        ("ana", "TOKEN_SESSION_MISMATCH"),
        ("bob", "TOKEN_USER_MISMATCH"),
    ]


async def test_sessionless_protocol_binds_tokens_to_the_credential(
    url: str, service: CodeModeService
) -> None:
    async with http_client(url, mode="auto") as c:
        assert c.protocol_version == "2026-07-28"
        v = (await c.call_tool("validate_code", {"code": EASY_SQL})).structured_content
        assert v is not None
        r = await c.call_tool(
            "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
        )
        assert not r.is_error, r.content
    session = audit_records(service.settings)[-1]["session"]
    assert session.startswith("cred-")


# -- JWT ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[Any, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public.decode()


def make_jwt(key: Any, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "sub": "carol",
        "iss": ISSUER,
        "aud": "sqlmode",
        "exp": now + 300,
        "iat": now,
        "groups": ["finance"],
    }
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg)


@pytest.fixture
def verifier(rsa_keys: tuple[Any, str]) -> ConfigTokenVerifier:
    return ConfigTokenVerifier(
        AuthConfig(jwt_public_key=rsa_keys[1], jwt_issuer=ISSUER, jwt_audience="sqlmode")
    )


async def test_a_valid_jwt_maps_subject_and_groups(
    verifier: ConfigTokenVerifier, rsa_keys: tuple[Any, str]
) -> None:
    access = await verifier.verify_token(make_jwt(rsa_keys[0]))
    assert access is not None and access.subject == "carol"
    assert access.claims is not None and access.claims["groups"] == ["finance"]


@pytest.mark.parametrize(
    "bad",
    [
        {"iss": "https://other-idp.example.com/"},
        {"aud": "another-service"},
        {"exp": int(time.time()) - 3600},
        {"sub": None},
        {"exp": None},
    ],
    ids=["wrong-issuer", "wrong-audience", "expired", "no-subject", "no-expiry"],
)
async def test_jwts_with_bad_claims_are_refused(
    verifier: ConfigTokenVerifier, rsa_keys: tuple[Any, str], bad: dict[str, Any]
) -> None:
    assert await verifier.verify_token(make_jwt(rsa_keys[0], **bad)) is None


async def test_jwt_signed_by_another_key_or_with_the_public_key_as_hmac_secret_is_refused(
    verifier: ConfigTokenVerifier, rsa_keys: tuple[Any, str]
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert await verifier.verify_token(make_jwt(other)) is None

    # Algorithm confusion: an HS256 token whose "secret" is the server's public key.
    # PyJWT refuses to produce one, so it is built by hand.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = {"sub": "mallory", "iss": ISSUER, "aud": "sqlmode", "exp": int(time.time()) + 60}
    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(rsa_keys[1].encode(), signing_input.encode(), hashlib.sha256).digest()
    assert await verifier.verify_token(f"{signing_input}.{b64(sig)}") is None
    unsigned = jwt.encode(
        {"sub": "mallory", "iss": ISSUER, "exp": int(time.time()) + 60},
        None,  # type: ignore[arg-type]  # PyJWT's annotation omits None, the only key alg "none" takes
        algorithm="none",
    )
    assert await verifier.verify_token(unsigned) is None


async def test_jwt_over_http(server_settings: Callable[..., Settings], rsa_keys: tuple[Any, str]) -> None:
    settings = server_settings({"auth": {"jwt_public_key": rsa_keys[1], "jwt_issuer": ISSUER}})
    async with CodeModeService(settings) as svc, running_http(svc) as url:
        async with http_client(url, make_jwt(rsa_keys[0], aud=None)) as c:
            r = await c.call_tool("validate_code", {"code": EASY_SQL})
        assert not r.is_error
        async with httpx2.AsyncClient() as h:
            refused = await h.post(
                url,
                json=LIST,
                headers={**ACCEPT, "authorization": f"Bearer {make_jwt(rsa_keys[0], iss='x')}"},
            )
        assert refused.status_code == 401
    rec = audit_records(settings)[-1]
    assert (rec["user"], rec["groups"]) == ("carol", ["finance"])


# -- configuration errors at start-up ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"tokens": {"short": {"user": "x"}}}, "shorter than 16"),
        ({"jwt_secret": "s" * 40}, "jwt_issuer is required"),
        ({"jwt_secret": "too-short", "jwt_issuer": ISSUER}, "at least 32"),
        ({"jwt_secret": "s" * 40, "jwt_issuer": ISSUER, "jwt_algorithms": ["RS256"]}, "no algorithm"),
        ({"jwt_public_key": "/no/such/key.pem", "jwt_issuer": ISSUER}, "cannot read the JWT public key"),
    ],
)
def test_bad_auth_config_is_a_clear_error(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ConfigTokenVerifier(AuthConfig.model_validate(auth))


async def test_http_serving_without_token_secret_is_a_startup_error(
    server_settings: Callable[..., Settings],
) -> None:
    settings = server_settings({"code_mode": {"token_secret": None}})
    with pytest.raises(SecretError, match="token_secret"):
        await serve(settings, transport="http", port=0)


def test_http_beyond_loopback_needs_credentials_and_known_hosts(
    server_settings: Callable[..., Settings], make_settings: Callable[..., Settings]
) -> None:
    anonymous = make_settings({"server": {"allowed_hosts": ["db.example:8000"]}})
    with pytest.raises(ConfigError, match="needs credentials"):
        http_security(anonymous, "0.0.0.0")
    with pytest.raises(ConfigError, match="allowed_hosts"):
        http_security(server_settings(), "0.0.0.0")
    verifier, auth, security = http_security(server_settings(), "10.1.2.3")
    assert verifier is not None and auth is not None
    assert security.enable_dns_rebinding_protection and "10.1.2.3:*" in security.allowed_hosts
