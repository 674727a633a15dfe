"""Walking audit chains: every record canonical, MACed under a known key, chained, in sequence; the anchor
authenticated and naming the chain's last record.

Exit codes of ``sqlmode audit verify``: 0 intact, 1 tampered (the first bad record is named),
2 missing or unreadable (no log, no key, no database).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .chain import GENESIS, AuditKeys, DuplicateKeyError, parse_line

__all__ = ["AuditReport", "ChainWalker", "verify_audit_log"]


@dataclass
class AuditReport:
    source: str
    records: int = 0
    chains: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Set when the log could not be read at all (exit 2), as opposed to read and found tampered.
    unreadable: str | None = None

    @property
    def path(self) -> str:
        return self.source

    @property
    def ok(self) -> bool:
        return not self.problems and self.unreadable is None

    @property
    def exit_code(self) -> int:
        return 2 if self.unreadable is not None else (1 if self.problems else 0)

    def merge(self, other: AuditReport) -> None:
        self.records += other.records
        self.chains += other.chains
        self.problems += other.problems
        self.notes += other.notes
        self.unreadable = self.unreadable or other.unreadable

    def render(self) -> str:
        if self.unreadable is not None:
            return f"{self.source}: CANNOT VERIFY: {self.unreadable}"
        chains = f", {self.chains} chains" if self.chains > 1 else ""
        if self.ok:
            return "\n".join(
                [f"{self.source}: OK, {self.records} records{chains}, chain intact", *self.notes]
            )
        return "\n".join(
            [
                f"{self.source}: TAMPERED ({len(self.problems)} problems{chains})",
                f"first bad record: {self.problems[0]}",
                *self.problems,
                *self.notes,
            ]
        )


class ChainWalker:
    """Feed one chain's lines in order, then its anchor."""

    def __init__(self, keys: AuditKeys, report: AuditReport, chain: str, replica: str | None = None):
        self.keys, self.report, self.chain, self.replica = keys, report, chain, replica
        self.prev, self.expected_seq, self.last = GENESIS, 1, 0
        self.macs: dict[int, str] = {}
        report.chains += 1

    def feed(self, where: str, raw: bytes) -> None:
        r = self.report
        try:
            rec = parse_line(raw)
        except DuplicateKeyError as e:
            r.problems.append(f"{where}: {e} (a record must have each key once)")
            self.expected_seq += 1
            return
        except (ValueError, UnicodeDecodeError) as e:
            r.problems.append(f"{where}: not a canonical JSON record ({e})")
            self.expected_seq += 1
            return
        r.records += 1
        seq = rec.get("seq")
        if self.keys.get(rec.get("kid")) is None:
            r.problems.append(f"{where}: record {seq} names an unknown audit key id {rec.get('kid')!r}")
        elif not self.keys.check(rec):
            r.problems.append(f"{where}: record {seq} was edited or forged (MAC mismatch)")
        if rec.get("prev") != self.prev:
            r.problems.append(
                f"{where}: chain broken before record {seq} (a record was removed, inserted or reordered)"
            )
        if seq != self.expected_seq:
            r.problems.append(f"{where}: sequence {seq} where {self.expected_seq} was expected")
        if self.replica is not None and rec.get("replica") != self.replica:
            r.problems.append(
                f"{where}: record {seq} names replica {rec.get('replica')!r}, not {self.replica!r}"
            )
        mac = rec.get("mac")
        self.prev = mac if isinstance(mac, str) else ""
        if isinstance(seq, int) and not isinstance(seq, bool):
            self.macs[seq] = self.prev
            self.last = seq
            self.expected_seq = seq + 1
        else:
            self.expected_seq += 1

    def finish(
        self, anchor: dict[str, Any] | None, where: str, durable: dict[str, Any] | None = None
    ) -> None:
        """Check the anchor, and the durable anchor when the chain has one (the file's second line).

        With a valid durable anchor, an anchor ahead of the records or behind them is what a host
        crash within the flush window leaves (the records and the anchor reach the disk in any order
        after the last sync): a note, not tampering. Without one, both are problems.
        """
        r = self.report
        if anchor is None:
            r.problems.append(f"{where}: the anchor is missing (records may have been removed from the end)")
            return
        if not self.keys.check_anchor(anchor):
            r.problems.append(f"{where}: the anchor was edited or forged (MAC mismatch)")
            return
        if anchor.get("anchor") != self.chain or anchor.get("durable"):
            r.problems.append(f"{where}: the anchor belongs to {anchor.get('anchor')!r}, not {self.chain!r}")
            return
        synced = self._durable(durable, where) if durable is not None else None
        if durable is not None and synced is None:
            return
        seq, mac, last = anchor.get("seq"), anchor.get("mac"), self.last
        crash = (
            f"note: {where} names record {seq} and the records end at {last}; the durable anchor names "
            f"record {synced}: the host crashed (power, kernel) before records after {synced} were synced "
            "(within audit.flush_window_ms), or someone cut them"
        )
        if not isinstance(seq, int):
            r.problems.append(f"{where}: the anchor has no valid seq")
        elif seq > last:
            if synced is not None:
                r.notes.append(crash)
            else:
                r.problems.append(
                    f"records {last + 1}..{seq} were removed from the end (the anchor names record {seq})"
                )
        elif seq == 0 and last == 0:
            pass
        elif self.macs.get(seq) != mac:
            r.problems.append(f"{where}: the anchor does not match record {seq}")
        elif seq == last - 1:
            r.notes.append(f"note: {where} is one record behind (a crash between the record and the anchor)")
        elif seq < last:
            if synced is not None:
                r.notes.append(crash)
            else:
                r.problems.append(
                    f"{where}: stale anchor: it names record {seq}, but the chain ends at record {last}"
                )

    def _durable(self, doc: dict[str, Any], where: str) -> int | None:
        """The seq the durable anchor names, or None after recording why it does not hold."""
        r = self.report
        where = f"{where} (durable, line 2)"
        if not self.keys.check_anchor(doc):
            r.problems.append(f"{where}: the anchor was edited or forged (MAC mismatch)")
            return None
        seq = doc.get("seq")
        if doc.get("anchor") != self.chain or doc.get("durable") is not True:
            r.problems.append(f"{where}: the anchor belongs to {doc.get('anchor')!r}, not {self.chain!r}")
        elif not isinstance(seq, int) or isinstance(seq, bool):
            r.problems.append(f"{where}: the anchor has no valid seq")
        elif seq > self.last:
            r.problems.append(
                f"records {self.last + 1}..{seq} were removed from the end (the durable anchor names record "
                f"{seq}, synced to disk)"
            )
        elif seq and self.macs.get(seq) != doc.get("mac"):
            r.problems.append(f"{where}: the anchor does not match record {seq}")
        else:
            return seq
        return None


def _read_anchors(path: str) -> tuple[list[dict[str, Any]], str | None]:
    """(anchors, problem): the file's anchor lines (none when it is missing), or what is wrong with it."""
    try:
        raw = open(path, "rb").read()  # noqa: SIM115
    except FileNotFoundError:
        return [], None
    except OSError as e:
        return [], f"cannot read the anchor: {e.strerror}"
    lines = [ln.strip() for ln in raw.split(b"\n") if ln.strip()]
    if not lines or len(lines) > 2:
        return [], f"the anchor file has {len(lines)} lines, not 1 or 2"
    try:
        return [parse_line(ln) for ln in lines], None
    except (ValueError, UnicodeDecodeError) as e:
        return [], f"the anchor is not a canonical JSON record ({e})"


def verify_audit_log(path: str | os.PathLike[str], keys: AuditKeys | None = None) -> AuditReport:
    """Walk the file's chain and check its anchor; see :class:`AuditReport` for the verdicts."""
    from .chain import key_file_path
    from .file import head_path

    report = AuditReport(str(path))
    if keys is None:
        kf = key_file_path(path)
        try:
            keys = AuditKeys("a1", kf.read_text().strip().encode("utf-8"))
        except OSError:
            report.unreadable = (
                f"no audit key: set SQLMODE_AUDIT_KEY (or audit.key), or keep {kf.name} beside the log"
            )
            return report
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as e:
        report.unreadable = f"cannot read: {e.strerror or e}"
        return report
    walker = ChainWalker(keys, report, os.path.basename(str(path)))
    with fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                report.problems.append(f"line {lineno}: blank line (not a record)")
                continue
            walker.feed(f"line {lineno}", raw)
    hp = head_path(path)
    anchors, problem = _read_anchors(str(hp))
    if problem:
        report.problems.append(f"anchor file {hp.name}: {problem}")
    else:
        anchor, durable = [*anchors, None, None][:2]
        walker.finish(anchor, f"anchor file {hp.name}", durable)
    return report
