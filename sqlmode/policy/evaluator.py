"""The PolicyEvaluator protocol and how to pick one from the config.

Callers depend only on the protocol: ``evaluate(principal, analysis) -> Decision``
and ``policy_hash``. Cedar (in process) is the default; ``noop`` allows everything
for development. A remote evaluator (for example Amazon Verified Permissions) is a
class with the same two members: send the request built by
:func:`sqlmode.policy.request.build_request` and map the answer to a Decision, with a
``policy_hash`` that changes when the remote policy store does (its version id). An evaluator may
also say whether its decisions read the plan's estimates or the risk (``reads_plan_estimates``);
one that does not say is given them.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Protocol, runtime_checkable

from ..config import Settings
from ..models import Analysis, Decision, Principal

log = logging.getLogger(__name__)


@runtime_checkable
class PolicyEvaluator(Protocol):
    """Decides whether a principal may run an analysed query."""

    @property
    def policy_hash(self) -> str:
        """Changes whenever the effective policy changes; approval tokens bind to it."""
        ...

    def evaluate(self, principal: Principal, analysis: Analysis) -> Decision:
        """Return the decision as a value; a refusal carries violations with hints."""
        ...


class NoopEvaluator:
    """Allows everything. For development only (``policy.evaluator = "noop"``).

    The analyzer's own rules still apply; only the Cedar layer is skipped.
    """

    POLICY_ID = "noop"

    def __init__(self, settings: Settings | None = None):
        log.warning("policy evaluation is disabled (policy.evaluator = 'noop'); every query passes Cedar")
        self._hash = "noop:" + hashlib.sha256(b"noop").hexdigest()

    @property
    def policy_hash(self) -> str:
        return self._hash

    @property
    def reads_plan_estimates(self) -> bool:
        return False

    def evaluate(self, principal: Principal, analysis: Analysis) -> Decision:
        return Decision(True, (self.POLICY_ID,), ("policy evaluation disabled (policy.evaluator = noop)",))


def build_evaluator(settings: Settings) -> PolicyEvaluator:
    """The evaluator the config asks for; Cedar policies are loaded and validated now."""
    from .engine import CedarEvaluator

    if settings.policy.evaluator == "noop":
        return NoopEvaluator(settings)
    return CedarEvaluator(settings)


__all__ = ["NoopEvaluator", "PolicyEvaluator", "build_evaluator"]
