"""The approvers' webhook: one POST per new approval request, best effort, never blocking the caller.

The body names the request and its page, not the SQL (a chat channel is not the place to read it):
``{"event": "approval.requested", "id", "url", "requester", "risk", "action", "tables", "code_hash",
"approvers", "required", "expires_at"}``. With ``approval.webhook_secret`` the body is signed:
``X-Sqlmode-Signature: sha256=<hex HMAC-SHA256 of the body>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

import httpx2

from ..config import ApprovalConfig

__all__ = ["notify_approvers", "webhook_body"]

log = logging.getLogger("sqlmode.approval")

_TIMEOUT_SECONDS = 5.0


def webhook_body(rec: dict[str, Any], url: str) -> bytes:
    doc = {
        "event": "approval.requested",
        "id": rec["id"],
        "url": url,
        "requester": rec["requester"],
        "risk": rec["risk"],
        "action": rec["action"],
        "tables": rec["tables"],
        "code_hash": rec["code_hash"],
        "approvers": rec["approvers_group"],
        "required": rec["required"],
        "expires_at": rec["expires_at"],
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


async def notify_approvers(cfg: ApprovalConfig, rec: dict[str, Any], url: str) -> bool:
    """POST the request to ``approval.webhook_url``; False (logged) when it could not be delivered."""
    if not cfg.webhook_url:
        return False
    body = webhook_body(rec, url)
    headers = {"content-type": "application/json"}
    if cfg.webhook_secret:
        mac = hmac.new(cfg.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        headers["x-sqlmode-signature"] = f"sha256={mac}"
    try:
        async with httpx2.AsyncClient(timeout=_TIMEOUT_SECONDS, follow_redirects=False) as h:
            r = await h.post(cfg.webhook_url, content=body, headers=headers)
        if r.status_code >= 300:
            raise ValueError(f"HTTP {r.status_code}")
    except Exception as e:  # best effort: the request is pending on the page either way
        log.warning(
            "approval webhook failed: %s",
            e,
            extra={"event": "approval_webhook_failed", "approval_id": rec["id"]},
        )
        return False
    return True
