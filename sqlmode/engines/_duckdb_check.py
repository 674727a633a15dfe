"""DuckDB's side of the engine check: its parser's reading of the calls, and the bound plan.

One executor call on one worker hop (``DuckDBExecutor.bound_plan``): DuckDB's parser checks the
text is one SELECT (extract_statements), then what is read and called comes from the bound plan
before the optimizer (``json_serialize_plan``, _duckdb_plan.py), so nothing depends on statistics
or data; the optimized plan (``EXPLAIN``) is asked for in the same call only when its estimates
are needed (a cost limit, a rule that reads risk or the estimates, or ``plan_estimates =
"always"``: execute/confirm.py). The call may have started early, from the analysis worker, as
soon as the normalized text was known (``DuckDBExecutor.start_bound_plan``). The binder's own
``error`` guard of a scalar subquery is not the query's call unless the query itself wrote
``error``. A table function in the plan must be on the analyzer's allowlist.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..analyze.codes import violation
from ..analyze.functions import FunctionPolicy
from ..execute.confirm import dotted, planned_or_refusal, table_lookup
from ..execute.function_rules import engine_call_allowed
from ..schema.snapshot import SchemaSnapshot
from ._duckdb_exec import BoundPlanReply
from ._duckdb_parse import parser_connection
from ._duckdb_plan import BoundPlan, duckdb_estimates, read_bound_plan
from .base import BoundAccess, EngineTraits, Executor

__all__ = ["bound_access", "engine_calls"]

_QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})


def engine_calls(sql: str) -> tuple[str | None, set[tuple[str, str]]]:
    """(problem or None, the calls as (schema, name)) as DuckDB's parser reads ``sql``."""
    calls: set[tuple[str, str]] = set()
    try:
        raw = parser_connection().execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()[0]
    except Exception as e:  # any parser failure is a disagreement
        return f"DuckDB's parser rejects it ({str(e)[:200]})", calls
    doc = json.loads(raw)
    if doc.get("error"):
        return f"DuckDB's parser rejects it ({str(doc.get('error_message', ''))[:200]})", calls
    stmts = doc.get("statements", [])
    kinds = [str((s.get("node") or {}).get("type")) for s in stmts]
    if len(kinds) != 1 or kinds[0] not in _QUERY_NODES:
        return f"DuckDB's parser reads {', '.join(kinds) or 'nothing'}", calls
    _calls(doc, calls)
    return None, calls


def _calls(node: Any, out: set[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        if node.get("class") in ("FUNCTION", "WINDOW") and not node.get("is_operator"):
            name = node.get("function_name")
            if name:
                out.add((str(node.get("schema") or "").lower(), str(name).lower()))
        for value in node.values():
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
    estimates: bool = True,
    early: Any = None,
) -> BoundAccess:
    # The DuckDB executor's own call (or a wrapper's that hands it on); anything else fails closed.
    bound_plan: Callable[..., Awaitable[BoundPlanReply]] | None = getattr(executor, "bound_plan", None)
    if bound_plan is None:
        raise TypeError(f"the DuckDB engine check needs the DuckDB executor, not {type(executor).__name__}")
    # ``early``: the same call, started by the executor while the analysis finished (confirm.py).
    kw = {"early": early} if early is not None else {}
    reply: BoundPlanReply | None
    reply, refused = await planned_or_refusal(bound_plan(sql, estimates=estimates, **kw))
    if refused is not None:
        return refused
    assert reply is not None
    catalog = await load_catalog()
    bound = read_bound_plan(reply.bound, reply.size, catalog.database)
    facts = duckdb_estimates(reply.physical, bound, table_lookup(snapshot))
    facts.functions |= _binder_calls(written_functions, bound)
    return BoundAccess(
        facts=facts,
        catalog=catalog,
        # The user macros named in the text, which expansion hides.
        parsed_calls=frozenset(catalog.user_calls_in(sql)),
        violations=_table_functions(policy, traits, bound),
        estimates=reply.physical is not None,
    )


def _binder_calls(written_functions: Sequence[str], bound: BoundPlan) -> set[tuple[str, str]]:
    """The binder's own calls count as the query's only if the query itself wrote them.

    A scalar subquery's guard calls ``error``; when the analyzer saw an ``error`` call in the
    text, the guard's calls are checked like any other (and refused), so the shape alone
    never lets a user-written call through.
    """
    written = {f.lower().rsplit(".", 1)[-1] for f in written_functions}
    return {c for c in bound.binder_calls if c[1] in written}


def _table_functions(policy: FunctionPolicy, traits: EngineTraits, bound: BoundPlan) -> tuple[Any, ...]:
    """A table function the plan calls must be one the analyzer's allowlist allows."""
    return tuple(
        violation(
            "ENGINE_MISMATCH",
            f"The database's plan calls the table function `{dotted(schema, name)}`, which the "
            "analyzer's allowlist does not allow.",
        )
        for schema, name in sorted(bound.table_functions)
        if not engine_call_allowed(policy, traits, "" if schema in ("main", "system") else schema, name)
    )
