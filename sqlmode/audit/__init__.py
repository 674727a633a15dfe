"""Append-only audit log, chained by HMAC under an audit key: a JSONL file, PostgreSQL, or both.

Every validation and every execution becomes one record; see :mod:`.chain` for the format and
:mod:`.verify` for what ``sqlmode audit verify`` checks. What the log proves: nobody without the
audit key can edit, insert, reorder or remove a record, or cut the end of a chain, undetected.
What it does not prove: a holder of the key (anyone who can read it on this host) can write a
whole new consistent log; deleting an entire file with its anchor, or a whole replica's chain with
its anchor row, or cutting a chain's end and restoring an anchor copied at that point, leaves no
trace in the log itself. Ship records to a store the serving host cannot
edit (``audit.url`` on a database whose audit tables the host may only INSERT into, and keep the
key away from that database's administrators) when that matters.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from typing import Any, Protocol, runtime_checkable

from ..config import Settings
from .chain import GENESIS, AuditKeys, canonical, is_intent, keys_from_config, parse_line
from .file import AuditLog, head_path
from .verify import AuditReport, verify_audit_log

__all__ = [
    "GENESIS",
    "AuditKeys",
    "AuditLog",
    "AuditReport",
    "AuditSink",
    "NullAuditLog",
    "TeeAuditSink",
    "canonical",
    "head_path",
    "is_intent",
    "keys_from_config",
    "open_audit_sink",
    "parse_line",
    "replica_id",
    "verify_audit_log",
    "verify_configured",
]


@runtime_checkable
class AuditSink(Protocol):
    """Where audit records go. ``append_async`` returns once the record is written, or raises AuditError.

    The sinks here make an intent (:func:`is_intent`: the record before a query runs) durable before
    returning and other records within ``audit.flush_window_ms`` (group commit); ``durable=True``
    forces the wait. A sink of your own may treat every record as durable and ignore the flag.
    """

    async def append_async(self, event: dict[str, Any], *, durable: bool | None = None) -> dict[str, Any]: ...


class NullAuditLog:
    """Used only when audit.enabled is false (development)."""

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        return event

    async def append_async(self, event: dict[str, Any], *, durable: bool | None = None) -> dict[str, Any]:
        return event

    async def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class TeeAuditSink:
    """Every record to each sink (a local file and the shared database); durable only when all are."""

    def __init__(self, sinks: list[Any]):
        self.sinks = sinks

    async def append_async(self, event: dict[str, Any], *, durable: bool | None = None) -> dict[str, Any]:
        results = await asyncio.gather(*(s.append_async(event, durable=durable) for s in self.sinks))
        return dict(results[0])

    async def flush(self) -> None:
        await asyncio.gather(*(s.flush() for s in self.sinks))

    async def anchored(self) -> None:
        """Each sink's :meth:`AuditLog.anchored` (sinks without a separate anchor have none)."""
        waits = [wait() for s in self.sinks if (wait := getattr(s, "anchored", None)) is not None]
        await asyncio.gather(*waits)


def replica_id(settings: Settings) -> str:
    """``audit.replica_id``, else this host's name and a random suffix (a new chain per start)."""
    return settings.audit.replica_id or f"{socket.gethostname()}-{secrets.token_hex(4)}"


async def open_audit_sink(settings: Settings, *, allow_key_file: bool = True) -> tuple[Any, list[Any]]:
    """The configured sink, and the sinks to close (file, PostgreSQL, or both)."""
    a = settings.audit
    if not a.enabled:
        return NullAuditLog(), []
    if not a.path and not a.url:
        from ..errors import ConfigError

        raise ConfigError("audit is enabled but neither audit.path nor audit.url is set", key="audit")
    keys = keys_from_config(
        a,
        token_secret=settings.code_mode.token_secret,
        log_path=a.path if allow_key_file and a.path else None,
        create=allow_key_file,
    )
    rid = replica_id(settings)
    sinks: list[Any] = []
    if a.path:
        sinks.append(AuditLog(a.path, keys=keys, replica=rid, flush_window_ms=a.flush_window_ms))
    if a.url:
        from .postgres import PostgresAuditSink

        try:
            sink = PostgresAuditSink(
                a.url, keys, replica=rid, schema=a.schema_name, flush_window_ms=a.flush_window_ms
            )
            sinks.append(await sink.open())
        except BaseException:
            for s in sinks:
                s.close()
            raise
    return (sinks[0] if len(sinks) == 1 else TeeAuditSink(sinks)), sinks


async def verify_configured(settings: Settings, path: str | None = None) -> AuditReport:
    """``sqlmode audit verify``: the file (``path`` or audit.path) and every chain at audit.url."""
    from ..errors import SecretError

    a = settings.audit
    file_path = path or a.path
    try:
        keys = keys_from_config(a, log_path=file_path or None, create=False)
    except SecretError as e:
        report = AuditReport(file_path or a.url or "audit")
        report.unreadable = e.message
        return report
    reports = []
    if file_path:
        reports.append(verify_audit_log(file_path, keys))
    if a.url and path is None:
        from .postgres import verify_postgres_audit

        reports.append(await verify_postgres_audit(a.url, keys, schema=a.schema_name))
    if not reports:
        report = AuditReport("audit")
        report.unreadable = "neither audit.path nor audit.url is set"
        return report
    first = reports[0]
    for other in reports[1:]:
        first.merge(other)
        first.source += f" + {other.source}"
    return first
