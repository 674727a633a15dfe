"""Governance micro-benchmarks: a Cedar decision with the cached PolicySet, token mint + verify.

    python benchmarks/bench_governance.py [--rounds 7] [--number 2000] [--json]

Prints the median per-operation time over ``rounds`` timing rounds of ``number``
calls each (after a warm-up). Targets (design target): Cedar decision < 0.2 ms, token
mint + verify < 0.05 ms. Nothing here touches a database.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any, TypedDict

from sqlmode.config import bundled_path, settings_from_dict
from sqlmode.models import Action, Analysis, Complexity, Principal, RiskLevel
from sqlmode.policy import CedarEvaluator
from sqlmode.token import TokenService, code_hash


class _Binding(TypedDict):
    """What a token is bound to (the keyword arguments ``mint`` and ``verify`` share)."""

    code_hash: str
    user: str
    session: str
    schema_hash: str
    policy_hash: str


TARGETS_MS = {"cedar_decision": 0.2, "cedar_decision_denied": 0.2, "token_mint_verify": 0.05}


def _settings() -> Any:
    """The sample config's governance, plus the example policies, without a database."""
    return settings_from_dict(
        {
            "database": {
                "url": "duckdb:///:memory:",
                "tables": [{"name": n} for n in ("customers", "orders")],
            },
            "code_mode": {
                "blocked_tables": ["audit_log", "credentials"],
                "blocked_fields": ["customers.ssn"],
                "token_secret": "bench-secret-" + "x" * 32,
            },
            "policy": {
                "paths": [str(bundled_path("policies") / "examples")],
                "users": {"ann": {"groups": ["analysts"]}},
            },
        }
    )


def _analysis(columns: list[str]) -> Analysis:
    # The shape of the long-tail question's query: six tables, a dozen columns, windows.
    tables = ["customers", "orders", "order_items", "products", "support_tickets", "contacts"]
    return Analysis(
        dialect="duckdb",
        code="SELECT ...",
        statement_type="SELECT",
        action=Action.READ,
        tables=tables,
        columns=columns,
        functions=["sum", "lag", "count", "date_trunc", "max", "row_number"],
        complexity=Complexity(score=120, tables=6, joins=5, depth=3, fields=8, window_functions=2),
        risk_level=RiskLevel.MEDIUM,
        row_limit=20,
    )


def _median_ms(fn: Callable[[], object], rounds: int, number: int) -> float:
    for _ in range(max(number // 10, 10)):
        fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number * 1000)
    return statistics.median(samples)


def run(rounds: int = 7, number: int = 2000) -> dict[str, float]:
    """Medians in milliseconds per operation."""
    settings = _settings()
    evaluator = CedarEvaluator(settings)
    bob = Principal("bob", (), "s1")
    ann = Principal("ann", (), "s1")
    columns = [
        "customers.id", "customers.region", "orders.id", "orders.customer_id", "orders.total",
        "orders.created_at", "order_items.order_id", "order_items.quantity", "support_tickets.customer_id",
        "support_tickets.opened_at", "contacts.customer_id", "contacts.contacted_at",
    ]  # fmt: skip
    allowed, denied = _analysis(columns), _analysis(columns)
    assert evaluator.evaluate(bob, allowed).allowed
    assert not evaluator.evaluate(ann, denied).allowed  # analysts may not touch support_tickets

    tokens = TokenService.from_settings(settings)
    bind: _Binding = {
        "code_hash": code_hash("SELECT id FROM orders LIMIT 20"),
        "user": "bob",
        "session": "s1",
        "schema_hash": "0" * 32,
        "policy_hash": evaluator.policy_hash,
    }

    def mint_verify() -> None:
        token, _ = tokens.mint(**bind, action="read", risk="low")
        tokens.verify(token, **bind)

    return {
        "cedar_decision": _median_ms(lambda: evaluator.evaluate(bob, allowed), rounds, number),
        "cedar_decision_denied": _median_ms(lambda: evaluator.evaluate(ann, denied), rounds, number),
        "token_mint_verify": _median_ms(mint_verify, rounds, number),
        "policy_hash": _median_ms(lambda: evaluator.policy_hash, rounds, number),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = run(args.rounds, args.number)
    if args.json:
        print(json.dumps({k: round(v, 5) for k, v in results.items()}))
        return
    for name, ms in results.items():
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else f"  (target < {target} ms: {'ok' if ms < target else 'MISSED'})"
        print(f"{name:24s} {ms * 1000:8.1f} us median{verdict}")


if __name__ == "__main__":
    main()
