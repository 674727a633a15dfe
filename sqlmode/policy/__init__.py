"""Governance with Cedar: who may run which query.

Three layers are evaluated together: ``policies/baseline.cedar``, server policies
generated from the config, and custom files from ``policy.paths``. See
``policies/README.md`` for writing and testing policies.

    evaluator = build_evaluator(settings)
    decision = evaluator.evaluate(principal, analysis)
    evaluator.policy_hash
    report = check_policies(settings); print(report)
"""

from .check import PolicyProblem, PolicyReport, check_policies
from .engine import CedarEvaluator
from .evaluator import NoopEvaluator, PolicyEvaluator, build_evaluator
from .generate import server_policies
from .request import build_context, build_request, principal_from_config

__all__ = [
    "CedarEvaluator",
    "NoopEvaluator",
    "PolicyEvaluator",
    "PolicyProblem",
    "PolicyReport",
    "build_context",
    "build_evaluator",
    "build_request",
    "check_policies",
    "principal_from_config",
    "server_policies",
]
