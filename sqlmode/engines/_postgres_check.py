"""PostgreSQL's side of the engine check: pglast's reading of the calls, and EXPLAIN's binding.

pglast is PostgreSQL's own parser and costs microseconds: the normalized SQL must be exactly one
SELECT to it, and every call it sees must be one the analyzer's allowlist allows. The binding
comes from ``EXPLAIN (VERBOSE, FORMAT JSON)`` in the read-only session, every expression parsed
with PostgreSQL's grammar and every column mapped through the plan's aliases (_postgres_plan.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..analyze.codes import violation
from ..analyze.functions import FunctionPolicy
from ..execute.confirm import dotted, explain_or_refusal, table_lookup
from ..execute.function_rules import engine_call_allowed
from ..schema.snapshot import SchemaSnapshot
from ._postgres_plan import column_aliases, postgres_plan_facts, range_names
from .base import BoundAccess, EngineTraits, Executor

__all__ = ["bound_access", "engine_calls"]


def engine_calls(sql: str) -> tuple[str | None, set[tuple[str, str]]]:
    """(problem or None, the calls as (schema, name)) as pglast reads ``sql``."""
    problem, calls, _ = _parse(sql)
    return problem, calls


def _parse(sql: str) -> tuple[str | None, set[tuple[str, str]], Any]:
    """(problem or None, the calls, the parse tree): one pglast parse serves the calls and the aliases."""
    from pglast import parser as pg

    calls: set[tuple[str, str]] = set()
    try:
        doc = json.loads(pg.parse_sql_json(sql))
    except pg.ParseError as e:
        return f"PostgreSQL's parser rejects it ({str(e)[:200]})", calls, None
    stmts = doc.get("stmts", [])
    kinds = [next(iter(s.get("stmt", {"?": 0}))) for s in stmts]
    if kinds != ["SelectStmt"]:
        return f"PostgreSQL's parser reads {', '.join(kinds) or 'nothing'}", calls, None
    _calls(doc, calls)
    return None, calls, doc


def _calls(node: Any, out: set[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "FuncCall" and isinstance(value, dict):
                parts = [p.get("String", {}).get("sval", "") for p in value.get("funcname", [])]
                if parts:
                    out.add(((parts[-2] if len(parts) > 1 else "").lower(), parts[-1].lower()))
            _calls(value, out)
    elif isinstance(node, list):
        for item in node:
            _calls(item, out)


async def bound_access(
    sql: str,
    executor: Executor,
    *,
    traits: EngineTraits,
    snapshot: SchemaSnapshot,
    policy: FunctionPolicy,
    written_functions: Sequence[str],
    load_catalog: Callable[[], Awaitable[Any]],
    estimates: bool = True,  # PostgreSQL's plan has them anyway
) -> BoundAccess:
    problem, parsed_calls, tree = _parse(sql)
    if problem:
        msg = f"The normalized SQL is not one SELECT to the database: {problem}."
        return BoundAccess(refusal=violation("ROUND_TRIP_MISMATCH", msg))
    found = tuple(
        violation(
            "ENGINE_MISMATCH",
            f"The database's parser sees a call to `{dotted(schema, name)}` that the "
            "analyzer's allowlist does not allow.",
        )
        for schema, name in sorted(parsed_calls)
        if not engine_call_allowed(policy, traits, schema, name)
    )
    plan, refused = await explain_or_refusal(executor, sql)
    if refused is not None:
        return refused
    catalog = await load_catalog()
    facts = postgres_plan_facts(
        plan,
        table_lookup(snapshot),
        column_aliases(sql, tree),
        tables=range_names(sql, tree) if snapshot.ancestors else None,
        ancestors=_ancestors_of(snapshot),
        sources=lambda: range_names(sql, tree),
    )
    return BoundAccess(facts=facts, catalog=catalog, parsed_calls=frozenset(parsed_calls), violations=found)


def _ancestors_of(snapshot: SchemaSnapshot) -> Callable[[str, str], tuple[str, ...]]:
    """(schema, table) -> the names of the tables it inherits from (a partition's parents)."""

    def ancestors(schema: str, table: str) -> tuple[str, ...]:
        key = snapshot.key_of(table, schema or None)
        return tuple(snapshot.tables[k].name.lower() for k in snapshot.ancestors.get(key, ()))

    return ancestors
