"""Analyzer timings: the typical query stage by stage, TPC-H, and growth with schema size.

    python benchmarks/bench_analyze.py [--quick]

Prints medians (and p10-p90) of ``Analyzer.analyze`` per query and dialect:

- the typical query (one join, a filter, a group, an order) with a per-stage breakdown:
  sqlglot parse, the engine's own parse, classification, resolution, rules, explanation,
  rendering, and the round-trip re-parse;
- the eight analyst queries of benchmarks/queries.py and the six-table TPC-H queries;
- the same two query shapes against schemas of 10, 100 and 1,000 tables;
- the resolver against the obvious alternative, sqlglot's ``qualify`` with a
  ``MappingSchema`` of the same snapshot (the measurement behind writing our own).

Every analysis is timed *cold*: the caches keyed by the code's text (the engine's parse,
the round-trip re-parse) are cleared before each call, as for a query never seen before.
The *warm* figure (same text analyzed again, e.g. at execute time) is printed beside the
typical query. Timings vary with machine load; medians of batched samples after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlglot
from queries import (
    TPCH,
    TYPICAL,
    synthetic_query,
    synthetic_six_table_query,
    synthetic_tables,
    tpch_tables,
)
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from sqlmode.analyze import Analyzer
from sqlmode.analyze import classify as C
from sqlmode.analyze import parse as P
from sqlmode.analyze import rules as R
from sqlmode.analyze.complexity import measure, query_blocks
from sqlmode.analyze.explain import explain
from sqlmode.analyze.references import resolve
from sqlmode.analyze.rewrite import inject_limit, render
from sqlmode.analyze.roundtrip import _reparse, check_round_trip
from sqlmode.config import Settings, settings_from_dict
from sqlmode.engines import engine_named
from sqlmode.schema.snapshot import ColumnInfo, SchemaSnapshot, TableInfo

SAMPLE = {
    "customers": ("id", "name", "email", "ssn", "region", "segment", "created_at"),
    "products": ("id", "name", "category", "price"),
    "orders": ("id", "customer_id", "status", "total", "created_at"),
    "order_items": ("order_id", "product_id", "quantity", "unit_price"),
    "support_tickets": ("id", "customer_id", "opened_at", "closed_at", "priority", "status", "subject"),
    "contacts": ("id", "customer_id", "contacted_at", "channel", "rep"),
    "credentials": ("id", "user_id", "secret"),
    "audit_log": ("id", "at", "actor", "action", "detail"),
}
URLS = {"duckdb": "duckdb:///bench.duckdb", "postgres": "postgresql://bench@localhost/bench"}


def timeit(fn: Callable[[], object], budget_s: float) -> tuple[float, float, float]:
    """(median, p10, p90) in microseconds; samples are means over small batches."""
    for _ in range(20):
        fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    batch = max(1, int(0.002 / one))
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline or len(samples) < 15:
        t = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - t) / batch * 1e6)
    samples.sort()
    return statistics.median(samples), samples[len(samples) // 10], samples[(len(samples) * 9) // 10]


def cold(analyzer: Analyzer, sql: str, snap: SchemaSnapshot) -> Callable[[], object]:
    """One analysis of code never seen before: text-keyed caches emptied first."""

    def run() -> object:
        P.engine_view.cache_clear()
        _reparse.cache_clear()
        return analyzer.analyze(sql, snap)

    return run


def fmt(us: tuple[float, float, float]) -> str:
    med, lo, hi = us
    return f"{med / 1000:7.3f} ms  ({lo / 1000:.3f} - {hi / 1000:.3f})"


def settings(dialect: str) -> Settings:
    return settings_from_dict(
        {
            "database": {"url": URLS[dialect]},
            "code_mode": {
                "blocked_tables": ["credentials", "audit_log"],
                "blocked_fields": ["customers.ssn"],
                "max_joins": 20,
                "max_complexity": 10_000,
            },
        }
    )


def snapshot(dialect: str, tables: list[TableInfo]) -> SchemaSnapshot:
    return SchemaSnapshot.build(
        dialect,
        "bench",
        tables,
        blocked_tables=["credentials", "audit_log"],
        blocked_fields=["customers.ssn"],
    )


def sample_tables() -> list[TableInfo]:
    return [TableInfo(n, tuple(ColumnInfo(c, "VARCHAR") for c in cols)) for n, cols in SAMPLE.items()]


def stages(dialect: str, sql: str, snap: SchemaSnapshot, analyzer: Analyzer, budget: float) -> None:
    """Each stage of one analysis on its own (the sum is close to the whole)."""
    rules = analyzer.rules
    root = P.parse_one(sql, dialect)
    cls = C.classify(root, allow_writes=False, allow_deletes=False)
    inv = cls.inventory
    assert inv is not None, "a SELECT is classified with its inventory"
    refs = resolve(root, snap, inv, analyzer.traits)
    blocks = query_blocks(inv)
    weighed = measure(inv, refs, blocks)
    limited = inject_limit(root.copy(), rules.max_rows)
    normalized = render(limited.root.copy(), dialect)
    final = P.parse_one(normalized, dialect)

    def round_trip_cold() -> None:
        _reparse.cache_clear()
        check_round_trip(normalized, final, dialect)

    parts: dict[str, Callable[[], object]] = {
        "sqlglot parse": lambda: P.parse_one(sql, dialect),
        "engine parse (original)": lambda: P.engine_view.__wrapped__(sql, analyzer.engine),
        "classify (one walk)": lambda: C.classify(root, allow_writes=False, allow_deletes=False),
        "resolve tables/columns": lambda: resolve(root, snap, inv, analyzer.traits),
        "rules (analyze/rules: RULES in order)": lambda: R.run_rules(
            R.RuleContext(sql, root, snap, rules, inv, refs, blocks, weighed)
        ),
        "complexity": lambda: measure(inv, refs, query_blocks(inv)),
        "explanation": lambda: explain(limited.root, limited, dialect),
        "render (normalized code)": lambda: render(limited.root.copy(), dialect),
        "  (tree copy, not in analyze)": lambda: limited.root.copy(),
        "engine re-check of rendering": lambda: P.confirm_rendered(normalized, analyzer.engine, "SELECT"),
        "round trip (re-parse + compare)": round_trip_cold,
    }
    for name, fn in parts.items():
        print(f"    {name:55s} {fmt(timeit(fn, budget))}")


def qualify_alternative(
    dialect: str, sql: str, tables: list[TableInfo], budget: float
) -> tuple[float, float]:
    """Our resolver vs sqlglot's qualify with a MappingSchema (schema built once, as we would)."""
    mapping: dict[str, object] = {t.name: {c.name: c.type for c in t.columns} for t in tables}
    schema = MappingSchema(mapping, dialect=dialect)
    traits = engine_named(dialect).traits
    root = sqlglot.parse_one(sql, read=dialect)
    snap = snapshot(dialect, tables)
    inv = C.survey(root)[1]
    ours = timeit(lambda: resolve(root, snap, inv, traits), budget)[0]
    theirs = timeit(lambda: qualify(root.copy(), schema=schema, dialect=dialect), budget)[0]
    return ours, theirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter sampling (about 4x faster, noisier)")
    args = ap.parse_args()
    budget = 0.15 if args.quick else 0.6
    print(f"sqlglot {sqlglot.__version__}; timings are medians (p10 - p90) per call\n")
    for dialect in ("duckdb", "postgres"):
        analyzer = Analyzer(settings(dialect))
        snap = snapshot(dialect, sample_tables())
        typical = TYPICAL[0][1]
        a = analyzer.analyze(typical, snap)
        assert not a.violations, a.violations
        print(
            f"[{dialect}] typical query, full analysis: {fmt(timeit(cold(analyzer, typical, snap), budget))}"
        )
        warm = timeit(partial(analyzer.analyze, typical, snap), budget / 2)
        print(f"    same text again (warm caches, e.g. at execute time)   {fmt(warm)}")
        stages(dialect, typical, snap, analyzer, budget / 2)
        meds = []
        for qname, sql in TYPICAL:
            r = timeit(cold(analyzer, sql, snap), budget / 2)
            meds.append(r[0])
            print(f"    analyst query {qname:20s} {fmt(r)}")
        print(f"    median over {len(TYPICAL)} analyst queries: {statistics.median(meds) / 1000:.3f} ms")

        tpch_snap = snapshot(dialect, tpch_tables())
        for qname, sql in TPCH:
            a = analyzer.analyze(sql, tpch_snap)
            note = "" if not a.violations else f"  refused: {[v.code for v in a.violations]}"
            print(f"    TPC-H {qname:28s} {fmt(timeit(cold(analyzer, sql, tpch_snap), budget / 2))}{note}")

        print(
            "    schema size (tables): typical shape | six-table join | our resolver vs qualify+MappingSchema"
        )
        for n in (10, 100, 1000):
            tables = synthetic_tables(n)
            s = snapshot(dialect, tables)
            q1, q6 = synthetic_query(n), synthetic_six_table_query(n)
            t1 = timeit(cold(analyzer, q1, s), budget / 3)
            t6 = timeit(cold(analyzer, q6, s), budget / 3)
            ours, theirs = qualify_alternative(dialect, q6, tables, budget / 3)
            print(
                f"      {n:5d}  {t1[0] / 1000:7.3f} ms | {t6[0] / 1000:7.3f} ms | "
                f"{ours / 1000:.3f} ms vs {theirs / 1000:.3f} ms ({theirs / ours:.1f}x)"
            )
        print()


if __name__ == "__main__":
    main()
