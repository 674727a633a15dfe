"""The Cedar evaluator: a PolicySet parsed once, reloaded when its sources change.

Loading parses and validates all three layers against the schema and reads each
policy's annotations (``@id``, ``@code``, ``@reason``, ``@hint``) so that a
decision names its deciding policies and turns a denial into violations with hints.

Fail closed: a load failure at start-up raises :class:`PolicyError`; a failure on a
later reload (someone saved a broken file) makes every decision a denial with
``POLICY_INVALID`` until the files are fixed, rather than keeping stale policies.
A Cedar evaluation error (which Cedar answers by skipping the policy, so an erroring
forbid would not forbid) is also a denial.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import cedarpy
from cedarpy import pst
from cedarpy.pst import entity_uids

from ..config import Settings
from ..errors import PolicyError
from ..models import Analysis, Decision, Principal, Violation
from .check import check_sources
from .request import build_request
from .source import (
    Sources,
    effective_text,
    load_sources,
    policies_dir,
    policy_hash_of,
    split_statements,
    stamps,
    watched_paths,
)

log = logging.getLogger(__name__)
_CONTEXT = pst.Var("context")

# Decisions kept per process (a Decision is a few hundred bytes).
DECISION_CACHE_SIZE = 1024

_DEFAULT_HINT = "Change the query so that the policy no longer matches, or ask an administrator."
_NO_PERMIT = {
    "read": ("POLICY_DENIED", "No policy permits {user} to read this data."),
    "write": ("WRITE_NOT_ALLOWED", "No policy permits {user} to write; writes are not enabled."),
    "delete": ("DELETE_NOT_ALLOWED", "No policy permits {user} to delete; deletes are not enabled."),
    "admin": ("STATEMENT_NOT_ALLOWED", "Administrative statements are not permitted."),
    "unknown": ("STATEMENT_NOT_ALLOWED", "The statement kind could not be classified."),
}


@dataclass(frozen=True, slots=True)
class PolicyMeta:
    """What a decision reports about one policy."""

    policy_id: str  # the @id annotation, else "<file>#<n>"
    effect: str
    layer: str
    source: str
    line: int
    code: str | None
    reason: str | None
    hint: str | None
    # A permit with @approval("...") makes the queries it allows wait for a human approver.
    approval: str | None = None


@dataclass(frozen=True, slots=True)
class LoadedPolicies:
    """One immutable generation of the effective policy set."""

    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema
    meta: MappingProxyType[str, PolicyMeta]  # Cedar's positional id ("policy7") -> meta
    named: frozenset[tuple[str, str]]  # Table/Column uids some policy mentions
    context_usage: dict[str, frozenset[str] | None] | None  # see context_usage()
    reads_estimates: bool  # see reads_estimates()
    text: str  # the effective set, layer by layer, as `sqlmode policy check` prints it
    policy_hash: str
    stamps: tuple[tuple[str, int, int, int], ...]


def context_usage(policies: Any) -> dict[str, frozenset[str] | None] | None:
    """Which context attributes the policies read, and how much of each set they need.

    Maps attribute -> None (the whole value is needed) or a set of strings: the attribute
    is only ever used as ``context.x.contains("lit")`` or ``context.x.containsAny([...])``,
    so only those literals can change a decision and the rest of the set may be dropped.
    Returns None when some policy uses ``context`` as a whole.
    """
    usage: dict[str, set[str] | None] = {}

    def need(attr: str, literals: set[str] | None) -> None:
        current = usage.get(attr, set())
        usage[attr] = None if literals is None or current is None else current | literals

    stack: list[Any] = list(policies.values())
    while stack:
        node = stack.pop()
        if isinstance(node, pst.BinaryOp) and node.op in ("contains", "contains_any") and _reads(node.left):
            literals = _string_literals(node.right)
            need(cast(pst.GetAttr, node.left).attr, literals)
            if literals is None:
                stack.append(node.right)
        elif _reads(node):
            need(node.attr, None)
        elif isinstance(node, pst.HasAttr) and node.base == _CONTEXT:
            need(node.attrs[0], set())
        elif node == _CONTEXT:
            return None
        else:
            stack.extend(_children(node))
    return {k: None if v is None else frozenset(v) for k, v in usage.items()}


# What the plan's estimates set or change in the context: estimated_rows and estimated_cost (absent
# without them), and the risk they can raise (risk_rank, risk).
_ESTIMATED = frozenset({"estimated_rows", "estimated_cost", "risk_rank"})
_CRITICAL = pst.StringLit("critical")


def reads_estimates(policies: Any) -> bool:
    """Whether a decision can depend on the plan's estimates (execute/confirm.py asks for them then).

    True when a policy reads or tests ``estimated_rows`` / ``estimated_cost``, reads ``risk_rank``,
    uses ``context`` as a whole, or reads ``risk`` other than as ``context.risk == "critical"``
    (or ``!=``): the estimates raise a query's risk to medium or high, never to critical, so the
    baseline's critical rule does not need them.
    """
    stack: list[Any] = list(policies.values())
    while stack:
        node = stack.pop()
        if isinstance(node, pst.BinaryOp) and node.op in ("eq", "not_eq"):
            sides = (node.left, node.right)
            if _CRITICAL in sides and any(_reads(x) and cast(pst.GetAttr, x).attr == "risk" for x in sides):
                continue
        if _reads(node):
            if node.attr in _ESTIMATED or node.attr == "risk":
                return True
        elif isinstance(node, pst.HasAttr) and node.base == _CONTEXT:
            if _ESTIMATED & set(node.attrs):
                return True
        elif node == _CONTEXT:
            return True
        else:
            stack.extend(_children(node))
    return False


def _children(node: Any) -> list[Any]:
    """The sub-nodes of a parsed policy node (cedarpy's AST: mappings, tuples, dataclasses)."""
    if isinstance(node, Mapping):
        return list(node.values())
    if isinstance(node, tuple):
        return list(node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return [getattr(node, f.name) for f in dataclasses.fields(node)]
    return []


def _reads(node: Any) -> bool:
    return isinstance(node, pst.GetAttr) and node.base == _CONTEXT


def _string_literals(node: Any) -> set[str] | None:
    """The strings of a literal ``"a"`` or ``["a", "b"]``; None for anything else."""
    if isinstance(node, pst.StringLit):
        return {node.value}
    if isinstance(node, pst.Set) and all(isinstance(e, pst.StringLit) for e in node.elements):
        return {cast(pst.StringLit, e).value for e in node.elements}
    return None


def compile_sources(sources: Sources) -> LoadedPolicies:
    """Parse and validate ``sources``; raise PolicyError naming file and line on any problem."""
    text = effective_text(sources)
    try:
        schema = cedarpy.Schema.from_str(sources.schema_text)
        policy_set = cedarpy.PolicySet.from_str(text)
        valid = cedarpy.validate_policies(text, schema)
    except ValueError:
        valid = None
    if valid is None or not valid.validation_passed:
        report = check_sources(sources)
        raise PolicyError("policies failed to load:\n" + report.render(effective=False).rstrip())

    statements = [st for src in sources.layers for st in split_statements(src)]
    nodes = cedarpy.policies_to_pst(text).static_policies
    named = frozenset(
        (str(uid.type), uid.id) for uid in entity_uids(nodes) if str(uid.type) in ("Table", "Column")
    )
    meta: dict[str, PolicyMeta] = {}
    for n, (pid, node) in enumerate(sorted(nodes.items(), key=lambda kv: _position(kv[0]))):
        st = statements[n] if len(statements) == len(nodes) else None
        ann = node.annotations
        src_name = st.source.name if st else "?"
        fallback = f"{Path(src_name).name}#{n}"
        meta[pid] = PolicyMeta(
            policy_id=ann.get("id") or fallback,
            effect=node.effect,
            layer=st.source.layer if st else "?",
            source=src_name,
            line=st.line if st else 0,
            code=ann.get("code"),
            reason=ann.get("reason"),
            hint=ann.get("hint"),
            approval=ann.get("approval"),
        )
    return LoadedPolicies(
        policy_set=policy_set,
        schema=schema,
        meta=MappingProxyType(meta),
        named=named,
        context_usage=context_usage(nodes),
        # An @approval permit shows its approver the estimates (approval/book.py).
        reads_estimates=reads_estimates(nodes)
        or any(m.approval is not None and m.effect == "permit" for m in meta.values()),
        text=text,
        policy_hash=policy_hash_of(sources.schema_text, text),
        stamps=sources.stamps,
    )


class CedarEvaluator:
    """Cedar decisions with a cached PolicySet (the default :class:`PolicyEvaluator`)."""

    def __init__(
        self, settings: Settings, *, base_dir: Path | None = None, check_interval: float | None = None
    ):
        """Load and validate the policies now; raise PolicyError if they are broken.

        ``check_interval`` (default ``policy.reload_check_seconds``) throttles the change
        check: the watched files are stat'ed at most that often; 0 checks on every call.
        :meth:`reload` forces a re-read at any time.
        """
        self._settings = settings
        self._base = base_dir or policies_dir()
        self._interval = settings.policy.reload_check_seconds if check_interval is None else check_interval
        self._lock = threading.Lock()
        self._loaded = compile_sources(load_sources(settings, self._base))
        self._broken: PolicyError | None = None
        self._broken_stamps: tuple[tuple[str, int, int, int], ...] = ()
        self._watched = [str(p) for p in watched_paths(settings, self._base)]
        self._checked_at = time.monotonic()
        # A decision is a function of the policy set, the request and the entities: the key is
        # all of them (the policy hash, the principal's id and groups, the context built from the
        # analysis, the tables and columns), so a reload or another principal is a different key.
        self._decisions: OrderedDict[tuple[str, str, str, str, str], Decision] = OrderedDict()
        self.decision_hits = 0
        self._decisions_lock = threading.Lock()

    # -- loading -----------------------------------------------------------------

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._interval and now - self._checked_at < self._interval:
            return
        self._checked_at = now
        current = stamps(self._watched)
        if current == self._loaded.stamps and self._broken is None:
            return
        if self._broken is not None and current == self._broken_stamps:
            return
        self.reload()

    def reload(self) -> None:
        """Re-read every layer now. On failure every decision is a denial until fixed."""
        with self._lock:
            self._watched = [str(p) for p in watched_paths(self._settings, self._base)]
            try:
                sources = load_sources(self._settings, self._base)
            except PolicyError as e:
                self._fail(e, stamps(self._watched))
                return
            try:
                loaded = compile_sources(sources)
            except PolicyError as e:
                self._fail(e, sources.stamps)
                return
            if loaded.policy_hash != self._loaded.policy_hash:
                log.info("policies reloaded: %d policies, hash %s", len(loaded.meta), loaded.policy_hash[:12])
            self._loaded, self._broken = loaded, None

    def _fail(self, error: PolicyError, st: tuple[tuple[str, int, int, int], ...]) -> None:
        log.error("policy reload failed; refusing every query until fixed: %s", error)
        self._broken, self._broken_stamps = error, st

    # -- the PolicyEvaluator protocol ---------------------------------------------

    @property
    def policy_hash(self) -> str:
        """Hash of the schema and effective policy text; changes when files or config do."""
        self._refresh()
        if self._broken is not None:
            return "invalid:" + hashlib.sha256(str(self._broken).encode()).hexdigest()
        return self._loaded.policy_hash

    @property
    def reads_plan_estimates(self) -> bool:
        """Whether the current policies can decide on the plan's estimates or risk (reads_estimates())."""
        self._refresh()
        return self._loaded.reads_estimates

    @property
    def loaded(self) -> LoadedPolicies:
        """The current generation (after a change check)."""
        self._refresh()
        return self._loaded

    def evaluate(self, principal: Principal, analysis: Analysis) -> Decision:
        """Decide whether ``principal`` may run ``analysis``; never raises for a bad query."""
        self._refresh()
        if self._broken is not None:
            return _deny("POLICY_INVALID", f"The policy files are broken: {self._broken}", "policy.invalid",
                         hint="Tell an administrator: `sqlmode policy check` shows the problem.")  # fmt: skip
        loaded = self._loaded
        try:
            request, entities = build_request(
                self._settings, principal, analysis, named=loaded.named, usage=loaded.context_usage
            )
            action = request["action"]["id"]
            key = (loaded.policy_hash, principal.user, action, request["context"], entities)
            with self._decisions_lock:
                known = self._decisions.get(key)
                if known is not None:
                    self._decisions.move_to_end(key)
                    self.decision_hits += 1
                    return known
            result = cedarpy.is_authorized(request, loaded.policy_set, entities)
        except Exception as e:  # any failure here must refuse, never pass
            log.exception("Cedar evaluation failed")
            return _deny("POLICY_ERROR", f"Policy evaluation failed: {e}", "policy.error")
        decision = _decision(loaded, result, principal, action)
        if not result.diagnostics.errors:  # an evaluation error is logged each time it happens
            with self._decisions_lock:
                self._decisions[key] = decision
                while len(self._decisions) > DECISION_CACHE_SIZE:
                    self._decisions.popitem(last=False)
        return decision


def _position(pid: str) -> int:
    return int(pid.removeprefix("policy")) if pid.startswith("policy") else 1 << 30


def _deny(code: str, message: str, pid: str, hint: str = _DEFAULT_HINT) -> Decision:
    return Decision(False, (pid,), (message,), (Violation(code=code, message=message, hint=hint),))


def _decision(loaded: LoadedPolicies, result: Any, principal: Principal, action: str) -> Decision:
    diag = result.diagnostics
    if diag.errors:
        # Cedar skips a policy that errors; an erroring forbid must still refuse.
        msg = "; ".join(str(e) for e in diag.errors)
        log.error("Cedar evaluation error: %s", msg)
        return _deny("POLICY_ERROR", f"A policy could not be evaluated: {msg}", "policy.error",
                     hint="Tell an administrator: a policy fails on this query.")  # fmt: skip
    # Text order (baseline, server, custom), so decisions are stable and read top-down.
    hits = sorted((p for p in diag.reasons if p in loaded.meta), key=_position)
    metas = [loaded.meta[p] for p in hits]
    ids = tuple(m.policy_id for m in metas)
    if result.allowed:
        reasons = tuple(m.reason or f"permitted by {m.policy_id}" for m in metas)
        approval = tuple(
            f"policy {m.policy_id}: {m.approval}" if m.approval.strip() else f"policy {m.policy_id}"
            for m in metas
            if m.approval is not None and m.effect == "permit"
        )
        return Decision(True, ids, reasons, (), approval)
    if not metas:
        code, text = _NO_PERMIT.get(action, _NO_PERMIT["unknown"])
        msg = text.format(user=principal.user)
        return Decision(False, (), (msg,), (Violation(code=code, message=msg, hint=_DEFAULT_HINT),))
    violations = tuple(
        Violation(
            code=m.code or "POLICY_DENIED",
            message=m.reason or f"Refused by policy {m.policy_id}.",
            hint=m.hint or _DEFAULT_HINT,
        )
        for m in metas
    )
    return Decision(False, ids, tuple(v.message for v in violations), violations)


__all__ = ["CedarEvaluator", "LoadedPolicies", "PolicyMeta", "compile_sources", "effective_text"]
