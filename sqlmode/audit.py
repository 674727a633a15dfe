"""Append-only, hash-chained audit log (JSONL).

Every validation and every execution becomes one JSON line. Each record carries the
hash of the previous one (``prev``) and its own ``hash`` = sha256 over its canonical
JSON without ``hash``; editing, removing or reordering any record breaks the chain,
which :func:`verify_audit_log` reports with the line number. A record is written and
fsync'ed before the caller goes on: when that fails, the caller must refuse the
operation (:class:`AuditError`), so nothing runs unaudited.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .errors import AuditError

GENESIS = "0" * 64


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(_canonical(body)).hexdigest()


class AuditSink(Protocol):
    def append(self, event: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class NullAuditLog:
    """Used only when audit.enabled is false (development)."""

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        return event

    def close(self) -> None:
        pass


class AuditLog:
    """A JSONL file, chained and fsync'ed record by record. Thread-safe within a process."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True):
        self.path = Path(path)
        self._fsync = fsync
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._seq, self._prev = self._tail()
            self._fh = open(self.path, "ab")  # noqa: SIM115 - held open for the log's lifetime
        except OSError as e:
            raise AuditError(f"cannot open audit log {self.path}: {e.strerror or e}") from e

    def _tail(self) -> tuple[int, str]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0, GENESIS
        last = b""
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            pos = fh.tell()
            chunk = b""
            while pos > 0 and chunk.count(b"\n") < 2:
                step = min(4096, pos)
                pos -= step
                fh.seek(pos)
                chunk = fh.read(step) + chunk
            lines = [ln for ln in chunk.splitlines() if ln.strip()]
            last = lines[-1] if lines else b""
        try:
            rec = json.loads(last)
            return int(rec["seq"]), str(rec["hash"])
        except (ValueError, KeyError, TypeError) as e:
            raise AuditError(
                f"audit log {self.path} ends with an unreadable record; run `sqlmode audit verify`",
            ) from e

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Chain, write and flush one record; raise AuditError if it cannot be made durable."""
        with self._lock:
            record = {
                "seq": self._seq + 1,
                "at": datetime.now(UTC).isoformat(timespec="microseconds"),
                **event,
                "prev": self._prev,
            }
            record["hash"] = _digest(record)
            line = _canonical(record) + b"\n"
            try:
                self._fh.write(line)
                self._fh.flush()
                if self._fsync:
                    os.fsync(self._fh.fileno())
            except (OSError, ValueError) as e:
                raise AuditError(f"cannot write audit log {self.path}: {e}") from e
            self._seq = record["seq"]
            self._prev = record["hash"]
            return record

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()


@dataclass
class AuditReport:
    path: str
    records: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        if self.ok:
            return f"{self.path}: OK, {self.records} records, chain intact"
        return "\n".join([f"{self.path}: TAMPERED ({len(self.problems)} problems)", *self.problems])


def verify_audit_log(path: str | os.PathLike[str]) -> AuditReport:
    """Walk the chain; report every edited, removed, inserted or reordered record."""
    report = AuditReport(str(path))
    prev, expected_seq = GENESIS, 1
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as e:
        report.problems.append(f"cannot read: {e.strerror or e}")
        return report
    with fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                report.problems.append(f"line {lineno}: not valid JSON")
                continue
            report.records += 1
            if rec.get("hash") != _digest(rec):
                report.problems.append(f"line {lineno}: record {rec.get('seq')} was edited (hash mismatch)")
            if rec.get("prev") != prev:
                report.problems.append(
                    f"line {lineno}: chain broken before record {rec.get('seq')} "
                    "(a record was removed, inserted or reordered)"
                )
            if rec.get("seq") != expected_seq:
                report.problems.append(f"line {lineno}: sequence {rec.get('seq')} where {expected_seq} was expected")
            prev = rec.get("hash", "")
            expected_seq = (rec.get("seq") or expected_seq) + 1
    return report
