"""URL elicitation for human approval: a convenience on top of the approval page, never a proof.

The URL may reach the model; it approves nothing by itself (the page authenticates the approver).

- 2026-07-28 clients that declare URL elicitation: execute_code answers with an
  ``InputRequiredResult`` carrying an ``ElicitRequestURLParams`` and a ``requestState`` naming the
  request. Each retry long-polls the store (``approval.wait_seconds``); still undecided, it answers
  a state-only round (no new question), so the client retries without asking the user again.
- Older sessions with URL elicitation: ``elicit_url`` mid-call, progress heartbeats while the call
  waits for the decision, then ``notifications/elicitation/complete``.
- Everyone else gets the ``approval_required`` result (see server.approval_required_result).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
from typing import Any

from mcp.server.elicitation import AcceptedUrlElicitation
from mcp.server.mcpserver import Context
from mcp.server.request_state import RequestStateSecurity
from mcp.types import ElicitRequest, ElicitRequestURLParams, InputRequiredResult
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ..errors import ApprovalPending
from ..output import terminal_safe

__all__ = ["APPROVAL_STATE", "approval_state_of", "can_url_elicit", "input_required", "legacy_wait"]

# The prefix of sqlmode's own requestState (the SDK seals it; the resolver's state never has it).
APPROVAL_STATE = "sqlmode-approval:"
_KEY = "approval"


def request_state_security(secret: str | None) -> RequestStateSecurity | None:
    """Sealing keys for ``requestState`` every worker of one config shares (derived from the token
    secret, never the secret itself), so a retry may land on any of them; None: the SDK's per-process key."""
    if not secret:
        return None
    key = hmac.new(secret.encode(), b"sqlmode/mcp-request-state/v1", hashlib.sha256).digest()
    return RequestStateSecurity(keys=[key])


def can_url_elicit(ctx: Context) -> bool:
    """Whether the client declared URL-mode elicitation (and, before 2026-07-28, can be asked)."""
    caps = ctx.client_capabilities
    e = caps.elicitation if caps is not None else None
    if e is None or e.url is None:
        return False
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or ctx.session.can_send_request


def is_modern(ctx: Context) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def approval_state_of(ctx: Context | None) -> str | None:
    """The approval id a retry carries in its (already unsealed) requestState, or None."""
    if ctx is None:
        return None
    try:
        state = ctx.request_state
    except Exception:  # no request context (a direct call)
        return None
    if isinstance(state, str) and state.startswith(APPROVAL_STATE):
        return state[len(APPROVAL_STATE) :]
    return None


def message(ticket: dict[str, Any]) -> str:
    who = terminal_safe(str(ticket.get("approvers")))
    return (
        f"This query needs approval by a member of {who!r} (not the requester). Open the approval page "
        "to review the exact SQL; the query runs once it is approved."
    )


def input_required(ticket: dict[str, Any], *, ask: bool) -> InputRequiredResult:
    """The modern answer: the URL question on the first round, a state-only round afterwards."""
    state = APPROVAL_STATE + str(ticket["id"])
    if not ask:
        return InputRequiredResult(request_state=state)
    question = ElicitRequest(params=ElicitRequestURLParams(message=message(ticket), url=str(ticket["url"])))
    return InputRequiredResult(input_requests={_KEY: question}, request_state=state)


def declined(ctx: Context) -> bool:
    """Whether the client's answer to the URL question was decline or cancel."""
    responses = ctx.input_responses or {}
    answer: Any = responses.get(_KEY)
    action = getattr(answer, "action", None)
    return action in ("decline", "cancel")


async def legacy_wait(ctx: Context, e: ApprovalPending, run: Any) -> Any:
    """Before 2026-07-28: ask with elicit_url, then call ``run()`` (which long-polls) until decided.

    ``run`` raises ApprovalPending while undecided; returns the result otherwise. Returns None
    when the user declined to open the page (the caller answers approval_required then).
    """
    rid = str(e.data["id"])
    answer = await ctx.elicit_url(message(e.data), str(e.data["url"]), rid)
    if not isinstance(answer, AcceptedUrlElicitation):
        return None
    started = time.monotonic()
    while True:
        try:
            result = await run()
        except ApprovalPending:
            elapsed = time.monotonic() - started
            # Progress is a courtesy; a client that went away ends the call through cancellation.
            with contextlib.suppress(Exception):
                await ctx.report_progress(elapsed, None, f"waiting for approval for {elapsed:.0f} s")
            continue
        with contextlib.suppress(Exception):  # a courtesy too: the result is what the client waits for
            await ctx.session.send_elicit_complete(rid, related_request_id=ctx.request_id)
        return result
