"""Append-only, hash-chained audit log (JSONL).

Every validation and every execution becomes one JSON line. Each record carries the
hash of the previous one (``prev``) and its own ``hash`` = sha256 over its canonical
JSON without ``hash``; editing, removing or reordering any record breaks the chain,
which :func:`verify_audit_log` reports with the line number. Removing records from the
*end* leaves a valid chain, so every append also rewrites a small anchor file
(``<log>.head``: the last sequence number and hash) that the verifier compares with
the log's tail.

A record is written and fsync'ed before the caller goes on: when that fails, the
caller must refuse the operation (:class:`AuditError`), so nothing runs unaudited.
Several processes may append to the same file (a server and a CLI): appends take an
exclusive ``flock`` and re-read the tail when another writer moved it.
"""

from __future__ import annotations

import contextlib
import fcntl
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

__all__ = ["GENESIS", "AuditLog", "AuditReport", "AuditSink", "NullAuditLog", "head_path", "verify_audit_log"]


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(_canonical(body)).hexdigest()


def head_path(path: str | os.PathLike[str]) -> Path:
    """The anchor file next to the log: the last record's seq and hash."""
    p = Path(path)
    return p.with_name(p.name + ".head")


class AuditSink(Protocol):
    def append(self, event: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class NullAuditLog:
    """Used only when audit.enabled is false (development)."""

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        return event

    def close(self) -> None:
        pass


def _last_record(fh: Any, path: Path) -> tuple[int, str]:
    """(seq, hash) of the last record of an open binary file, or the genesis."""
    fh.seek(0, os.SEEK_END)
    pos = fh.tell()
    if pos == 0:
        return 0, GENESIS
    chunk = b""
    while pos > 0 and chunk.count(b"\n") < 2:
        step = min(4096, pos)
        pos -= step
        fh.seek(pos)
        chunk = fh.read(step) + chunk
    lines = [ln for ln in chunk.splitlines() if ln.strip()]
    if not lines:
        return 0, GENESIS
    try:
        rec = json.loads(lines[-1])
        return int(rec["seq"]), str(rec["hash"])
    except (ValueError, KeyError, TypeError) as e:
        raise AuditError(
            f"audit log {path} ends with an unreadable record; run `sqlmode audit verify`"
        ) from e


class AuditLog:
    """A JSONL file, chained and fsync'ed record by record. Safe across threads and processes."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True):
        self.path = Path(path)
        self.head = head_path(self.path)
        self._fsync = fsync
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # "a+b": appends always land at the end; reads find the tail another process wrote.
            # Unbuffered, so a failed write leaves nothing queued to leak into the next record.
            self._fh = open(self.path, "a+b", buffering=0)  # noqa: SIM115 - held open for the log's lifetime
            with self._locked():
                self._seq, self._prev = _last_record(self._fh, self.path)
                self._size = self._fh.seek(0, os.SEEK_END)
        except OSError as e:
            raise AuditError(f"cannot open audit log {self.path}: {e.strerror or e}") from e

    def _locked(self) -> Any:
        fh = self._fh

        class _Flock:
            def __enter__(self) -> None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)

            def __exit__(self, *exc: object) -> None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

        return _Flock()

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Chain, write and flush one record; raise AuditError if it cannot be made durable."""
        with self._lock:
            try:
                with self._locked():
                    size = os.fstat(self._fh.fileno()).st_size
                    if size != self._size:  # another process appended since our last write
                        self._seq, self._prev = _last_record(self._fh, self.path)
                    record = {
                        "seq": self._seq + 1,
                        "at": datetime.now(UTC).isoformat(timespec="microseconds"),
                        **event,
                        "prev": self._prev,
                    }
                    record["hash"] = _digest(record)
                    line = _canonical(record) + b"\n"
                    try:
                        self._write_all(line)
                        if self._fsync:
                            os.fsync(self._fh.fileno())
                    except OSError:
                        self._rollback(size)
                        raise
                    self._size = size + len(line)
                    self._seq = record["seq"]
                    self._prev = record["hash"]
                    self._write_head()
            except AuditError:
                raise
            except (OSError, ValueError) as e:
                raise AuditError(f"cannot write audit log {self.path}: {e}") from e
            return record

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._fh.write(view)
            if not n:
                raise OSError("short write")
            view = view[n:]

    def _rollback(self, size: int) -> None:
        # Cut a partly written record off, so the chain stays readable for the next append.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fh.fileno(), size)

    def _write_head(self) -> None:
        # The anchor only has to detect tail truncation; a crash between the log and the
        # anchor leaves the anchor one record behind, which the verifier accepts.
        tmp = self.head.with_name(self.head.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"seq": self._seq, "hash": self._prev}))
        os.replace(tmp, self.head)

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                # Nothing is buffered; a failing device may still complain on close.
                with contextlib.suppress(OSError):
                    self._fh.close()


@dataclass
class AuditReport:
    path: str
    records: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        if self.ok:
            return "\n".join([f"{self.path}: OK, {self.records} records, chain intact", *self.notes])
        return "\n".join(
            [f"{self.path}: TAMPERED ({len(self.problems)} problems)", *self.problems, *self.notes]
        )


def verify_audit_log(path: str | os.PathLike[str]) -> AuditReport:
    """Walk the chain; report every edited, removed, inserted or reordered record."""
    report = AuditReport(str(path))
    prev, expected_seq = GENESIS, 1
    hashes: dict[int, str] = {}
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
                if not isinstance(rec, dict):
                    raise ValueError
            except ValueError:
                report.problems.append(f"line {lineno}: not a JSON record")
                continue
            report.records += 1
            seq = rec.get("seq")
            if rec.get("hash") != _digest(rec):
                report.problems.append(f"line {lineno}: record {seq} was edited (hash mismatch)")
            if rec.get("prev") != prev:
                report.problems.append(
                    f"line {lineno}: chain broken before record {seq} "
                    "(a record was removed, inserted or reordered)"
                )
            if seq != expected_seq:
                report.problems.append(f"line {lineno}: sequence {seq} where {expected_seq} was expected")
            prev = rec.get("hash", "")
            if isinstance(seq, int):
                hashes[seq] = prev
                expected_seq = seq + 1
            else:
                expected_seq += 1
    _check_head(path, report, hashes, expected_seq - 1)
    return report


def _check_head(path: str | os.PathLike[str], report: AuditReport, hashes: dict[int, str], last: int) -> None:
    hp = head_path(path)
    try:
        head = json.loads(hp.read_text())
        seq, digest = int(head["seq"]), str(head["hash"])
    except FileNotFoundError:
        if report.records:
            report.notes.append(
                f"note: no anchor file {hp.name}; removal of the last records cannot be checked"
            )
        return
    except (OSError, ValueError, KeyError, TypeError):
        report.problems.append(f"anchor file {hp.name} is unreadable")
        return
    if seq > last:
        report.problems.append(
            f"records {last + 1}..{seq} were removed from the end (the anchor names record {seq})"
        )
    elif hashes.get(seq) != digest:
        report.problems.append(f"anchor file {hp.name} does not match record {seq} (edited log or anchor)")
    elif seq < last - 1:
        # The anchor may lag one record after a crash between the two writes, never more.
        report.problems.append(f"anchor file {hp.name} names record {seq}, but the log ends at record {last}")
