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

import asyncio
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

    async def append_async(self, event: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class NullAuditLog:
    """Used only when audit.enabled is false (development)."""

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        return event

    async def append_async(self, event: dict[str, Any]) -> dict[str, Any]:
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
    """A JSONL file, chained and made durable record by record. Safe across threads and processes.

    :meth:`append` writes and ``fdatasync``s before it returns. :meth:`append_async` writes at once
    and then waits, off the event loop, until the record is on disk; concurrent callers share one
    sync (group commit), so a busy server pays one sync per batch rather than per record.
    """

    _HEAD_SIZE = 160  # the anchor is rewritten in place, padded to a fixed size

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True):
        self.path = Path(path)
        self.head = head_path(self.path)
        self._fsync = fsync
        self._lock = threading.Lock()
        self._head_fd: int | None = None
        self._sync_task: asyncio.Future[None] | None = None
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
        self._synced = self._size  # bytes of the file known to be on disk

    def _locked(self) -> Any:
        fh = self._fh

        class _Flock:
            def __enter__(self) -> None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)

            def __exit__(self, *exc: object) -> None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

        return _Flock()

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Chain, write and sync one record; raise AuditError if it cannot be made durable."""
        record, end = self._write_record(event)
        if self._fsync:
            self._sync(end)
        return record

    async def append_async(self, event: dict[str, Any]) -> dict[str, Any]:
        """Like :meth:`append`, without blocking the event loop while the disk syncs."""
        record, end = self._write_record(event)
        while self._fsync and self._synced < end:
            if self._sync_task is None:
                self._sync_task = asyncio.ensure_future(self._group_sync(self._size))
            # Shielded: a cancelled caller must not cancel the sync other callers wait for.
            await asyncio.shield(self._sync_task)
        return record

    def _write_record(self, event: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Chain and write one record (in the page cache); returns it and the file size after it."""
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
                    except OSError:
                        self._rollback(size)
                        raise
                    self._size = size + len(line)
                    self._seq = record["seq"]
                    self._prev = record["hash"]
                    self._write_head()
            except (OSError, ValueError) as e:
                raise AuditError(f"cannot write audit log {self.path}: {e}") from e
            return record, self._size

    def _sync(self, end: int) -> None:
        try:
            os.fdatasync(self._fh.fileno())
        except (OSError, ValueError) as e:
            raise AuditError(f"cannot sync audit log {self.path}: {e}") from e
        with self._lock:
            self._synced = max(self._synced, end)

    async def _group_sync(self, target: int) -> None:
        try:
            await asyncio.to_thread(self._sync, target)
        finally:
            self._sync_task = None

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
        # The anchor only has to detect removal at the end: it is rewritten in place (one small
        # pwrite, no rename). A crash between the log and the anchor leaves the anchor one record
        # behind, which the verifier accepts.
        if self._head_fd is None:
            self._head_fd = os.open(self.head, os.O_RDWR | os.O_CREAT, 0o644)
        doc = json.dumps({"seq": self._seq, "hash": self._prev}).encode()
        os.pwrite(self._head_fd, doc.ljust(self._HEAD_SIZE) + b"\n", 0)

    def close(self) -> None:
        with self._lock:
            if self._head_fd is not None:
                os.close(self._head_fd)
                self._head_fd = None
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
