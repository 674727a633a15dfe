"""Human approval: which queries wait for a person, and their requests in the shared state store.

The HTTP pages where approvers decide live in :mod:`sqlmode.web` (the server layer).
"""

from __future__ import annotations

from .book import APPROVAL_NAMESPACE, ApprovalBook, ApprovalTicket, needs_approval

__all__ = ["APPROVAL_NAMESPACE", "ApprovalBook", "ApprovalTicket", "needs_approval"]
