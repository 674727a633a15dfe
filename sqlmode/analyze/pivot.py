"""DuckDB PIVOT without an IN list: its values are computed at validation, then listed.

DuckDB runs ``PIVOT t ON c USING agg`` as two statements: a hidden ``SELECT DISTINCT c``
that fills a temporary ENUM type, then the pivot. Only one statement may run and the engine
check cannot bind the pair, so the analyzer alone refuses it (``unlisted_pivot``). The
service then asks ``expand_pivots`` to do what DuckDB would: the distinct-values query, a
read of the ON expression over the pivot's own source, is analyzed and confirmed like any
other query, run under the usual limits, and its values are written into the PIVOT as an
explicit IN list. The rewritten single statement is what gets analyzed, signed and run.

The hidden query is DuckDB's own: the values cast to VARCHAR, NULLs left out, sorted as
text (so the columns come out in the order DuckDB gives them). Only an engine whose traits say
``pivot_without_values`` gets here; the SQL is written in that engine's sqlglot dialect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlglot import exp

from ..engines.base import engine_named
from ..models import Analysis, Violation
from .codes import violation
from .parse import parse_one, unwrap

# More distinct values than this is no longer a report one reads; the IN list must be written.
MAX_PIVOT_VALUES = 100

_MESSAGE_START = "PIVOT ... ON "


def hoist_statement_ctes(root: exp.Expr) -> exp.Expr:
    """``WITH c AS (...) PIVOT c ...`` as ``PIVOT (WITH c AS (...) SELECT * FROM c) ...``.

    DuckDB's PIVOT/UNPIVOT statement may be preceded by a WITH clause naming its source. Both
    forms are the same statement to DuckDB, and the second is one the analyzer already resolves
    (a subquery source is a query; its CTEs are scopes). Left unchanged when the source is not a
    plain name or a query without its own WITH: then the CTE names stay unresolved and the
    analyzer refuses them (UNKNOWN_TABLE), closed.
    """
    with_ = root.args.get("with_") if isinstance(root, exp.Pivot) else None
    if not isinstance(with_, exp.With):
        return root
    source = root.this
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
        alias = source.args.get("alias")
        bare = source.copy()
        bare.set("alias", None)
        query = exp.Select(expressions=[exp.Star()]).from_(bare)
        query.set("with_", with_.pop())
        root.set("this", exp.Subquery(this=query, alias=alias.copy() if alias is not None else None))
    elif (
        isinstance(source, exp.Subquery)
        and isinstance(source.this, (exp.Select, exp.SetOperation))
        and source.this.args.get("with_") is None
    ):
        source.this.set("with_", with_.pop())
    return root


def wrap_cte_pivots(root: exp.Expr) -> exp.Expr:
    """``WITH p AS (PIVOT t ON ...)`` as ``WITH p AS (SELECT * FROM (PIVOT t ON ...))``.

    DuckDB takes a PIVOT or UNPIVOT statement as a CTE's body; sqlglot builds no scope for one
    there, so ``p`` named nothing and the query was refused (UNKNOWN_TABLE). Wrapped, it is the
    PIVOT statement in FROM that the analyzer already resolves (what the pivot reads, and ``p``
    as a source whose columns come from the data), and the same query to DuckDB.
    """
    for cte in list(root.find_all(exp.CTE)):
        body = cte.this
        if isinstance(body, exp.Pivot):
            cte.set("this", exp.Select(expressions=[exp.Star()]).from_(exp.Subquery(this=body)))
    return root


def unlisted_pivots(root: exp.Expr) -> list[exp.Pivot]:
    """DuckDB PIVOTs whose ON column has no IN list (wherever they are in the query)."""
    return [
        p
        for p in root.find_all(exp.Pivot)
        if p.expressions and any(not isinstance(e, exp.In) for e in p.expressions)
    ]


def unlisted_pivot(pivot: exp.Pivot, dialect: str) -> Violation:
    """Why a PIVOT without IN list is refused by the analyzer alone, and what replaces it
    (SQL shown in ``dialect``, sqlglot's name)."""
    on = ", ".join(e.sql(dialect) for e in pivot.expressions if not isinstance(e, exp.In))
    source = pivot.this.sql(dialect) if pivot.this is not None else "the source"
    using = ", ".join(u.sql(dialect) for u in pivot.args.get("using") or []) or "sum(x)"
    return violation(
        "UNSUPPORTED_SYNTAX",
        f"{_MESSAGE_START}{on} without an IN list runs a hidden second statement to find the values "
        f"of {on}; only one statement may run.",
        f"First ask for the values: SELECT DISTINCT {on} FROM {source}; then list them: "
        f"PIVOT {source} ON {on} IN ('value1', 'value2') USING {using}.",
    )


def only_unlisted_pivots(analysis: Analysis) -> bool:
    """True when the one thing the analyzer refused is a PIVOT without IN list."""
    return bool(analysis.violations) and all(
        v.code == "UNSUPPORTED_SYNTAX" and v.message.startswith(_MESSAGE_START) for v in analysis.violations
    )


def without_pivot_listing(violations: list[Violation]) -> list[Violation]:
    """``violations`` without the unlisted-PIVOT refusal when a blocked read is among them: its hint
    (ask for the ON column's values first) would send the model to that very read."""
    if not any(v.code in ("COLUMN_BLOCKED", "TABLE_BLOCKED") for v in violations):
        return violations
    return [
        v for v in violations if not (v.code == "UNSUPPORTED_SYNTAX" and v.message.startswith(_MESSAGE_START))
    ]


def _ctes_in_scope(pivot: exp.Pivot) -> exp.With | None:
    """The CTEs visible from the pivot: of each enclosing WITH, all of them from its body, only
    those defined before it from inside a CTE (inner names shadow outer ones)."""
    seen: set[str] = set()
    levels: list[list[exp.CTE]] = []
    inside: exp.CTE | None = None
    node: exp.Expr | None = pivot
    while node is not None:
        if isinstance(node, exp.CTE):
            inside = node
        with_ = node.args.get("with_") or node.args.get("with")
        if isinstance(with_, exp.With):
            if with_.args.get("recursive"):
                return None  # not rebuilt here: the distinct query then fails its check, closed
            ctes = list(with_.expressions)
            if inside is not None and any(c is inside for c in ctes):
                ctes = ctes[: next(i for i, c in enumerate(ctes) if c is inside)]
            inside = None
            level = [c for c in ctes if c.alias_or_name.lower() not in seen]
            seen.update(c.alias_or_name.lower() for c in level)
            levels.append(level)
        node = node.parent
    # Outer CTEs first: a CTE may only name those before it.
    ctes = [c.copy() for level in reversed(levels) for c in level]
    return exp.With(expressions=ctes) if ctes else None


def distinct_query(pivot: exp.Pivot, on: exp.Expr, limit: int, dialect: str) -> str:
    """DuckDB's hidden query for one ON expression of ``pivot``, bounded to ``limit`` rows."""
    value = exp.cast(on.copy(), "VARCHAR")
    select = (
        exp.select(exp.alias_(value, "pivot_value"))
        .distinct()
        .from_(pivot.this.copy())
        .where(exp.Not(this=exp.Is(this=on.copy(), expression=exp.Null())))
        .order_by(exp.Ordered(this=exp.Literal.number(1)))
        .limit(limit)
    )
    with_ = _ctes_in_scope(pivot)
    if with_ is not None:
        select.set("with_", with_)
    return select.sql(dialect)


Analyze = Callable[[str], Awaitable[Analysis]]
Run = Callable[[str, int], Awaitable[tuple[Sequence[Sequence[Any]], bool]]]


async def expand_pivots(code: str, refused: Analysis, check: Analyze, analyze: Analyze, run: Run) -> Analysis:
    """The analysis of ``code`` with each PIVOT's values listed, or ``refused`` with why not.

    ``refused`` is the analyzer's verdict on ``code``: every read in it was already checked
    and the PIVOT without IN list is its only violation. ``check`` is the whole check of the
    distinct-values query (analyzer, engine, policy): nothing runs that it did not accept.
    ``run(sql, max_rows)`` is the read-only executor: (rows, truncated). ``analyze`` gives the
    analyzer's verdict on the rewritten code, which the caller then confirms and decides as usual.
    """
    # The engine that refused it: its dialect parses the code and writes the queries.
    dialect = engine_named(refused.dialect).traits.sqlglot_dialect
    root = parse_one(unwrap(code), dialect)  # as the analyzer read it
    pivots = [p for p in unlisted_pivots(root) if p.this is not None]
    if not pivots or len(pivots) != len(unlisted_pivots(root)):
        return refused
    listed: list[str] = []
    # Values first for every pivot, on the original tree; then the tree is rewritten.
    plan: list[tuple[exp.Expr, list[str]]] = []
    for pivot in pivots:
        for on in pivot.expressions:
            if isinstance(on, exp.In):
                continue
            query = distinct_query(pivot, on, MAX_PIVOT_VALUES + 1, dialect)
            checked = await check(query)
            if not checked.ok:
                return _refuse(refused, checked.violations)
            rows, truncated = await run(checked.normalized_code, MAX_PIVOT_VALUES)
            text = on.sql(dialect)
            if truncated or len(rows) > MAX_PIVOT_VALUES:
                return _refuse(refused, [_too_many(text)])
            values = [str(r[0]) for r in rows if r and r[0] is not None]
            if not values:
                return _refuse(refused, [_no_values(text)])
            plan.append((on, values))
            listed.append(f"{text}: {', '.join(repr(v) for v in values)}")
    for on, values in plan:
        on.replace(exp.In(this=on.copy(), expressions=[exp.Literal.string(v) for v in values]))
    result = await analyze(root.sql(dialect))
    if result.ok:
        note = (
            "The PIVOT's columns were listed at validation from the values then in the data ("
            + "; ".join(listed)
            + "); values added later are not columns of this query."
        )
        result.explanation = f"{result.explanation} {note}".strip()
    return result


def _refuse(refused: Analysis, found: list[Violation]) -> Analysis:
    """``refused``, its generic PIVOT refusal replaced by the reason the values could not be listed."""
    if found:
        refused.violations[:] = [v for v in refused.violations if not v.message.startswith(_MESSAGE_START)]
    for v in found:
        if v not in refused.violations:
            refused.violations.append(v)
    return refused


def _too_many(on: str) -> Violation:
    return violation(
        "UNSUPPORTED_SYNTAX",
        f"PIVOT ON {on} would make more than {MAX_PIVOT_VALUES} columns (one per distinct value).",
        f"List the values you want as columns: ON {on} IN ('value1', 'value2'), or group by {on} "
        "instead of pivoting on it.",
    )


def _no_values(on: str) -> Violation:
    return violation(
        "UNSUPPORTED_SYNTAX",
        f"PIVOT ON {on}: the source holds no value of {on} (other than NULL), so there is no column to make.",
        f"Check the filter of the PIVOT's source, or list the values: ON {on} IN ('value1', 'value2').",
    )
