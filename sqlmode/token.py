"""Approval tokens: an HMAC-signed promise that *this* code may run once, for *this* caller.

Format (every part base64url without padding, except the prefix and key id)::

    sqlmode.<key id>.<payload>.<signature>

The signature is HMAC-SHA256 over ``"<prefix>.<key id>.<payload>"``. The payload is
compact JSON::

    v    version (1)                 a    action ("read", "write", ...)
    c    code binding                r    risk level
    u    user                        iat  issued at (epoch seconds)
    s    session                     exp  expiry (epoch seconds)
    sh   schema binding              n    nonce (single use)
    ph   policy binding          b    boot id (only from a server without a durable state store)
    sc   source binding (only when the server rewrote the code it signed, see below)

Bindings are truncated SHA-256 digests of the values the caller passes (the code
binding keeps all 256 bits, the source binding 128; schema and policy keep 96, enough to notice a change,
which is all they are for), so tokens stay short enough for a model to copy.

:meth:`TokenService.verify` checks in a fixed order, each failure a distinct
:class:`~sqlmode.errors.TokenError`: malformed, unknown key, bad signature, expired
or not yet valid, code mismatch, user mismatch, session mismatch, schema changed,
policy changed, already used. The nonce is consumed only when everything else passed.

The code binding is of the normalized code, which the server may have rewritten: a DuckDB PIVOT
without IN list gets its values listed at validation, by a query. Executing the code as submitted
lists them again, so before that query runs the token must be checked against the submitted code:
such tokens also bind it (``sc``), checked with ``check(..., source=True)``.

Single use needs a nonce store shared by every replica (:mod:`sqlmode.state`). A service
without a durable store gives its TokenService a random per-process ``boot_id``: it is signed
into every token (``b``) and must match at verification, so a restart or another process voids
the token (``TOKEN_OTHER_INSTANCE``) instead of letting its nonce be forgotten. A service with a
durable store signs no boot id and refuses tokens that carry one.

:meth:`TokenService.check` verifies without consuming (the service consumes the nonce in its
async store once every other check passed); :meth:`TokenService.verify` checks and consumes in
the synchronous nonce store given at construction.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .config import Settings
from .errors import (
    SecretError,
    TokenCodeMismatchError,
    TokenExpiredError,
    TokenInstanceError,
    TokenMalformedError,
    TokenPolicyChangedError,
    TokenPrincipalMismatchError,
    TokenReplayError,
    TokenSchemaChangedError,
    TokenSignatureError,
    TokenUnknownKeyError,
)
from .state import MemoryStateStore, NonceStore, SqliteStateStore

log = logging.getLogger(__name__)

PREFIX = "sqlmode"
VERSION = 1
MIN_SECRET_LENGTH = 32
CLOCK_SKEW_SECONDS = 5
MAX_TOKEN_LENGTH = 4096
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")
_CODE_BYTES, _STATE_BYTES = 32, 12
# The source binding only gates listing a PIVOT's values (the full code binding is checked after):
# 128 bits keep it unforgeable and the token short enough to copy.
_SOURCE_BYTES = 16
# Key ids of per-process random secrets: a token carrying one that is not this process's key was
# signed by another run of the server, which says more than "unknown key" or "bad signature".
EPHEMERAL_KID_PREFIX = "ephemeral-"


def code_hash(normalized_code: str) -> str:
    """SHA-256 (hex) of the canonical form of ``normalized_code``.

    Canonical: line endings as ``\\n``, surrounding whitespace and trailing semicolons
    removed; nothing inside the statement changes, so different statements never collide.
    """
    canonical = normalized_code.replace("\r\n", "\n").strip().rstrip(";").rstrip()
    # surrogatepass: a lone surrogate (JSON may carry "\ud800") hashes instead of raising.
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


_TO_URL = bytes.maketrans(b"+/", b"-_")
_FROM_URL = bytes.maketrans(b"-_", b"+/")


def _b64e(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_TO_URL).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes | None:
    """Strict base64url: alphabet only, and the canonical encoding of its bytes."""
    if not _B64.match(text):
        return None
    try:
        data = binascii.a2b_base64(text.encode("ascii").translate(_FROM_URL) + b"=" * (-len(text) % 4))
    except binascii.Error:
        return None
    # Unused trailing bits would let two strings carry the same bytes; accept one.
    return data if _b64e(data) == text else None


@functools.lru_cache(maxsize=4096)
def _bind(value: str, size: int) -> str:
    # Cached: the schema and policy hashes repeat on every call, the code hash from
    # validate to execute.
    return _b64e(hashlib.sha256(value.encode("utf-8")).digest()[:size])


# -- nonce stores (sqlmode.state; the names here are kept for callers of the token layer alone) --

MemoryNonceStore = MemoryStateStore
SqliteNonceStore = SqliteStateStore


# -- tokens ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token approves."""

    version: int
    key_id: str
    code_hash: str
    user: str
    session: str
    schema_hash: str
    policy_hash: str
    action: str
    risk: str
    issued_at: datetime
    expires_at: datetime
    nonce: str


def _check_secret(secret: str | None, what: str) -> bytes:
    if not secret:
        raise SecretError(f"{what} is not set", key=what)
    if len(secret) < MIN_SECRET_LENGTH:
        raise SecretError(
            f"{what} is {len(secret)} characters; at least {MIN_SECRET_LENGTH} are required", key=what
        )
    return secret.encode("utf-8")


def _check_kid(kid: str, what: str) -> str:
    if not _KID.match(kid):
        raise SecretError(f"key id {kid!r} must be 1-32 characters of A-Z a-z 0-9 _ -", key=what)
    return kid


class TokenService:
    """Mints and verifies approval tokens. One signing key; older keys still verify."""

    def __init__(
        self,
        secret: str,
        *,
        key_id: str = "k1",
        previous_secrets: Mapping[str, str] | None = None,
        ttl_seconds: int = 300,
        nonce_store: NonceStore | None = None,
        clock: Callable[[], float] = time.time,
        clock_skew_seconds: float = CLOCK_SKEW_SECONDS,
        prefix: str = PREFIX,
        boot_id: str | None = None,
    ):
        self._kid = _check_kid(key_id, "code_mode.token_key_id")
        self.ephemeral = key_id.startswith(EPHEMERAL_KID_PREFIX)
        self._keys: dict[str, bytes] = {self._kid: _check_secret(secret, "code_mode.token_secret")}
        for kid, old in (previous_secrets or {}).items():
            _check_kid(kid, "code_mode.token_previous_secrets")
            if kid == self._kid:
                raise SecretError(
                    f"key id {kid!r} is both the signing key and a previous key",
                    key="code_mode.token_previous_secrets",
                )
            self._keys[kid] = _check_secret(old, f"code_mode.token_previous_secrets.{kid}")
        self.ttl_seconds = int(ttl_seconds)
        self._clock = clock
        self._skew = clock_skew_seconds
        self._nonces: NonceStore = nonce_store or MemoryNonceStore(clock)
        self._prefix = prefix
        self.boot_id = boot_id

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        allow_ephemeral: bool = False,
        nonce_store: NonceStore | None = None,
        clock: Callable[[], float] = time.time,
        boot_id: str | None = None,
    ) -> TokenService:
        """Build from ``code_mode``; a missing or short secret raises SecretError.

        With ``allow_ephemeral`` (stdio, demo) a missing or short secret is replaced by a
        random one for this process, with a warning: tokens then die with the process.
        """
        cm = settings.code_mode
        secret = cm.token_secret
        # Name where the secret came from (the TOML, or CODE_MODE_SECRET as its default).
        what = getattr(settings, "secret_source", "code_mode.token_secret")
        if allow_ephemeral and (not secret or len(secret) < MIN_SECRET_LENGTH):
            problem = "is not set" if not secret else f"is shorter than {MIN_SECRET_LENGTH} characters"
            log.warning(
                "%s %s; using an ephemeral random secret "
                "(approval tokens will not survive a restart or work across replicas)",
                what if secret else "neither CODE_MODE_SECRET nor code_mode.token_secret",
                problem if secret else "is set",
            )
            secret = secrets.token_urlsafe(48)
            key_id = EPHEMERAL_KID_PREFIX + secrets.token_hex(6)
        elif cm.token_key_id.startswith(EPHEMERAL_KID_PREFIX):
            raise SecretError(
                f"key ids starting with {EPHEMERAL_KID_PREFIX!r} are reserved for ephemeral secrets",
                key="code_mode.token_key_id",
            )
        elif not secret:
            raise SecretError(
                "no approval-token secret: CODE_MODE_SECRET is not set, nor is code_mode.token_secret",
                key="code_mode.token_secret",
            )
        else:
            _check_secret(secret, what)
            key_id = cm.token_key_id
        return cls(
            secret or "",
            key_id=key_id,
            previous_secrets=cm.token_previous_secrets,
            ttl_seconds=cm.token_ttl_seconds,
            nonce_store=nonce_store,
            clock=clock,
            boot_id=boot_id,
        )

    @property
    def key_id(self) -> str:
        return self._kid

    def _sign(self, key: bytes, signed: str) -> bytes:
        return hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest()

    def mint(
        self,
        *,
        code_hash: str,
        user: str,
        session: str,
        schema_hash: str,
        policy_hash: str,
        action: str,
        risk: str,
        ttl_seconds: int | None = None,
        source_hash: str | None = None,
    ) -> tuple[str, datetime]:
        """A token approving ``code_hash`` for ``user``/``session``; returns it and its expiry (UTC).

        ``source_hash``: the code as submitted, when the server rewrote it into ``code_hash``'s code.
        """
        iat = int(self._clock())
        exp = iat + int(ttl_seconds if ttl_seconds is not None else self.ttl_seconds)
        payload = {
            "v": VERSION,
            "c": _bind(code_hash, _CODE_BYTES),
            "u": user,
            "s": session,
            "sh": _bind(schema_hash, _STATE_BYTES),
            "ph": _bind(policy_hash, _STATE_BYTES),
            "a": str(action),
            "r": str(risk),
            "iat": iat,
            "exp": exp,
            "n": _b64e(secrets.token_bytes(12)),
        }
        if self.boot_id is not None:
            payload["b"] = self.boot_id
        if source_hash is not None:
            payload["sc"] = _bind(source_hash, _SOURCE_BYTES)
        body = _b64e(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        signed = f"{self._prefix}.{self._kid}.{body}"
        token = f"{signed}.{_b64e(self._sign(self._keys[self._kid], signed))}"
        return token, datetime.fromtimestamp(exp, UTC)

    def verify(
        self,
        token: str,
        *,
        code_hash: str,
        user: str,
        session: str,
        schema_hash: str,
        policy_hash: str,
    ) -> TokenClaims:
        """Check ``token`` against the current request and consume it; raise a TokenError if refused."""
        claims = self.check(
            token,
            code_hash=code_hash,
            user=user,
            session=session,
            schema_hash=schema_hash,
            policy_hash=policy_hash,
        )
        if not self._nonces.consume(claims.nonce, claims.expires_at.timestamp() + self._skew):
            raise TokenReplayError("the approval token was already used")
        return claims

    def nonce_expiry(self, claims: TokenClaims) -> float:
        """Until when a spent nonce must be remembered (expiry plus the allowed clock skew)."""
        return claims.expires_at.timestamp() + self._skew

    def check(
        self,
        token: str,
        *,
        code_hash: str,
        user: str,
        session: str,
        schema_hash: str,
        policy_hash: str,
        source: bool = False,
    ) -> TokenClaims:
        """Every check of :meth:`verify` except single use; the caller consumes ``claims.nonce``.

        With ``source``, ``code_hash`` is of the code as submitted, before the server rewrites it:
        it must match the token's source binding (a token without one approves no rewriting).
        """
        kid, payload = self._authentic(token)
        if payload.get("b") != self.boot_id:
            raise TokenInstanceError(
                "the approval token was issued by another server process (or before a restart)"
                if self.boot_id is not None
                else "the approval token was issued by a server without shared state"
            )
        now = self._clock()
        if now > payload["exp"] + self._skew:
            raise TokenExpiredError("the approval token has expired")
        if payload["iat"] > now + self._skew:
            raise TokenExpiredError(
                "the approval token is not valid yet (issued in the future)",
                code="TOKEN_NOT_YET_VALID",
                hint="Check the server clock, then call validate_code again.",
            )
        bound, size = (payload.get("sc", ""), _SOURCE_BYTES) if source else (payload["c"], _CODE_BYTES)
        if not hmac.compare_digest(bound, _bind(code_hash, size)):
            raise TokenCodeMismatchError("the approval token was issued for different code")
        if payload["u"] != user:
            raise TokenPrincipalMismatchError("the approval token was issued to a different user")
        if payload["s"] != session:
            raise TokenPrincipalMismatchError(
                "the approval token was issued in a different session", code="TOKEN_SESSION_MISMATCH"
            )
        if payload["sh"] != _bind(schema_hash, _STATE_BYTES):
            raise TokenSchemaChangedError("the database schema changed after the token was issued")
        if payload["ph"] != _bind(policy_hash, _STATE_BYTES):
            raise TokenPolicyChangedError("the policies changed after the token was issued")
        return TokenClaims(
            version=payload["v"],
            key_id=kid,
            code_hash=code_hash,
            user=user,
            session=session,
            schema_hash=schema_hash,
            policy_hash=policy_hash,
            action=payload["a"],
            risk=payload["r"],
            issued_at=datetime.fromtimestamp(payload["iat"], UTC),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            nonce=payload["n"],
        )

    def _authentic(self, token: Any) -> tuple[str, dict[str, Any]]:
        """Structure, key and signature; then the payload, parsed only once it is authentic."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            raise TokenMalformedError("the approval token is empty, too long or not plain text")
        parts = token.strip().split(".")
        if len(parts) != 4:
            raise TokenMalformedError("the approval token must have four dot-separated parts")
        prefix, kid, body, sig_text = parts
        if prefix != self._prefix:
            raise TokenMalformedError(f"not a sqlmode approval token (expected prefix {self._prefix!r})")
        sig, raw = _b64d(sig_text), _b64d(body)
        if not _KID.match(kid) or raw is None or sig is None or len(sig) != 32:
            raise TokenMalformedError("the approval token is not valid base64url")
        key = self._keys.get(kid)
        if key is None and kid.startswith(EPHEMERAL_KID_PREFIX):
            raise TokenUnknownKeyError(
                "the approval token was issued before the server restarted: it signs with an ephemeral "
                "secret, so a token ends with the server process that issued it (it was not altered)",
                code="TOKEN_SERVER_RESTARTED",
                hint="Call validate_code again for this code and execute with the new token.",
            )
        if key is None:
            raise TokenUnknownKeyError(
                f"the approval token was signed with an unknown key {kid!r}"
                + ("; this server signs with an ephemeral secret" if self.ephemeral else "")
            )
        if not hmac.compare_digest(self._sign(key, f"{prefix}.{kid}.{body}"), sig):
            raise TokenSignatureError("the approval token's signature does not match")
        return kid, _parse_payload(raw)


_FIELDS: dict[str, type] = {
    "v": int, "c": str, "u": str, "s": str, "sh": str, "ph": str,
    "a": str, "r": str, "iat": int, "exp": int, "n": str,
}  # fmt: skip


def _parse_payload(raw: bytes) -> dict[str, Any]:
    # Only reachable with a valid signature, i.e. for tokens some key holder produced.
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TokenMalformedError("the approval token's payload is not JSON") from None
    if not isinstance(payload, dict):
        raise TokenMalformedError("the approval token's payload is not an object")
    for name, typ in _FIELDS.items():
        value = payload.get(name)
        if not isinstance(value, typ) or isinstance(value, bool):
            raise TokenMalformedError(f"the approval token's payload lacks a valid {name!r}")
    for name in ("b", "sc"):
        if name in payload and not isinstance(payload[name], str):
            raise TokenMalformedError(f"the approval token's payload has an invalid {name!r}")
    if payload["v"] != VERSION:
        raise TokenMalformedError(f"unsupported approval token version {payload['v']}")
    if payload["exp"] < payload["iat"]:
        raise TokenMalformedError("the approval token expires before it was issued")
    return payload


__all__ = [
    "MIN_SECRET_LENGTH",
    "PREFIX",
    "MemoryNonceStore",
    "NonceStore",
    "SqliteNonceStore",
    "TokenClaims",
    "TokenService",
    "code_hash",
]
