"""The audit log as a JSONL file: chained, written record by record, synced by group commit, anchored.

A record is written before the caller goes on, and an intent is also synced: when that fails, the
caller must refuse the operation (:class:`AuditError`), so nothing runs unaudited. Several processes
may append to the same file (a server and a CLI): appends take an exclusive ``flock`` and re-read
the tail when another writer moved it. After every append the anchor file (``<log>.head``: the last
seq and MAC, MACed itself) is rewritten in place, so that removing records from the end is detected.
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
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import AuditError
from .chain import GENESIS, AuditKeys, canonical, is_intent, make_record

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
    """A JSONL file, chained record by record, synced by group commit. Safe across threads and processes.

    Every record is written to the file (the page cache) before the call returns, so a killed process
    loses nothing; what waits is the disk sync. An intent (:func:`.chain.is_intent`, or
    ``durable=True``) is synced before :meth:`append_async` returns; other records within
    ``flush_window_ms``, or sooner when an intent's sync covers them (one ``fdatasync`` covers the
    whole file, other processes' records too). A host crash (power, kernel) loses at most the
    records of the last window, never an intent whose query ran.

    Two anchors in ``<log>.head``: the first names the last record written (rewritten with every
    record); the second names the last record known to be on disk (rewritten after each sync), so
    after a host crash ``audit verify`` can tell records the disk never got from records cut off.
    An intent's caller is released once the log is synced (the query may start) while the durable
    anchor is rewritten and synced; :meth:`anchored` waits for that, and the service calls it before
    a run's rows leave the process (and before a write runs): see docs/state-and-audit.md.
    A failed sync is final: the kernel may have dropped the unsynced pages, so every later append
    raises (fail closed) until the process is restarted.
    """

    _HEAD_SIZE = 320  # each anchor is rewritten in place, padded to a fixed size
    _DURABLE_AT = _HEAD_SIZE + 1  # offset of the second anchor (line 2)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        keys: AuditKeys | None = None,
        replica: str = "local",
        fsync: bool = True,
        flush_window_ms: float = 10.0,
    ):
        self.path = Path(path)
        self.head = head_path(self.path)
        if keys is None:
            from .chain import keys_from_config

            keys = keys_from_config(_Defaults(), log_path=str(self.path), create=True)
        self.keys = keys
        self.replica = replica
        self._fsync = fsync
        self._window = max(0.0, flush_window_ms) / 1000
        self._lock = threading.Lock()
        # Held for a whole sync and while close() tears the file down: a sync on a worker thread
        # must never meet a closed file, nor a descriptor number the OS has handed to another file.
        self._sync_lock = threading.Lock()
        self._head_fd: int | None = None
        self._sync_task: asyncio.Future[None] | None = None
        # Resolved when the running sync has the log on disk (before the durable anchor is synced).
        self._log_synced: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty_since: float | None = None  # monotonic time of the oldest record no sync has covered
        self._failed: AuditError | None = None
        #: fdatasync calls of the log, and the seq of this writer's last record known to be on disk.
        self.syncs = 0
        self.durable_seq = 0
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
                self._regular = stat.S_ISREG(os.fstat(self._fh.fileno()).st_mode)
                if self._regular and not self.head.exists():
                    if self._seq:
                        raise AuditError(
                            f"the anchor {self.head} of the audit log is missing; run `sqlmode audit verify`"
                        )
                    self._write_head()
                    self._write_durable_head(0, GENESIS)
        except OSError as e:
            raise AuditError(f"cannot open audit log {self.path}: {e.strerror or e}") from e
        self._synced = self._size  # bytes of the file known to be on disk
        self._anchored = self._size  # bytes the synced durable anchor covers
        self.durable_seq = self._seq

    def _locked(self) -> _Flock:
        return _Flock(self._fh.fileno())

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Chain, write and sync one record; raise AuditError if it cannot be made durable."""
        record, _ = self._write_record(event)
        if self._fsync:
            self._sync()
            self._raise_if_failed()
        return record

    async def append_async(self, event: dict[str, Any], *, durable: bool | None = None) -> dict[str, Any]:
        """Chain and write one record; wait for the disk only for an intent (or ``durable=True``).

        Other records are synced within the flush window, off the event loop; concurrent callers
        share one sync.
        """
        record, end = self._write_record(event)
        if not self._fsync:
            return record
        self._on_this_loop()
        if durable is None:
            durable = is_intent(event)
        if durable or not self._window:
            await self._wait_synced(end)
        elif self._timer is None and self._sync_task is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self._flush_due)
        return record

    async def flush(self) -> None:
        """Wait until every record this writer wrote is on disk, and anchored (AuditError if that failed)."""
        self._on_this_loop()
        await self._wait_synced(self._size)
        await self.anchored()

    async def anchored(self) -> None:
        """Wait until the durable anchor on disk names every record synced so far (AuditError if not).

        What lets ``audit verify`` tell, after a host crash, a synced intent cut from the log (a
        problem) from records the disk never got (a note).
        """
        self._on_this_loop()
        target = self._synced
        while self._fsync and self._regular and self._anchored < target:
            self._raise_if_failed()
            if self._sync_task is None:
                self._start_sync()
            assert self._sync_task is not None
            await asyncio.shield(self._sync_task)
        self._raise_if_failed()

    def _on_this_loop(self) -> None:
        # A log that outlives its event loop (an embedder's second asyncio.run) forgets that loop's
        # timer and sync task: neither would ever run, and what they covered is synced again.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._timer, self._sync_task, self._log_synced = loop, None, None, None

    async def _wait_synced(self, end: int) -> None:
        while self._fsync and self._synced < end:
            self._raise_if_failed()
            if self._sync_task is None:
                self._start_sync()
            assert self._sync_task is not None and self._log_synced is not None
            # The running sync's log phase, or (when that is past and did not cover ``end``) the
            # whole sync, after which the next one starts. Shielded: a cancelled caller must not
            # cancel the sync other callers wait for.
            await asyncio.shield(self._sync_task if self._log_synced.done() else self._log_synced)
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._failed is not None:
            raise AuditError(self._failed.message)

    def _write_record(self, event: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Chain and write one record (in the page cache); returns it and the file size after it."""
        self._raise_if_failed()
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
                    if self._dirty_since is None:
                        self._dirty_since = time.monotonic()
                    if self._regular:
                        self._write_head()
            except (OSError, ValueError) as e:
                raise AuditError(f"cannot write audit log {self.path}: {e}") from e
            return record, self._size

    def _sync(self, on_log_synced: Callable[[], None] | None = None) -> None:
        """Sync the log up to this writer's last record, then move the durable anchor to it.

        ``on_log_synced`` is called (on this thread) once the log is on disk, before the anchor's
        own sync. Never raises: a failure is kept in ``_failed`` (and logged) for every caller to see.
        """
        with self._sync_lock:
            self._sync_locked(on_log_synced)

    def _sync_locked(self, on_log_synced: Callable[[], None] | None) -> None:
        if self._failed is not None or self._fh.closed:
            return  # closed: close() synced everything written before it
        with self._lock:
            end, seq, mac = self._size, self._seq, self._prev
            self._dirty_since = None
        try:
            os.fdatasync(self._fh.fileno())
            self.syncs += 1
            with self._lock:
                if end > self._synced:
                    self._synced, self.durable_seq = end, seq
            if on_log_synced is not None:
                on_log_synced()
            if self._regular:
                # Only after the log's sync: the durable anchor never names a record the disk lacks.
                with self._lock, self._locked():
                    self._write_durable_head(seq, mac)
                assert self._head_fd is not None
                os.fdatasync(self._head_fd)
        except (OSError, ValueError, AssertionError) as e:
            self._failed = AuditError(
                f"cannot sync audit log {self.path}: {e}; records since seq {self.durable_seq} may not be on "
                "disk. Nothing more is recorded or run by this process: check the disk, run "
                "`sqlmode audit verify`, and restart"
            )
            log.error("%s", self._failed.message)
            return
        with self._lock:
            self._anchored = max(self._anchored, end)

    def _start_sync(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = asyncio.get_running_loop()
        self._log_synced = loop.create_future()
        self._sync_task = asyncio.ensure_future(self._group_sync(self._log_synced))

    async def _group_sync(self, log_synced: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()

        def signal() -> None:  # on the sync's thread: wake the intents' callers now
            loop.call_soon_threadsafe(_resolve, log_synced)

        try:
            await asyncio.to_thread(self._sync, signal)
        finally:
            _resolve(log_synced)  # a failed sync: its waiters look at _failed
            self._sync_task = None
        # Records written while this sync ran: due one window after the oldest of them.
        since = self._dirty_since
        if since is not None and self._timer is None and self._failed is None:
            delay = max(0.0, since + self._window - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._flush_due)

    def _flush_due(self) -> None:
        self._timer = None
        if self._sync_task is None and self._synced < self._size:
            self._start_sync()

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

    def _head(self) -> int:
        if self._head_fd is None:
            self._head_fd = os.open(self.head, os.O_RDWR | os.O_CREAT, 0o644)
        return self._head_fd

    def _write_head(self) -> None:
        # Rewritten in place (one small pwrite, no rename), under the flock, with every record.
        doc = canonical(self.keys.anchor(self.path.name, self._seq, self._prev))
        os.pwrite(self._head(), doc.ljust(self._HEAD_SIZE) + b"\n", 0)

    def _write_durable_head(self, seq: int, mac: str) -> None:
        """Move the durable anchor forward to ``seq`` (never back: another process may be ahead)."""
        fd = self._head()
        raw = os.pread(fd, self._HEAD_SIZE + 1, self._DURABLE_AT)
        with contextlib.suppress(ValueError, TypeError, KeyError):
            if raw.strip() and int(json.loads(raw)["seq"]) >= seq and seq:
                return
        doc = canonical(self.keys.anchor(self.path.name, seq, mac, durable=True))
        os.pwrite(fd, doc.ljust(self._HEAD_SIZE) + b"\n", self._DURABLE_AT)

    def close(self) -> None:
        """Sync what is not yet on disk and close (``aclose`` does the same off the event loop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._sync_lock:
            if self._fsync and not self._fh.closed and self._synced < self._size:
                self._sync_locked(None)
            with self._lock:
                if self._head_fd is not None:
                    os.close(self._head_fd)
                    self._head_fd = None
                if not self._fh.closed:
                    # Nothing is buffered; a failing device may still complain on close.
                    with contextlib.suppress(OSError):
                        self._fh.close()

    async def aclose(self) -> None:
        # A group sync's tail may arm the flush timer, which may start another sync: wait until
        # none is running, then sync the rest off the event loop (close() finds nothing left).
        self._on_this_loop()
        while self._sync_task is not None:
            await asyncio.gather(self._sync_task, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._fsync and not self._fh.closed and self._synced < self._size:
            await asyncio.to_thread(self._sync)
        self.close()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Defaults:
    key: str | None = None
    key_id = "a1"
    previous_keys: dict[str, str] = {}


class _Flock:
    """The file's exclusive lock (``flock``) for a ``with`` block: other processes appending wait."""

    __slots__ = ("fd",)

    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
