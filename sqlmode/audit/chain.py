"""The chain: canonical JSON records, each MACed (HMAC-SHA256 under the audit key) with its predecessor's MAC.

A record is one canonical JSON object (sorted keys, no spaces, UTF-8, no NaN)::

    {"at": ..., "event": ..., "kid": "a1", "mac": "<hex>", "prev": "<hex>", "replica": "...", "seq": 7, ...}

``mac`` = HMAC(key[kid], canonical(record without "mac")); ``prev`` is the previous record's ``mac``
(64 zeros for the first). Without the key nobody can produce a record, an edit or a re-chained log
that verifies. The anchor (the chain's last seq and mac) is MACed too, so removing records from the
end and rewriting the anchor to match needs the key as well.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AuditError, SecretError

GENESIS = "0" * 64
MIN_KEY_LENGTH = 32
RESERVED = ("seq", "at", "replica", "kid", "prev", "mac")
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_HINT = "Set SQLMODE_AUDIT_KEY (or audit.key) to a random string of at least 32 characters."

log = logging.getLogger("sqlmode.audit")


def canonical(record: dict[str, Any]) -> bytes:
    """The one byte form of a record; verification rejects any line that is not exactly this.

    A record holding a lone UTF-16 surrogate (text that arrived as invalid UTF-8 or as a JSON
    ``"\\ud800"`` escape) has no UTF-8 form: it is written with every non-ASCII character escaped,
    which reads back to the same record, whose canonical form is then that same line.
    """
    text = json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(
            record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=str
        ).encode("ascii")


class DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise DuplicateKeyError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_line(raw: bytes) -> dict[str, Any]:
    """A record from one line; ValueError unless it is a JSON object, without duplicate keys, canonical."""
    line = raw.rstrip(b"\n")
    rec = json.loads(line, object_pairs_hook=_no_duplicates)
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    if canonical(rec) != line:
        raise ValueError("not in canonical form (sorted keys, no spaces)")
    return rec


@dataclass
class AuditKeys:
    """The signing key and older keys that still verify (rotation by key id, like approval tokens)."""

    key_id: str
    key: bytes
    previous: dict[str, bytes] = field(default_factory=dict)

    def get(self, kid: Any) -> bytes | None:
        if kid == self.key_id:
            return self.key
        return self.previous.get(kid) if isinstance(kid, str) else None

    def mac(self, body: dict[str, Any], kid: str | None = None) -> str:
        key = self.get(kid or self.key_id)
        if key is None:
            raise AuditError(f"unknown audit key id {kid!r}")
        return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()

    def check(self, record: dict[str, Any]) -> bool:
        key = self.get(record.get("kid"))
        if key is None or not isinstance(record.get("mac"), str):
            return False
        body = {k: v for k, v in record.items() if k != "mac"}
        return hmac.compare_digest(hmac.new(key, canonical(body), hashlib.sha256).hexdigest(), record["mac"])

    def anchor(self, chain: str, seq: int, mac: str, *, durable: bool = False) -> dict[str, Any]:
        """The authenticated anchor of ``chain`` (a file path's name or a replica id) at ``seq``.

        ``durable``: the file's second anchor, written only once record ``seq`` is known to be on disk.
        """
        doc: dict[str, Any] = {"anchor": chain, "seq": seq, "mac": mac, "kid": self.key_id}
        if durable:
            doc["durable"] = True
        doc["amac"] = self.mac(doc)
        return doc

    def check_anchor(self, doc: dict[str, Any]) -> bool:
        key = self.get(doc.get("kid"))
        if key is None or not isinstance(doc.get("amac"), str):
            return False
        body = {k: v for k, v in doc.items() if k != "amac"}
        return hmac.compare_digest(hmac.new(key, canonical(body), hashlib.sha256).hexdigest(), doc["amac"])


def _key_bytes(value: str, what: str) -> bytes:
    if len(value) < MIN_KEY_LENGTH:
        raise SecretError(
            f"{what} is {len(value)} characters; at least {MIN_KEY_LENGTH} are required", key=what, hint=_HINT
        )
    return value.encode("utf-8")


def key_file_path(log_path: str | os.PathLike[str]) -> Path:
    p = Path(log_path)
    return p.with_name(p.name + ".key")


def keys_from_config(
    audit: Any, *, token_secret: str | None = None, log_path: str | None = None, create: bool = False
) -> AuditKeys:
    """The audit keys from ``[audit]`` (key, key_id, previous_keys); SecretError when unusable.

    Without ``audit.key``, a key file next to the log (``<log>.key``, mode 0600) is read, or made when
    ``create`` (stdio, the CLI): it proves nothing against whoever can read that folder, so a
    warning says so.
    """
    if not _KID.match(audit.key_id):
        raise SecretError(
            f"key id {audit.key_id!r} must be 1-32 characters of A-Z a-z 0-9 _ -", key="audit.key_id"
        )
    previous = {}
    for kid, value in (audit.previous_keys or {}).items():
        if not _KID.match(kid) or kid == audit.key_id:
            raise SecretError(f"bad or repeated audit key id {kid!r}", key="audit.previous_keys")
        previous[kid] = _key_bytes(value, f"audit.previous_keys.{kid}")
    if audit.key:
        if token_secret and audit.key == token_secret:
            raise SecretError("must differ from code_mode.token_secret", key="audit.key", hint=_HINT)
        return AuditKeys(audit.key_id, _key_bytes(audit.key, "audit.key"), previous)
    if not log_path:
        raise SecretError("is not set", key="audit.key", hint=_HINT)
    path = key_file_path(log_path)
    try:
        return AuditKeys(audit.key_id, _key_bytes(path.read_text().strip(), str(path)), previous)
    except FileNotFoundError:
        if not create:
            raise SecretError(
                f"is not set and there is no key file {path}", key="audit.key", hint=_HINT
            ) from None
    except OSError as e:
        raise SecretError(
            f"cannot read the audit key file {path}: {e.strerror}", key="audit.key", hint=_HINT
        ) from None
    key = secrets.token_urlsafe(48)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
    except FileExistsError:  # another process made it first
        return keys_from_config(audit, token_secret=token_secret, log_path=log_path, create=False)
    except OSError as e:
        raise AuditError(f"cannot create the audit key file {path}: {e.strerror}") from e
    log.warning(
        "audit.key is not set; the audit log is keyed by %s, which anyone who can read that folder can "
        "use to rewrite the log. Set SQLMODE_AUDIT_KEY and keep a copy away from this host.",
        path,
    )
    return AuditKeys(audit.key_id, key.encode("utf-8"), previous)


def is_intent(event: dict[str, Any]) -> bool:
    """Whether a query runs right after this record: it must be durable before the append returns.

    Every other record (decisions, outcomes, refusals, approvals) may wait for the group commit
    (``audit.flush_window_ms``). Callers can force either way with ``append_async(durable=...)``.
    """
    return event.get("event") == "execute" and event.get("decision") == "run"


def make_record(
    keys: AuditKeys, event: dict[str, Any], *, seq: int, at: str, replica: str, prev: str
) -> dict[str, Any]:
    record = {k: v for k, v in event.items() if k not in RESERVED}
    record.update(seq=seq, at=at, replica=replica, kid=keys.key_id, prev=prev)
    # Through canonical form and back: what is MACed is exactly what a reader will parse.
    record = json.loads(canonical(record))
    record["mac"] = keys.mac(record)
    return record
