"""The evaluator sends Cedar only what the policies can read; decisions must not change.

For random analyses and principals, the decision from the engine's trimmed request
(context attributes and set members the policies use, parents they name) equals the
decision Cedar reaches from the full request.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import cedarpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlmode.models import Principal
from sqlmode.policy import CedarEvaluator, build_request
from sqlmode.policy.engine import context_usage

from .conftest import SAMPLE_TABLES, analysis_from, policy_settings

CONFIGS: dict[str, dict[str, Any]] = {
    "sample": {
        "code_mode": {"blocked_tables": ["audit_log", "credentials"], "blocked_fields": ["customers.ssn"]}
    },
    "examples": {
        "code_mode": {"blocked_fields": ["customers.ssn"], "max_rows": 100},
        "policy": {"paths": ["examples"], "users": {"ann": {"groups": ["analysts"]}}},
    },
    "writes": {
        "database": {"tables": [{"name": "orders", "operations": ["read", "write"]}, {"name": "products"}]},
        "code_mode": {
            "allow_writes": True,
            "allow_deletes": True,
            "cedar_policies": {"read_only_mode": False},
        },
        "policy": {"paths": ["examples/writers.cedar"]},
    },
}

COLUMNS = [f"{t}.{c}" for t, cols in SAMPLE_TABLES.items() for c in cols]


@cache
def _evaluator(name: str) -> CedarEvaluator:
    return CedarEvaluator(policy_settings(CONFIGS[name]), check_interval=3600)


summaries = st.fixed_dictionaries(
    {
        "action": st.sampled_from(["read", "read", "write", "delete", "admin", "unknown"]),
        "tables": st.lists(st.sampled_from([*SAMPLE_TABLES, "pg_class", "events"]), max_size=4),
        "columns": st.lists(st.sampled_from(COLUMNS), max_size=8),
        "functions": st.lists(st.sampled_from(["sum", "count", "duckdb_tables", "lag"]), max_size=3),
        "targets": st.lists(st.sampled_from(["orders", "products", "customers"]), max_size=2),
        "risk": st.sampled_from(["low", "medium", "high", "critical"]),
        "depth": st.integers(0, 12),
        "joins": st.integers(0, 10),
        "fields": st.integers(0, 120),
        "complexity": st.integers(0, 500),
        "row_limit": st.sampled_from([0, 10, 100, 1000, 5000]),
    }
)
principals = st.builds(
    Principal,
    user=st.sampled_from(["ann", "bob", "wendy"]),
    groups=st.lists(st.sampled_from(["analysts", "pii_readers", "writers", "stewards"]), max_size=2).map(
        tuple
    ),
)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(CONFIGS)), summary=summaries, principal=principals)
def test_trimmed_request_decides_like_the_full_request(
    name: str, summary: dict, principal: Principal
) -> None:
    ev = _evaluator(name)
    analysis = analysis_from(summary)
    trimmed = ev.evaluate(principal, analysis)
    request, entities = build_request(ev._settings, principal, analysis)  # everything
    full = cedarpy.is_authorized(request, ev.loaded.policy_set, entities)
    assert not full.diagnostics.errors
    assert trimmed.allowed is full.allowed
    ids = {ev.loaded.meta[p].policy_id for p in full.diagnostics.reasons}
    assert set(trimmed.policy_ids) == ids


def test_context_usage_reads_policy_shapes() -> None:
    text = """
    permit (principal, action, resource) when { context.columns.contains("a.b") };
    permit (principal, action, resource) when { context.columns.containsAny(["c.d", "e.f"]) };
    permit (principal, action, resource) when { context.tables.contains("x") };
    permit (principal, action, resource) when { ["x", "y"].containsAll(context.tables) };
    permit (principal, action, resource) when { context has functions };
    permit (principal, action, resource) when { context.depth > 3 };
    """
    usage = context_usage(cedarpy.policies_to_pst(text).static_policies)
    assert usage == {
        "columns": frozenset({"a.b", "c.d", "e.f"}),
        "tables": None,
        "functions": frozenset(),
        "depth": None,
    }
    whole = 'permit (principal, action, resource) when { context == {"depth": 1} };'
    assert context_usage(cedarpy.policies_to_pst(whole).static_policies) is None
