"""Human approval requests in the shared state store: create, decide, wait, consume.

One request per approval token (keyed by the token's nonce, so calling execute_code again with the
same code and token finds the same request). Each step is one compare-and-swap on the record's
version, so replicas sharing ``[state] url`` agree: at most ``required`` distinct approvals make it
``approved``, one denial makes it ``denied``, and exactly one execution turns it ``used``.

Who may decide: a member of ``approval.approvers_group``, never the requester, never twice.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

from ..config import ApprovalConfig
from ..errors import HumanApprovalError
from ..models import Analysis, Decision, Principal
from ..state import StateStore

__all__ = ["APPROVAL_NAMESPACE", "ApprovalBook", "ApprovalTicket", "needs_approval"]

APPROVAL_NAMESPACE = "approval"
_BY_NONCE = "approval-nonce"
# The ids of requests in order, for the admin page (the store has no listing): the newest in one
# small CAS'd record, which is sealed into an immutable chunk each time it holds _CHUNK ids.
_INDEX, _INDEX_KEY, _CHUNK = "approval-index", "recent", 200
_CHUNK_SECONDS = 7 * 24 * 3600  # older ids point at records the store has dropped anyway
# Decided records stay readable (the admin page, a late retry that should hear "denied") this long.
_KEEP_SECONDS = 24 * 3600
_CAS_ATTEMPTS = 20


def needs_approval(cfg: ApprovalConfig, analysis: Analysis, decision: Decision | None = None) -> bool:
    """Whether ``analysis`` waits for a human approver: ``[approval]`` or an @approval permit."""
    return (
        analysis.risk_level.value in cfg.risk_levels
        or analysis.action.value in cfg.actions
        or bool(decision is not None and decision.approval)
    )


@dataclass(frozen=True, slots=True)
class ApprovalTicket:
    """What the caller needs to send a person to the page."""

    id: str
    url: str
    approvers: str
    required: int
    status: str


class ApprovalBook:
    """Approval records over a :class:`StateStore`."""

    def __init__(self, cfg: ApprovalConfig, state: StateStore, base_url: str | None = None):
        self.cfg = cfg
        self.state = state
        # Settable once the HTTP server knows its address (an ephemeral port in tests).
        self.base_url = (cfg.base_url or base_url or "").rstrip("/")
        self.poll_interval = 0.2

    def url_of(self, request_id: str) -> str:
        return f"{self.base_url}/approvals/{request_id}"

    def ticket(self, rec: dict[str, Any]) -> ApprovalTicket:
        return ApprovalTicket(
            id=rec["id"],
            url=self.url_of(rec["id"]),
            approvers=rec["approvers_group"],
            required=rec["required"],
            status=rec["status"],
        )

    async def open(
        self,
        *,
        nonce: str,
        nonce_expires_at: float,
        principal: Principal,
        code_hash: str,
        schema_hash: str,
        policy_hash: str,
        analysis: Analysis,
        reasons: list[str],
    ) -> tuple[dict[str, Any], bool]:
        """The request for this token (created on first sight); (record, created)."""
        existing = await self._by_nonce(nonce)
        if existing is not None:
            return existing, False
        now = time.time()
        rid = secrets.token_urlsafe(18)
        rec: dict[str, Any] = {
            "id": rid,
            "status": "pending",
            "code_hash": code_hash,
            "normalized_code": analysis.normalized_code,
            "requester": principal.user,
            "requester_session": principal.session,
            "nonce": nonce,
            "schema_hash": schema_hash,
            "policy_hash": policy_hash,
            "risk": analysis.risk_level.value,
            "action": analysis.action.value,
            "statement_type": analysis.statement_type,
            "explanation": analysis.explanation,
            "tables": list(analysis.tables),
            "columns": list(analysis.columns),
            "estimates": {
                k: v
                for k, v in (
                    ("estimated_rows", analysis.estimated_rows),
                    ("estimated_cost", analysis.estimated_cost),
                )
                if v is not None
            },
            "reasons": reasons,
            "created_at": now,
            "expires_at": now + self.cfg.expires_seconds,
            "required": self.cfg.required,
            "approvers_group": self.cfg.approvers_group,
            "decisions": [],
        }
        keep = max(rec["expires_at"], nonce_expires_at) + _KEEP_SECONDS
        # The nonce index is the arbiter: of two replicas seeing the same token, one creates it.
        if not await self.state.create(_BY_NONCE, nonce, {"id": rid}, expires_at=keep):
            again = await self._by_nonce(nonce)
            if again is None:
                raise HumanApprovalError("the approval request vanished", code="APPROVAL_NOT_FOUND")
            return again, False
        await self.state.create(APPROVAL_NAMESPACE, rid, rec, expires_at=keep)
        await self._index(rid)
        return rec, True

    async def _index(self, rid: str) -> None:
        for _ in range(_CAS_ATTEMPTS):
            cur = await self.state.get(_INDEX, _INDEX_KEY)
            if cur is None:
                if await self.state.create(_INDEX, _INDEX_KEY, {"ids": [rid], "seq": 0}):
                    return
                continue
            ids, seq = list(cur.value.get("ids", [])), int(cur.value.get("seq", 0))
            if len(ids) >= _CHUNK:
                # A full record at this version has one content, so whichever replica seals it
                # writes the same chunk; then the next record starts.
                await self._seal(seq, ids)
                new = {"ids": [rid], "seq": seq + 1}
            else:
                new = {"ids": [*ids, rid], "seq": seq}
            if await self.state.update(_INDEX, _INDEX_KEY, new, version=cur.version):
                return

    async def _seal(self, seq: int, ids: list[str]) -> None:
        key, expires = f"chunk-{seq}", time.time() + _CHUNK_SECONDS
        if await self.state.create(_INDEX, key, {"ids": ids}, expires_at=expires):
            return
        old = await self.state.get(_INDEX, key)
        if old is not None and old.value.get("ids") != ids:  # left over from an index that was reset
            await self.state.update(_INDEX, key, {"ids": ids}, version=old.version, expires_at=expires)

    async def page(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Requests at index positions ``offset`` to ``offset + limit``, newest first, those the store
        still keeps; and whether older positions exist (the admin page's paging)."""
        cur = await self.state.get(_INDEX, _INDEX_KEY)
        if cur is None:
            return [], False
        ids = list(reversed(cur.value.get("ids", [])))
        seq = int(cur.value.get("seq", 0)) - 1
        while len(ids) <= offset + limit and seq >= 0:
            chunk = await self.state.get(_INDEX, f"chunk-{seq}")
            if chunk is None:  # expired, and every older chunk before it
                break
            ids += reversed(chunk.value.get("ids", []))
            seq -= 1
        out = []
        for rid in ids[offset : offset + limit]:
            rec = await self.get(rid)
            if rec is not None:
                out.append(rec)
        return out, len(ids) > offset + limit

    async def _by_nonce(self, nonce: str) -> dict[str, Any] | None:
        idx = await self.state.get(_BY_NONCE, nonce)
        if idx is None:
            return None
        rec = await self.state.get(APPROVAL_NAMESPACE, str(idx.value.get("id")))
        return rec.value if rec is not None else None

    async def get(self, request_id: str) -> dict[str, Any] | None:
        """The record with ``status`` reading ``expired`` once past its expiry while undecided."""
        if not isinstance(request_id, str) or not 8 <= len(request_id) <= 64:
            return None
        rec = await self.state.get(APPROVAL_NAMESPACE, request_id)
        if rec is None:
            return None
        value = dict(rec.value)
        if value["status"] in ("pending", "approved") and time.time() > value["expires_at"]:
            value["status"] = "expired"
        return value

    async def decide(
        self, request_id: str, approver: Principal, verdict: str, comment: str = ""
    ) -> dict[str, Any]:
        """Record ``approver``'s ``approve`` or ``deny``; the new record, or HumanApprovalError."""
        if verdict not in ("approve", "deny"):
            raise HumanApprovalError(f"unknown verdict {verdict!r}", code="APPROVAL_NOT_ALLOWED")
        for _ in range(_CAS_ATTEMPTS):
            stored = await self.state.get(APPROVAL_NAMESPACE, request_id)
            if stored is None:
                raise HumanApprovalError("no such approval request", code="APPROVAL_NOT_FOUND")
            rec = dict(stored.value)
            now = time.time()
            if rec["status"] != "pending":
                raise HumanApprovalError(f"this request is already {rec['status']}", code="APPROVAL_DECIDED")
            if now > rec["expires_at"]:
                raise HumanApprovalError("this request has expired", code="APPROVAL_EXPIRED")
            if approver.user == rec["requester"]:
                raise HumanApprovalError(
                    "the requester cannot decide on their own request", code="APPROVAL_SELF"
                )
            if rec["approvers_group"] not in approver.groups:
                raise HumanApprovalError(
                    f"only members of {rec['approvers_group']!r} decide on approvals",
                    code="APPROVAL_NOT_APPROVER",
                )
            if any(d["who"] == approver.user for d in rec["decisions"]):
                raise HumanApprovalError(
                    "you already decided on this request; another approver must", code="APPROVAL_DECIDED"
                )
            rec["decisions"] = [
                *rec["decisions"],
                {"who": approver.user, "at": now, "verdict": verdict, "comment": comment[:2000]},
            ]
            approvals = {d["who"] for d in rec["decisions"] if d["verdict"] == "approve"}
            if verdict == "deny":
                rec["status"] = "denied"
            elif len(approvals) >= rec["required"]:
                rec["status"] = "approved"
            if await self.state.update(APPROVAL_NAMESPACE, request_id, rec, version=stored.version):
                return rec
        raise HumanApprovalError("the request is being decided concurrently; try again", code="APPROVAL_BUSY")

    async def wait(self, request_id: str, seconds: float) -> dict[str, Any]:
        """Poll the shared store until the request is no longer pending or ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        while True:
            rec = await self.get(request_id)
            if rec is None:
                raise HumanApprovalError("the approval request is gone", code="APPROVAL_NOT_FOUND")
            if rec["status"] != "pending" or time.monotonic() >= deadline:
                return rec
            await asyncio.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    async def consume(self, request_id: str, *, code_hash: str, requester: str) -> dict[str, Any]:
        """Turn an approved request into ``used`` (exactly one caller wins); refuse anything else."""
        for _ in range(_CAS_ATTEMPTS):
            stored = await self.state.get(APPROVAL_NAMESPACE, request_id)
            if stored is None:
                raise HumanApprovalError("the approval request is gone", code="APPROVAL_NOT_FOUND")
            rec = dict(stored.value)
            _refuse_unless_approved(rec)
            # Bound to the exact code and requester (the nonce index binds it to the token too).
            if rec["code_hash"] != code_hash or rec["requester"] != requester:
                raise HumanApprovalError(
                    "this approval was given for other code or another requester", code="APPROVAL_MISMATCH"
                )
            rec["status"] = "used"
            rec["used_at"] = time.time()
            if await self.state.update(APPROVAL_NAMESPACE, request_id, rec, version=stored.version):
                return rec
        raise HumanApprovalError("the request is being used concurrently", code="APPROVAL_USED")


def _refuse_unless_approved(rec: dict[str, Any]) -> None:
    status = rec["status"]
    if status == "approved" and time.time() > rec["expires_at"]:
        status = "expired"
    if status == "approved":
        return
    if status == "denied":
        who = ", ".join(d["who"] for d in rec["decisions"] if d["verdict"] == "deny")
        raise HumanApprovalError(f"the approval request was denied by {who}; nothing was run")
    if status == "expired" or (status == "pending" and time.time() > rec["expires_at"]):
        raise HumanApprovalError(
            "the approval request expired before it was approved; nothing was run",
            code="APPROVAL_EXPIRED",
            hint="Call validate_code again to get a new token and a new approval request.",
        )
    if status == "used":
        raise HumanApprovalError(
            "this approval was already used for one run",
            code="APPROVAL_USED",
            hint="An approval runs its query once; validate again and ask for a new approval.",
        )
    raise HumanApprovalError("the request is not approved yet", code="APPROVAL_NOT_DECIDED")
