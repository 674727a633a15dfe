"""HTTP authentication: bearer tokens mapped to principals in config, or JWTs checked against a key.

    [auth.tokens."a-long-random-token-for-ana"]      # static bearer tokens
    user = "ana"
    groups = ["analysts"]

    [auth]                                            # or JWTs from an identity provider
    jwt_public_key = "keys/idp.pem"                   # PEM text or a file (RS*/ES*/PS*/EdDSA)
    jwt_secret = "${JWT_SECRET}"                      # or a shared secret (HS*)
    jwt_issuer = "https://idp.example.com/"           # required with a key: `iss` must equal it
    jwt_audience = "sqlmode"                          # optional: `aud` must contain it
    groups_claim = "groups"

:class:`ConfigTokenVerifier` is the SDK's ``TokenVerifier``: the HTTP app refuses a request
without a valid credential with 401 before any MCP message is read. A verified credential
becomes an ``AccessToken`` whose ``subject`` is the user and whose ``claims`` carry the groups;
:func:`principal_of` reads them back inside a tool. The JWT algorithm family is chosen by
the key that is configured, never by the token, so an HS256 token "signed" with the public
key is refused.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken

from .config import AuthConfig, Settings
from .errors import ConfigError

__all__ = [
    "MIN_STATIC_TOKEN_LENGTH",
    "ConfigTokenVerifier",
    "build_token_verifier",
    "from_identity_provider",
    "principal_of",
]

log = logging.getLogger("sqlmode.auth")

MIN_STATIC_TOKEN_LENGTH = 16
_LEEWAY_SECONDS = 30
_HMAC_ALGS = {"HS256", "HS384", "HS512"}


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def claim_groups(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [g for g in value.replace(",", " ").split() if g]
    if isinstance(value, list | tuple):
        return [str(g) for g in value]
    return None


class ConfigTokenVerifier:
    """Verifies static bearer tokens and JWTs from ``[auth]``. Returns None for anything else."""

    def __init__(self, auth: AuthConfig, base_dir: Path | None = None):
        # Keyed by sha256: a lookup reveals nothing about configured tokens through timing.
        self._static: dict[str, tuple[str, list[str]]] = {}
        for token, who in auth.tokens.items():
            if len(token) < MIN_STATIC_TOKEN_LENGTH:
                raise ConfigError(
                    f"a bearer token for user {who.user!r} is shorter than "
                    f"{MIN_STATIC_TOKEN_LENGTH} characters",
                    key="auth.tokens",
                    hint="Use long random tokens, e.g. from secrets.token_urlsafe(32).",
                )
            self._static[_fingerprint(token)] = (who.user, list(who.groups))
        self._issuer = auth.jwt_issuer
        self._audience = auth.jwt_audience
        self._groups_claim = auth.groups_claim
        self._keys: dict[str, Any] = {}  # algorithm -> key
        algs = list(auth.jwt_algorithms)
        if auth.jwt_public_key:
            key = _read_key(auth.jwt_public_key, base_dir)
            self._keys.update({a: key for a in algs if a not in _HMAC_ALGS})
        if auth.jwt_secret:
            if len(auth.jwt_secret) < 32:
                raise ConfigError("auth.jwt_secret must be at least 32 characters", key="auth.jwt_secret")
            self._keys.update({a: auth.jwt_secret for a in algs if a in _HMAC_ALGS})
        if (auth.jwt_public_key or auth.jwt_secret) and not self._keys:
            raise ConfigError(
                f"no algorithm in auth.jwt_algorithms {algs} fits the configured JWT key",
                key="auth.jwt_algorithms",
            )
        if self._keys and not self._issuer:
            raise ConfigError(
                "auth.jwt_issuer is required when a JWT key is configured",
                key="auth.jwt_issuer",
                hint="Set it to the `iss` your identity provider puts in its tokens.",
            )

    @property
    def enabled(self) -> bool:
        return bool(self._static or self._keys)

    async def verify_token(self, token: str) -> AccessToken | None:
        """An AccessToken for a configured bearer token or a valid JWT; None refuses (401)."""
        fp = _fingerprint(token)
        who = self._static.get(fp)
        if who is not None:
            user, groups = who
            return AccessToken(
                token=fp,
                client_id=user,
                subject=user,
                scopes=[],
                claims={"groups": groups, "method": "token"},
            )
        if self._keys and token.count(".") == 2:
            return self._verify_jwt(token, fp)
        log.info(
            "refused an unknown bearer token", extra={"event": "auth_refused", "reason": "unknown token"}
        )
        return None

    def _verify_jwt(self, token: str, fp: str) -> AccessToken | None:
        # Imported here: PyJWT (and cryptography behind it) is for HTTP serving with an identity
        # provider; a stdio server or static tokens never load it.
        import jwt

        try:
            alg = jwt.get_unverified_header(token).get("alg")
            key = self._keys.get(alg) if isinstance(alg, str) else None
            if key is None or not isinstance(alg, str):
                raise jwt.InvalidAlgorithmError(f"algorithm {alg!r} is not accepted")
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self._issuer,
                audience=self._audience,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub"]},
            )
        except jwt.PyJWTError as e:
            log.info("refused a JWT: %s", e, extra={"event": "auth_refused", "reason": str(e)})
            return None
        user = claims["sub"]
        if not usable_subject(user):
            # An empty subject would become policy.default_user (with its local groups).
            log.info("refused a JWT: unusable sub", extra={"event": "auth_refused", "reason": "bad sub"})
            return None
        return AccessToken(
            token=fp,
            client_id=user,
            subject=user,
            scopes=[],
            expires_at=int(claims["exp"]),
            claims={
                "groups": claim_groups(claims.get(self._groups_claim)),
                "iss": claims["iss"],
                "method": "jwt",
            },
        )


def usable_subject(sub: Any) -> bool:
    """A non-empty string without surrounding spaces or control characters."""
    return (
        isinstance(sub, str)
        and bool(sub.strip())
        and sub == sub.strip()
        and len(sub) <= 256
        and all(ch.isprintable() for ch in sub)
    )


def _read_key(value: str, base_dir: Path | None) -> str:
    if "-----BEGIN" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read the JWT public key: {e.strerror or e}", path=str(path)) from None


def build_token_verifier(settings: Settings) -> ConfigTokenVerifier | None:
    """The verifier for ``[auth]``, or None when no credentials are configured."""
    verifier = ConfigTokenVerifier(settings.auth, settings.base_dir)
    return verifier if verifier.enabled else None


def principal_of(request: Any = None) -> tuple[str, list[str] | None, str] | None:
    """(user, groups, credential fingerprint) of the authenticated HTTP request, or None.

    Reads the request's own ``scope["user"]`` when the transport hands the request over,
    else the SDK's per-request context variable.
    """
    access = _access_of(request)
    if access is None:
        return None
    groups = (access.claims or {}).get("groups")
    return access.subject or access.client_id, (list(groups) if groups else None), access.token


def from_identity_provider(request: Any = None) -> bool:
    """Whether the request's credential is a JWT: its user is kept apart from ``[policy.users]``."""
    access = _access_of(request)
    return access is not None and (access.claims or {}).get("method") == "jwt"


def _access_of(request: Any) -> AccessToken | None:
    access: AccessToken | None = None
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if isinstance(user, AuthenticatedUser):
        access = user.access_token
    if access is None:
        access = get_access_token()
    return access
