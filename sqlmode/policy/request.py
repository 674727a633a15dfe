"""Cedar request and entities built from a principal and an analysis.

The principal becomes ``User::"<id>"`` in its groups; the query becomes
``Query::"query"``, a child of every table and column it touches; the context
carries what the analyzer found (see ``policies/sqlmode.cedarschema``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..config import Settings
from ..errors import AuthError
from ..models import Action, Analysis, Principal, RiskLevel

QUERY_ID = "query"

# Statement kinds map 1:1 to Cedar actions; anything else is "unknown", which the
# baseline forbids, so a new Action member cannot slip through as a read.
_ACTIONS = {a.value: a.value for a in (Action.READ, Action.WRITE, Action.DELETE, Action.ADMIN)}

# A system catalog named anywhere in a table or function name: information_schema.x,
# pg_catalog.pg_class, main.pg_user, duckdb_tables(), system.main.x. One regex over all
# names at once, because this runs on every decision.
_CATALOG = re.compile(r"(?m)(?:^|\.)(?:pg_|duckdb_|sqlite_|information_schema\b)|^system\.")
# Functions named like catalog ones that read no catalog: a value's type, and byte counts
# formatted or parsed. The analyzer's allowlist admits them (analyze/functions.py).
_PURE_CATALOG_NAMED = frozenset({"pg_typeof", "pg_size_pretty", "pg_size_bytes"})


def principal_from_config(
    settings: Settings,
    user: str | None = None,
    session: str | None = "local",
    groups: list[str] | tuple[str, ...] | None = None,
    *,
    external: bool = False,
) -> Principal:
    """Who asks: the one place a Principal is built from a caller's claims and the config.

    A local user (stdio, CLI, a credential sqlmode issued) defaults to ``policy.default_user`` and,
    unless the caller names its groups, gets those of ``[policy.users]``. An ``external``
    (identity-provider) user is never the default user and gets no groups from the config: a
    subject named like a local user is not that user.
    """
    if external:
        if not user or not user.strip():
            raise AuthError("the credential names no user")
        return Principal(user=user, groups=tuple(groups or ()), session=session or "local", external=True)
    uid = user or settings.policy.default_user
    if groups is None:
        cfg = settings.policy.users.get(uid)
        groups = cfg.groups if cfg else ()
    return Principal(user=uid, groups=tuple(groups), session=session or "local")


def groups_for(settings: Settings, principal: Principal) -> list[str]:
    """The principal's groups plus those the config gives the same user id (local principals only)."""
    cfg = None if principal.external else settings.policy.users.get(principal.user)
    groups = set(principal.groups)
    if cfg:
        groups.update(cfg.groups)
    return sorted(groups)


def _lower_set(items: Any) -> list[str]:
    return sorted({str(i).lower() for i in items or ()})


def _names(analysis: Analysis) -> tuple[list[str], list[str]]:
    """``table_names`` and ``column_names``: tables and columns under every name config may use.

    A table's key (``orders``, or ``sales.orders`` when several schemas have one), its bare name
    (a bare name in config covers every schema's table of that name) and ``schema.table``;
    columns likewise with ``.column`` appended. ``tables`` and ``columns`` keep the keys only,
    so that allowlists (``[...].containsAll(context.tables)``) are not broken by synonyms.
    """
    schemas = analysis.table_schemas

    def forms(key: str) -> set[str]:
        key = key.lower()
        bare = key.rpartition(".")[2]
        schema = schemas.get(key)
        return {key, bare} | ({f"{schema}.{bare}"} if schema else set())

    tables: set[str] = set()
    for t in analysis.tables or ():
        tables |= forms(str(t))
    columns: set[str] = set()
    for c in analysis.columns or ():
        table, _, column = str(c).lower().rpartition(".")
        columns |= {f"{f}.{column}" for f in forms(table)} if table else {column}
    return sorted(tables), sorted(columns)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def build_context(analysis: Analysis) -> dict[str, Any]:
    """The Cedar context for ``analysis``: every attribute the schema declares (optional ones when known)."""
    cx = analysis.complexity
    tables = _lower_set(analysis.tables)
    table_names, column_names = _names(analysis)
    action = _ACTIONS.get(str(analysis.action), "unknown")
    # Without target information every table counts as a target: per-table write rules
    # then apply to all of them, which can only refuse more.
    targets = (_lower_set(analysis.targets) or tables) if action in ("write", "delete") else []
    functions = _lower_set(analysis.functions)
    risk = RiskLevel(analysis.risk_level)
    named = tables + [f for f in functions if f not in _PURE_CATALOG_NAMED]
    catalog = analysis.catalog or bool(_CATALOG.search("\n".join(named)))
    context = {
        "action": action,
        "statement_type": str(analysis.statement_type).upper(),
        "dialect": str(analysis.dialect),
        "tables": tables,
        "targets": targets,
        "columns": _lower_set(analysis.columns),
        "table_names": table_names,
        "column_names": column_names,
        "functions": functions,
        "risk": risk.value,
        "risk_rank": risk.rank,
        "complexity": _int(cx.score, 0),
        "depth": _int(cx.depth, 0),
        "joins": _int(cx.joins if analysis.max_block_joins is None else analysis.max_block_joins, 0),
        "fields": _int(cx.fields, 0),
        "row_limit": _int(analysis.row_limit, 0),
        "catalog": catalog,
    }
    # The database's plan estimates, present once the engine confirmed the query; optional
    # in the Cedar schema, so policies test `context has estimated_rows` first.
    if analysis.estimated_rows is not None:
        context["estimated_rows"] = _int(analysis.estimated_rows, 0)
    if analysis.estimated_cost is not None:
        context["estimated_cost"] = _int(analysis.estimated_cost, 0)
    return context


def build_request(
    settings: Settings,
    principal: Principal,
    analysis: Analysis,
    *,
    named: frozenset[tuple[str, str]] | None = None,
    usage: dict[str, frozenset[str] | None] | None = None,
) -> tuple[dict[str, Any], str]:
    """The Cedar request (principal, action, resource, context) and its entities as JSON.

    Cedar parses every context value and entity on every call (about 1.7 us each), so
    the request carries only what the loaded policies can read:

    * ``usage``: the context attributes some policy reads (None: all), each with the
      strings that matter when the policies only test a set for literal members (see
      :func:`sqlmode.policy.engine.context_usage`). Cedar reads only the attributes a
      policy names, and ``{"a"}.contains("a")`` is the same as ``{"a", "b"}.contains("a")``,
      so the trimmed context reaches exactly the same decisions.
    * ``named``: the Table/Column uids some policy names (None: all). The query is made a
      child of the tables and columns it touches among those; ``resource in Table::"x"``
      can only matter for an ``x`` that a policy mentions.
    """
    context = build_context(analysis)
    action = context["action"]
    if usage is not None:
        context = {
            k: [x for x in context[k] if x in keep]
            if keep is not None and isinstance(context[k], list)
            else context[k]
            for k, keep in usage.items()
            if k in context
        }
    user = {
        "uid": {"type": "User", "id": principal.user},
        "attrs": {},
        "parents": [{"type": "Group", "id": g} for g in groups_for(settings, principal)],
    }
    tables, columns = _lower_set(analysis.tables), _lower_set(analysis.columns)
    parents = [{"type": "Table", "id": t} for t in tables if named is None or ("Table", t) in named]
    parents += [{"type": "Column", "id": c} for c in columns if named is None or ("Column", c) in named]
    query = {"uid": {"type": "Query", "id": QUERY_ID}, "attrs": {}, "parents": parents}
    request = {
        "principal": {"type": "User", "id": principal.user},
        "action": {"type": "Action", "id": action},
        "resource": {"type": "Query", "id": QUERY_ID},
        # JSON text, so that cedarpy does not serialize it a second time.
        "context": json.dumps(context),
    }
    return request, json.dumps([user, query])


__all__ = ["build_context", "build_request", "groups_for", "principal_from_config"]
