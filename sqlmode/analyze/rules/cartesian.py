"""Cartesian products: large sources in one FROM that nothing connects."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from ...models import Violation
from ..codes import violation
from ..functions import generated_rows
from .base import RuleContext

SMALL_SOURCE_ROWS = 10_000

# Calls that may return rows rather than a value in a select list: set-returning functions are
# unknown names to sqlglot (Anonymous), or its explode family.
_MAYBE_SETS = (exp.Anonymous, exp.Unnest, exp.Explode, exp.ExplodeOuter, exp.GenerateSeries, exp.UDTF)


class _Groups:
    """Union-find over source keys."""

    def __init__(self, keys: list[str]):
        self.parent = {k: k for k in keys}

    def find(self, k: str) -> str:
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, items: set[str]) -> None:
        items = {i for i in items if i in self.parent}
        if len(items) < 2:
            return
        first, *rest = items
        for r in rest:
            self.parent[self.find(r)] = self.find(first)

    def groups(self) -> list[list[str]]:
        out: dict[str, list[str]] = {}
        for k in self.parent:
            out.setdefault(self.find(k), []).append(k)
        return list(out.values())


def cartesian(ctx: RuleContext) -> list[Violation]:
    """Sources in one FROM that no join condition or WHERE predicate connects."""
    refs = ctx.refs
    out = []

    def keys_in(node: exp.Expr | None) -> set[str]:
        found: set[str] = set()
        if node is not None:
            for col in node.find_all(exp.Column):
                found |= refs.column_sources.get(id(col), set())
        return found

    for scope in refs.scopes:
        expr = scope.expression
        if not isinstance(expr, exp.Select) or not expr.args.get("joins"):
            continue
        try:
            selected = scope.selected_sources
        except Exception:
            continue
        keys = [k.lower() for k in selected]
        if len(keys) < 2:
            continue
        groups = _Groups(keys)
        from_ = expr.args.get("from_")
        previous = (from_.this.alias_or_name or "").lower() if from_ is not None else ""
        for join in expr.args.get("joins") or []:
            target = join.this
            name = (target.alias_or_name or "").lower()
            left, previous = previous, name
            if str(join.args.get("kind") or "").upper() == "CROSS":
                # An explicit CROSS JOIN states the intent; it binds to the source just before
                # it, so `FROM a, b CROSS JOIN c` still leaves the comma join a, b unconnected.
                groups.union({left, name})
                continue
            if (
                isinstance(target, exp.Lateral)
                or join.args.get("using")
                or str(join.args.get("method") or "").upper() in ("NATURAL", "POSITIONAL")
            ):
                # lateral / USING / NATURAL joins connect; POSITIONAL pairs rows one to one
                groups.union(set(keys))
                continue
            linked = keys_in(join.args.get("on"))
            if isinstance(target, exp.Table) and not isinstance(target.this, exp.Identifier):
                linked |= keys_in(target.this)  # a table function correlated to earlier sources
            if isinstance(target, exp.Unnest):
                linked |= keys_in(target)
            groups.union(linked | {name})
        where = expr.args.get("where")
        if where is not None:
            for conj in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
                groups.union(keys_in(conj))
        parts = groups.groups()
        if len(parts) < 2:
            continue
        lookup = {k.lower(): (k, v[1]) for k, v in selected.items()}
        big = [g for g in parts if not all(_is_small(lookup[k][1]) for k in g)]
        if len(big) > 1:
            shown = " and ".join(", ".join(_shown(lookup[k][1], k) for k in g) for g in big[:3])
            out.append(
                violation(
                    "CARTESIAN_PRODUCT",
                    f"{shown} are combined without a join condition: every row meets every row.",
                )
            )
    return out


def _shown(source: object, key: str) -> str:
    if not key:
        return "an unnamed subquery"
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
        return source.name if source.name.lower() == key else f"{source.name} ({key})"
    return key


def _is_small(source: object) -> bool:
    """A source that yields few rows: one aggregate row, a small VALUES, a bounded generator."""
    if isinstance(source, Scope):
        expr = source.expression
        if isinstance(expr, exp.Select):
            limit = expr.args.get("limit")
            if isinstance(limit, exp.Limit) and isinstance(limit.expression, exp.Literal):
                try:
                    return int(limit.expression.this) <= SMALL_SOURCE_ROWS
                except ValueError:
                    return False
            if expr.args.get("group"):
                return False
            if any(p.find(exp.AggFunc) for p in expr.expressions):
                return True  # one aggregate row
            # No FROM: one row, unless a call in it may return a set (unnest, generate_series).
            return expr.args.get("from_") is None and not any(
                isinstance(f, _MAYBE_SETS) for p in expr.expressions for f in p.find_all(exp.Func)
            )
        if isinstance(expr, exp.Values):
            return len(expr.expressions) <= SMALL_SOURCE_ROWS
        return False
    if isinstance(source, exp.Table) and not isinstance(source.this, exp.Identifier):
        fn = source.this
        if isinstance(fn, exp.Func):
            rows = generated_rows(fn) if fn.args.get("end") is not None else None
            if rows is not None:
                return rows <= SMALL_SOURCE_ROWS
            return isinstance(fn, (exp.Unnest, exp.Explode))
    return False
