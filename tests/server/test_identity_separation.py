"""An identity provider's subject is never a local user (issue 18 item 6).

An empty or blank ``sub`` is refused with 401; a ``sub`` that happens to equal a ``[policy.users]``
name (``local`` included) gets the token's groups only. Checked on the HTTP status, the policy
decision and the audit record.
"""

from __future__ import annotations

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
from sqlmode.service import CodeModeService
from tests.server.conftest import http_client, running_http

ISSUER = "https://idp.example.com/"
ACCEPT = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
PII_SQL = "SELECT name FROM customers ORDER BY id LIMIT 3"
POLICY = Path(__file__).resolve().parents[2] / "policies" / "examples" / "sensitive-columns.cedar"


@pytest.fixture(scope="module")
def keys() -> tuple[Any, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem.decode()


def token(key: Any, **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "carol", "iss": ISSUER, "exp": now + 300, "iat": now, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256")


@pytest.mark.parametrize("sub", ["", " ", "\t\n", " local", "local ", "lo\x1bcal", "x" * 300])
async def test_unusable_subjects_are_refused(keys: tuple[Any, str], sub: str) -> None:
    verifier = ConfigTokenVerifier(AuthConfig(jwt_public_key=keys[1], jwt_issuer=ISSUER))
    assert await verifier.verify_token(token(keys[0], sub=sub)) is None
    assert await verifier.verify_token(token(keys[0], sub="local")) is not None


@pytest.fixture
def settings(make_settings: Callable[..., Settings], keys: tuple[Any, str]) -> Settings:
    return make_settings(
        {
            "auth": {"jwt_public_key": keys[1], "jwt_issuer": ISSUER},
            "policy": {
                "paths": [str(POLICY)],
                "users": {"local": {"groups": ["pii_readers"]}, "ana": {"groups": ["pii_readers"]}},
            },
        }
    )


def audit(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(x) for x in Path(settings.audit.path).read_text().splitlines() if x.strip()]


async def test_an_empty_subject_gets_401_over_http(settings: Settings, keys: tuple[Any, str]) -> None:
    async with CodeModeService(settings) as svc, running_http(svc) as url, httpx2.AsyncClient() as h:
        for sub in ("", "   "):
            r = await h.post(
                url, json=LIST, headers={**ACCEPT, "authorization": f"Bearer {token(keys[0], sub=sub)}"}
            )
            assert r.status_code == 401
        ok = await h.post(url, json=LIST, headers={**ACCEPT, "authorization": f"Bearer {token(keys[0])}"})
        assert ok.status_code != 401  # past authentication (400: no MCP session was opened)


@pytest.mark.parametrize("sub", ["local", "ana"])
async def test_a_subject_named_like_a_local_user_does_not_get_its_groups(
    settings: Settings, keys: tuple[Any, str], sub: str
) -> None:
    async with CodeModeService(settings) as svc:
        # The local user (CLI, stdio) is in pii_readers by [policy.users]: allowed.
        assert (await svc.validate(PII_SQL, user=sub)).is_valid
        async with running_http(svc) as url:
            async with http_client(url, token(keys[0], sub=sub)) as c:
                r = await c.call_tool("validate_code", {"code": PII_SQL})
            assert r.structured_content is not None and r.structured_content["is_valid"] is False
            assert any(v["code"] == "COLUMN_NOT_ALLOWED" for v in r.structured_content["violations"])
            # The same subject with the group in its own token is allowed.
            async with http_client(url, token(keys[0], sub=sub, groups=["pii_readers"])) as c:
                r = await c.call_tool("validate_code", {"code": PII_SQL})
            assert r.structured_content is not None and r.structured_content["is_valid"] is True
    http = [x for x in audit(settings) if x["session"].startswith(("mcp-", "cred-"))]
    assert [(x["user"], x["groups"], x["decision"]) for x in http if x["event"] == "validate"] == [
        (sub, [], "denied"),
        (sub, ["pii_readers"], "allowed"),
    ]
