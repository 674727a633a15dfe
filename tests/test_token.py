"""Approval tokens: binding, tampering, expiry, replay, rotation, malformed input."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime
from typing import Any, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlmode.config import settings_from_dict
from sqlmode.errors import (
    SecretError,
    TokenCodeMismatchError,
    TokenError,
    TokenExpiredError,
    TokenMalformedError,
    TokenPolicyChangedError,
    TokenPrincipalMismatchError,
    TokenReplayError,
    TokenSchemaChangedError,
    TokenSignatureError,
    TokenUnknownKeyError,
)
from sqlmode.token import MemoryNonceStore, SqliteNonceStore, TokenService, code_hash

SECRET = "s" * 32
OLD_SECRET = "o" * 40
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Binding(TypedDict):
    """What a token is bound to: the keyword arguments ``mint`` and ``verify`` share."""

    code_hash: str
    user: str
    session: str
    schema_hash: str
    policy_hash: str


BIND: Binding = {
    "code_hash": code_hash("SELECT id FROM orders LIMIT 1000"),
    "user": "alice",
    "session": "sess-1",
    "schema_hash": "schema-v1",
    "policy_hash": "policy-v1",
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(clock: Clock) -> TokenService:
    return TokenService(
        SECRET, key_id="k2", previous_secrets={"k1": OLD_SECRET}, ttl_seconds=300, clock=clock
    )


def mint(svc: TokenService) -> str:
    return svc.mint(**BIND, action="read", risk="low")[0]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_round_trip_returns_claims_and_utc_expiry(svc: TokenService, clock: Clock) -> None:
    token, expires_at = svc.mint(**BIND, action="write", risk="high")
    assert expires_at == datetime.fromtimestamp(T0 + 300, UTC)
    assert token.startswith("sqlmode.k2.") and token.count(".") == 3
    claims = svc.verify(token, **BIND)
    assert (claims.user, claims.session, claims.action, claims.risk) == ("alice", "sess-1", "write", "high")
    assert claims.key_id == "k2" and claims.code_hash == BIND["code_hash"]
    assert claims.expires_at == expires_at and claims.issued_at == datetime.fromtimestamp(T0, UTC)


def test_token_is_short_enough_to_copy(svc: TokenService) -> None:
    assert len(mint(svc)) < 400


def test_code_hash_is_canonical_but_never_merges_different_code() -> None:
    assert code_hash("SELECT 1;\r\n") == code_hash("  SELECT 1") == code_hash("SELECT 1 ;")
    assert code_hash("SELECT 1") != code_hash("SELECT 2")
    assert code_hash("SELECT 'a  b'") != code_hash("SELECT 'a b'")
    assert len(code_hash("x")) == 64


# -- every field tampered ------------------------------------------------------------


PAYLOAD_FIELDS = ["v", "c", "u", "s", "sh", "ph", "a", "r", "iat", "exp", "n"]


@pytest.mark.parametrize("field", PAYLOAD_FIELDS)
def test_tampering_any_payload_field_breaks_the_signature(svc: TokenService, field: str) -> None:
    prefix, kid, body, sig = mint(svc).split(".")
    payload = json.loads(unb64(body))
    value = payload[field]
    payload[field] = value + 1 if isinstance(value, int) else value + "x"
    forged = ".".join([prefix, kid, b64(json.dumps(payload).encode()), sig])
    with pytest.raises(TokenSignatureError) as e:
        svc.verify(forged, **BIND)
    assert e.value.code == "TOKEN_BAD_SIGNATURE"


def test_upgrading_action_from_read_to_write_is_refused(svc: TokenService) -> None:
    prefix, kid, body, sig = mint(svc).split(".")
    payload = json.loads(unb64(body))
    payload.update(a="write", r="low")
    with pytest.raises(TokenSignatureError):
        svc.verify(".".join([prefix, kid, b64(json.dumps(payload).encode()), sig]), **BIND)


@pytest.mark.parametrize("part", [0, 1, 2, 3])
def test_flipping_any_character_of_any_part_is_refused(svc: TokenService, part: int) -> None:
    token = mint(svc)
    parts = token.split(".")
    for i in range(len(parts[part])):
        chars = list(parts[part])
        chars[i] = "A" if chars[i] != "A" else "B"
        bad = ".".join([*parts[:part], "".join(chars), *parts[part + 1 :]])
        with pytest.raises(TokenError):
            svc.verify(bad, **BIND)
    svc.verify(token, **BIND)  # the original is still good (failures do not burn it)


def test_wrong_prefix_is_malformed(svc: TokenService) -> None:
    token = mint(svc)
    with pytest.raises(TokenMalformedError):
        svc.verify("sqlmodf" + token[len("sqlmode") :], **BIND)


def test_signature_with_noncanonical_trailing_bits_is_refused(svc: TokenService) -> None:
    token = mint(svc)
    *head, sig = token.split(".")
    raw = unb64(sig)
    variants = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" if c != sig[-1]]
    same_bytes = [sig[:-1] + c for c in variants if _decodes_to(sig[:-1] + c, raw)]
    assert same_bytes, "43-char base64 of 32 bytes has spare bits"
    for alt in same_bytes:
        with pytest.raises(TokenMalformedError):
            svc.verify(".".join([*head, alt]), **BIND)


def _decodes_to(text: str, raw: bytes) -> bool:
    try:
        return unb64(text) == raw
    except ValueError:
        return False


# -- binding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error", "code"),
    [
        ("code_hash", code_hash("SELECT * FROM credentials"), TokenCodeMismatchError, "TOKEN_CODE_MISMATCH"),
        ("user", "mallory", TokenPrincipalMismatchError, "TOKEN_USER_MISMATCH"),
        ("session", "sess-2", TokenPrincipalMismatchError, "TOKEN_SESSION_MISMATCH"),
        ("schema_hash", "schema-v2", TokenSchemaChangedError, "TOKEN_SCHEMA_CHANGED"),
        ("policy_hash", "policy-v2", TokenPolicyChangedError, "TOKEN_POLICY_CHANGED"),
    ],
)
def test_binding_mismatch(
    svc: TokenService, field: str, value: str, error: type[TokenError], code: str
) -> None:
    token = mint(svc)
    wrong: dict[str, Any] = {**BIND, field: value}  # the field is a parameter: no TypedDict key
    with pytest.raises(error) as e:
        svc.verify(token, **wrong)
    assert e.value.code == code and e.value.hint
    svc.verify(token, **BIND)


def test_errors_come_in_the_fixed_order(svc: TokenService, clock: Clock) -> None:
    """With everything wrong at once, each check reports only after the earlier ones pass."""
    token = mint(svc)
    svc.verify(token, **BIND)  # now used
    clock.now += 10_000
    wrong = {"code_hash": "c2", "user": "u2", "session": "s2", "schema_hash": "h2", "policy_hash": "p2"}
    # each step fixes one more field (and the clock) of the all-wrong request
    order: list[tuple[type[TokenError], dict[str, Any]]] = [
        (TokenExpiredError, {}),
        (TokenCodeMismatchError, {"now": T0}),
        (TokenPrincipalMismatchError, {"code_hash": BIND["code_hash"]}),
        (TokenPrincipalMismatchError, {"user": BIND["user"]}),
        (TokenSchemaChangedError, {"session": BIND["session"]}),
        (TokenPolicyChangedError, {"schema_hash": BIND["schema_hash"]}),
        (TokenReplayError, {"policy_hash": BIND["policy_hash"]}),
    ]
    for error, fix in order:
        clock.now = fix.pop("now", clock.now)
        wrong.update(fix)
        with pytest.raises(error):
            svc.verify(token, **wrong)
    unknown = TokenService("u" * 32, key_id="k9", clock=clock)
    with pytest.raises(TokenUnknownKeyError):
        svc.verify(mint(unknown), **wrong)


# -- time ------------------------------------------------------------------------------


def test_expired_after_ttl_plus_skew(svc: TokenService, clock: Clock) -> None:
    token = mint(svc)
    clock.now = T0 + 300 + 5  # skew tolerated
    svc.verify(token, **BIND)
    token = mint(svc)
    clock.now += 300 + 6
    with pytest.raises(TokenExpiredError) as e:
        svc.verify(token, **BIND)
    assert e.value.code == "TOKEN_EXPIRED"


def test_not_yet_valid_beyond_skew(svc: TokenService, clock: Clock) -> None:
    clock.now = T0 + 60
    token = mint(svc)
    clock.now = T0
    with pytest.raises(TokenExpiredError) as e:
        svc.verify(token, **BIND)
    assert e.value.code == "TOKEN_NOT_YET_VALID"
    clock.now = T0 + 57  # 3 s behind the issuer: within the skew
    svc.verify(token, **BIND)


def test_per_mint_ttl(svc: TokenService, clock: Clock) -> None:
    token, exp = svc.mint(**BIND, action="delete", risk="critical", ttl_seconds=30)
    assert exp == datetime.fromtimestamp(T0 + 30, UTC)
    clock.now += 40
    with pytest.raises(TokenExpiredError):
        svc.verify(token, **BIND)


# -- single use ---------------------------------------------------------------------------


def test_replay_is_refused(svc: TokenService) -> None:
    token = mint(svc)
    svc.verify(token, **BIND)
    with pytest.raises(TokenReplayError) as e:
        svc.verify(token, **BIND)
    assert e.value.code == "TOKEN_ALREADY_USED"


def test_memory_store_sweeps_expired_nonces(clock: Clock) -> None:
    store = MemoryNonceStore(clock, sweep_every=3)
    assert store.consume("a", T0 + 1) and store.consume("b", T0 + 100)
    assert not store.consume("a", T0 + 1)
    clock.now = T0 + 50
    assert store.consume("c", T0 + 200)  # the third write sweeps the expired "a"
    assert len(store) == 2 and not store.consume("b", T0 + 100)


def test_sqlite_store_is_shared_between_services(tmp_path, clock: Clock) -> None:
    path = tmp_path / "nonces.sqlite"
    one = TokenService(SECRET, clock=clock, nonce_store=SqliteNonceStore(path, clock))
    two = TokenService(SECRET, clock=clock, nonce_store=SqliteNonceStore(path, clock))
    token = mint(one)
    two.verify(token, **BIND)
    with pytest.raises(TokenReplayError):
        one.verify(token, **BIND)


# -- keys --------------------------------------------------------------------------------


def test_rotation_old_key_verifies_new_key_signs(clock: Clock) -> None:
    before = TokenService(OLD_SECRET, key_id="k1", clock=clock)
    after = TokenService(SECRET, key_id="k2", previous_secrets={"k1": OLD_SECRET}, clock=clock)
    old_token = mint(before)
    assert after.verify(old_token, **BIND).key_id == "k1"
    assert mint(after).split(".")[1] == "k2"
    retired = TokenService(SECRET, key_id="k2", clock=clock)
    with pytest.raises(TokenUnknownKeyError) as e:
        retired.verify(mint(before), **BIND)
    assert e.value.code == "TOKEN_UNKNOWN_KEY"


def test_same_key_id_with_another_secret_is_a_bad_signature(clock: Clock) -> None:
    a = TokenService(SECRET, key_id="k1", clock=clock)
    b = TokenService("z" * 32, key_id="k1", clock=clock)
    with pytest.raises(TokenSignatureError):
        b.verify(mint(a), **BIND)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"secret": ""}, "not set"),
        ({"secret": "short"}, "at least 32"),
        ({"secret": SECRET, "previous_secrets": {"k0": "short"}}, "previous_secrets.k0"),
        ({"secret": SECRET, "key_id": "bad.kid"}, "key id"),
        ({"secret": SECRET, "key_id": "k1", "previous_secrets": {"k1": OLD_SECRET}}, "both"),
    ],
)
def test_bad_key_configuration(kwargs: dict, fragment: str) -> None:
    secret = kwargs.pop("secret")
    with pytest.raises(SecretError) as e:
        TokenService(secret, **kwargs)
    assert fragment in str(e.value) and e.value.code == "SECRET_INVALID"


def _settings(**code_mode):
    return settings_from_dict({"database": {"url": "duckdb:///:memory:"}, "code_mode": code_mode})


def test_from_settings_uses_config_keys_and_ttl(clock: Clock) -> None:
    s = _settings(
        token_secret=SECRET,
        token_key_id="k7",
        token_previous_secrets={"k6": OLD_SECRET},
        token_ttl_seconds=60,
    )
    svc = TokenService.from_settings(s, clock=clock)
    token, exp = svc.mint(**BIND, action="read", risk="low")
    assert token.split(".")[1] == "k7" and exp == datetime.fromtimestamp(T0 + 60, UTC)
    assert svc.verify(mint(TokenService(OLD_SECRET, key_id="k6", clock=clock)), **BIND).key_id == "k6"


def test_from_settings_refuses_missing_or_short_secret() -> None:
    with pytest.raises(SecretError, match="not set"):
        TokenService.from_settings(_settings())
    with pytest.raises(SecretError, match="at least 32"):
        TokenService.from_settings(_settings(token_secret="x" * 31))


def test_from_settings_ephemeral_replaces_a_short_secret(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sqlmode.token"):
        svc = TokenService.from_settings(_settings(token_secret="x" * 31), allow_ephemeral=True)
    assert "shorter than 32" in caplog.text
    token = mint(svc)
    assert svc.verify(token, **BIND).user == "alice"
    with pytest.raises(TokenUnknownKeyError):  # not signed with the short secret, nor with its key id
        TokenService("x" * 31 + "y", key_id="k1").verify(token, **BIND)


def test_from_settings_ephemeral_secret_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sqlmode.token"):
        svc = TokenService.from_settings(_settings(), allow_ephemeral=True)
    assert "ephemeral" in caplog.text
    other = TokenService.from_settings(_settings(), allow_ephemeral=True)
    token = mint(svc)
    svc.verify(token, **BIND)
    # A new process: a new secret, and the truth about it (not "the token was altered").
    with pytest.raises(TokenUnknownKeyError) as e:
        other.verify(mint(svc), **BIND)
    assert e.value.code == "TOKEN_SERVER_RESTARTED"
    assert "server restarted" in e.value.message and "not altered" in e.value.message
    assert "validate_code again" in e.value.hint


def test_an_ephemeral_server_names_a_configured_key_it_does_not_hold() -> None:
    ephemeral = TokenService.from_settings(_settings(), allow_ephemeral=True)
    with pytest.raises(TokenUnknownKeyError, match="'k1'; this server signs with an ephemeral secret") as e:
        ephemeral.verify(mint(TokenService(SECRET, key_id="k1")), **BIND)
    assert e.value.code == "TOKEN_UNKNOWN_KEY"


def test_the_ephemeral_key_id_prefix_is_reserved() -> None:
    with pytest.raises(SecretError, match="reserved"):
        TokenService.from_settings(_settings(token_secret=SECRET, token_key_id="ephemeral-1"))


# -- malformed input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "   ",
        "sqlmode",
        "sqlmode.k2",
        "sqlmode.k2.abc",
        "sqlmode.k2.abc.def.ghi",
        "sqlmode..abc.def",
        "sqlmode.k2.a+b.def",
        "sqlmode.k2.abc.d=f",
        "sqlmode.k2.abc.short",
        "sqlmode.k2.ä.abc",
        "x" * 5000,
        None,
        12345,
    ],
)
def test_malformed_tokens(svc: TokenService, token) -> None:
    with pytest.raises(TokenMalformedError) as e:
        svc.verify(token, **BIND)
    assert e.value.code == "TOKEN_MALFORMED"


def _signed(svc_secret: str, kid: str, body: bytes) -> str:
    import hashlib
    import hmac

    signed = f"sqlmode.{kid}.{b64(body)}"
    return signed + "." + b64(hmac.new(svc_secret.encode(), signed.encode(), hashlib.sha256).digest())


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1,2]",
        b'{"v":1}',
        json.dumps({f: 1 for f in PAYLOAD_FIELDS}).encode(),
        b"\xff\xfe",
    ],
)
def test_signed_but_malformed_payload(svc: TokenService, body: bytes) -> None:
    with pytest.raises(TokenMalformedError):
        svc.verify(_signed(SECRET, "k2", body), **BIND)


def test_signed_payload_with_future_version_or_inverted_times(svc: TokenService) -> None:
    _, _, body, _ = mint(svc).split(".")
    payload = json.loads(unb64(body))
    for change in ({"v": 2}, {"exp": payload["iat"] - 1}, {"iat": True}):
        with pytest.raises(TokenMalformedError):
            svc.verify(_signed(SECRET, "k2", json.dumps({**payload, **change}).encode()), **BIND)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_arbitrary_text_only_raises_token_errors(text: str) -> None:
    svc = TokenService(SECRET, key_id="k2")
    with pytest.raises(TokenError):
        svc.verify(text, **BIND)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_tokens_are_refused(data: st.DataObject) -> None:
    svc = TokenService(SECRET, key_id="k2")
    token = mint(svc)
    i = data.draw(st.integers(0, len(token) - 1))
    ch = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[i]))
    mutated = token[:i] + ch + token[i + 1 :]
    if mutated.strip() == token:
        return  # whitespace at the ends is forgiven
    with pytest.raises(TokenError):
        svc.verify(mutated, **BIND)


def test_schema_change_invalidates_outstanding_tokens(svc: TokenService) -> None:
    """Bound to the snapshot's hash: a new column (or a newly blocked one) changes it."""
    from sqlmode.schema.snapshot import ColumnInfo, SchemaSnapshot, TableInfo

    def snapshot(*cols: str, blocked: tuple[str, ...] = ()) -> SchemaSnapshot:
        table = TableInfo("orders", tuple(ColumnInfo(c, "INTEGER") for c in cols))
        return SchemaSnapshot.build("duckdb", "w", [table], blocked_fields=list(blocked))

    before = snapshot("id", "total")
    bind: Binding = {**BIND, "schema_hash": before.schema_hash}
    for after in (snapshot("id", "total", "status"), snapshot("id", "total", blocked=("orders.total",))):
        token = svc.mint(**bind, action="read", risk="low")[0]
        with pytest.raises(TokenSchemaChangedError):
            changed: Binding = {**bind, "schema_hash": after.schema_hash}
            svc.verify(token, **changed)
    token = svc.mint(**bind, action="read", risk="low")[0]
    same: Binding = {**bind, "schema_hash": snapshot("id", "total").schema_hash}
    assert svc.verify(token, **same)


def test_a_rewritten_code_s_token_binds_the_submitted_code_too(svc: TokenService) -> None:
    """The server rewrote the submitted code (a PIVOT's values listed): ``sc`` binds what was sent."""
    source = code_hash("PIVOT t ON c USING sum(x)")
    token, _ = svc.mint(**BIND, action="read", risk="low", source_hash=source)
    assert len(token) < 400
    # The submitted code, checked before the rewrite; the rewritten code, checked as usual.
    submitted: Binding = {**BIND, "code_hash": source}
    assert svc.check(token, **submitted, source=True).nonce
    assert svc.check(token, **BIND).code_hash == BIND["code_hash"]
    # Each binding answers only its own question.
    with pytest.raises(TokenCodeMismatchError):
        svc.check(token, **BIND, source=True)
    with pytest.raises(TokenCodeMismatchError):
        svc.check(token, **submitted)
    # A token minted for code the server did not rewrite approves no rewriting.
    with pytest.raises(TokenCodeMismatchError):
        svc.check(mint(svc), **BIND, source=True)


def test_code_hash_of_text_with_a_lone_surrogate_is_a_hash() -> None:
    # A JSON "\ud800" escape or invalid UTF-8 from argv: hashed, not an exception in the access log.
    assert code_hash("SELECT \udcff") == code_hash("SELECT \udcff;") != code_hash("SELECT \udcfe")
