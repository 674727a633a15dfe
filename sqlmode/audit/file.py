"""The audit log as a JSONL file: chained, made durable record by record, anchored.

A record is written and fsync'ed before the caller goes on: when that fails, the caller must
refuse the operation (:class:`AuditError`), so nothing runs unaudited. Several processes may append
to the same file (a server and a CLI): appends take an exclusive ``flock`` and re-read the tail
when another writer moved it. After every append the anchor file (``<log>.head``: the last seq and
MAC, MACed itself) is rewritten in place, so that removing records from the end is detected.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import AuditError
from .chain import GENESIS, AuditKeys, canonical, make_record

__all__ = ["AuditLog", "head_path"]

log = logging.getLogger("sqlmode.audit")


def head_path(path: str | os.PathLike[str]) -> Path:
    """The anchor file next to the log."""
    p = Path(path)
    return p.with_name(p.name + ".head")


def _tail(fh: Any) -> bytes | None:
    """The last non-blank line of an open binary file, or None when it has none."""
    fh.seek(0, os.SEEK_END)
    pos = fh.tell()
    chunk = b""
    while pos > 0 and chunk.count(b"\n") < 2:
        step = min(65536, pos)
        pos -= step
        fh.seek(pos)
        chunk = fh.read(step) + chunk
    lines = [ln for ln in chunk.splitlines() if ln.strip()]
    return lines[-1] if lines else None


def _last_record(fh: Any, path: Path) -> tuple[int, str]:
    """(seq, mac) of the last record of an open binary file, or the genesis."""
    line = _tail(fh)
    if line is None:
        return 0, GENESIS
    try:
        rec = json.loads(line)
        return int(rec["seq"]), str(rec["mac"])
    except (ValueError, KeyError, TypeError) as e:
        raise AuditError(
            f"audit log {path} ends with a record this version cannot continue; "
            "run `sqlmode audit verify`, and move the log aside to start a new one"
        ) from e


def _retire_unkeyed(path: Path) -> None:
    """Move a log of the older unkeyed format (sha256 ``hash`` chain) aside, so a keyed one can start.

    Nothing is lost: the old file keeps its name plus ``.unkeyed-<time>``. It gives nobody more than
    deleting the log would (which the chain cannot detect either; see the package docstring).
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError:
        return
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            rec = json.loads(_tail(fh) or b"{}")
        except ValueError:
            return
        if not isinstance(rec, dict) or "hash" not in rec or "mac" in rec:
            return
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        moved = path.with_name(f"{path.name}.unkeyed-{stamp}")
        os.rename(path, moved)
        with contextlib.suppress(FileNotFoundError):
            os.rename(head_path(path), head_path(moved))
    log.warning(
        "audit log %s used the older unkeyed format; moved it to %s and started a keyed chain", path, moved
    )


class AuditLog:
    """A JSONL file, chained and made durable record by record. Safe across threads and processes.

    :meth:`append` writes and ``fdatasync``s before it returns. :meth:`append_async` writes at once
    and then waits, off the event loop, until the record is on disk; concurrent callers share one
    sync (group commit), so a busy server pays one sync per batch rather than per record.
    """

    _HEAD_SIZE = 320  # the anchor is rewritten in place, padded to a fixed size

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keys: AuditKeys | None = None,
        replica: str = "local",
        fsync: bool = True,
    ):
        self.path = Path(path)
        self.head = head_path(self.path)
        if keys is None:
            from .chain import keys_from_config

            keys = keys_from_config(_Defaults(), log_path=str(self.path), create=True)
        self.keys = keys
        self.replica = replica
        self._fsync = fsync
        self._lock = threading.Lock()
        self._head_fd: int | None = None
        self._sync_task: asyncio.Future[None] | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _retire_unkeyed(self.path)
            # "a+b": appends always land at the end; reads find the tail another process wrote.
            # Unbuffered, so a failed write leaves nothing queued to leak into the next record.
            self._fh = open(self.path, "a+b", buffering=0)  # noqa: SIM115 - held open for the log's lifetime
            with self._locked():
                self._seq, self._prev = _last_record(self._fh, self.path)
                self._size = self._fh.seek(0, os.SEEK_END)
                # A device (tests write to /dev/full) has no anchor; a regular file always has one.
                if stat.S_ISREG(os.fstat(self._fh.fileno()).st_mode) and not self.head.exists():
                    if self._seq:
                        raise AuditError(
                            f"the anchor {self.head} of the audit log is missing; run `sqlmode audit verify`"
                        )
                    self._write_head()
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
                    record = make_record(
                        self.keys,
                        event,
                        seq=self._seq + 1,
                        at=datetime.now(UTC).isoformat(timespec="microseconds"),
                        replica=self.replica,
                        prev=self._prev,
                    )
                    line = canonical(record) + b"\n"
                    try:
                        self._write_all(line)
                    except OSError:
                        self._rollback(size)
                        raise
                    self._size = size + len(line)
                    self._seq = record["seq"]
                    self._prev = record["mac"]
                    self._write_head()
            except (OSError, ValueError) as e:
                raise AuditError(f"cannot write audit log {self.path}: {e}") from e
            return record, self._size

    def _sync(self, end: int) -> None:
        try:
            os.fdatasync(self._fh.fileno())
            if self._head_fd is not None:
                os.fdatasync(self._head_fd)
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
        # Rewritten in place (one small pwrite, no rename). A crash between the log and the anchor
        # leaves the anchor one record behind, which the verifier accepts with a note.
        if self._head_fd is None:
            self._head_fd = os.open(self.head, os.O_RDWR | os.O_CREAT, 0o644)
        doc = canonical(self.keys.anchor(self.path.name, self._seq, self._prev))
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

    async def aclose(self) -> None:
        self.close()


class _Defaults:
    key: str | None = None
    key_id = "a1"
    previous_keys: dict[str, str] = {}
