"""Round trip: the normalized code must parse back to the tree that was analyzed.

What runs is rendered from the analyzed tree (rewrite.render), so the text and the tree can
only disagree through a generator bug. That has happened: before sqlglot PR #7301 a line
comment holding ``*/`` was re-emitted as a block comment that closed early, so

    -- aa */ SELECT * FROM secret_table --
    SELECT * FROM safe_table

was analyzed as a read of ``safe_table`` and rendered as text whose statement reads
``secret_table``. The guard does not trust the generator: the rendering is parsed again by
sqlglot and must give the analyzed tree back (the engine's parser is asked separately, in
parse.confirm_rendered and in the engine confirmation).

Exact tree equality is the fast path. Some renderings are faithful without being equal node
for node (sqlglot adds a ``CAST`` that Postgres' two-argument ``round`` needs, a
``$$dollar$$`` string comes back as a plain literal); those pass only when the re-parsed
tree renders to the very same text (the text is a fixed point of parse + render) and reads
the same tables, columns and named calls as the analyzed tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError

from ..models import Violation
from .codes import violation
from .parse import generate, sqlglot_dialect

__all__ = ["check_round_trip", "references_of"]

# What a tree reads, as comparable tuples: tables, columns and calls the allowlist knows by name.
Reference = tuple[str, ...]


@dataclass(slots=True)
class _Reparsed:
    """The parse of one rendering (cached: parsing is deterministic in the text).

    ``canonical`` and ``refs`` are only needed when the trees differ (rare), so they are
    computed on first use: eagerly they cost a tree copy and a render on every analysis.
    """

    tree: exp.Expr | None
    error: str = ""
    dialect: str = ""
    _canonical: str | None = None
    _refs: frozenset[Reference] | None = None

    @property
    def canonical(self) -> str:
        if self._canonical is None:
            assert self.tree is not None
            # copy=True: the cached tree is compared again later and must never change.
            self._canonical = generate(
                self.tree, self.dialect, copy=True, comments=False, unsupported_level=ErrorLevel.IGNORE
            )
        return self._canonical

    @property
    def refs(self) -> frozenset[Reference]:
        if self._refs is None:
            assert self.tree is not None
            self._refs = references_of(self.tree)
        return self._refs


def references_of(tree: exp.Expr) -> frozenset[Reference]:
    """Tables (catalog, schema, name), columns (qualifier, name) and anonymous calls of a tree."""
    out: set[Reference] = set()
    for node in tree.walk():
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            out.add(("table", node.catalog.lower(), node.db.lower(), node.name.lower()))
        elif isinstance(node, exp.Column):
            out.add(("column", node.table.lower(), node.name.lower()))
        elif isinstance(node, exp.Anonymous):
            out.add(("call", str(node.name).lower()))
    return frozenset(out)


@lru_cache(maxsize=512)
def _reparse(text: str, dialect: str) -> _Reparsed:
    try:
        statements = [s for s in sqlglot_dialect(dialect).parse(text, error_level=ErrorLevel.RAISE) if s]
    except (ParseError, TokenError) as e:
        return _Reparsed(None, f"it no longer parses ({str(e).splitlines()[0][:200]})")
    if len(statements) != 1:
        return _Reparsed(None, f"it parses as {len(statements)} statements")
    return _Reparsed(statements[0], dialect=dialect)


def _same_tree(a: exp.Expr, b: exp.Expr) -> bool:
    """Exact structural equality, stopping at the first difference.

    Stricter than ``==`` (which hashes both whole trees: about 135 us for a typical query),
    so it is only a fast path: a False falls back to ``==``. An arg set to None or [] is
    the same as an absent one (the parser sets some that the builders leave out).
    """
    stack: list[tuple[exp.Expr, exp.Expr]] = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        ya = y.args
        present = 0
        for key, xv in x.args.items():
            if xv is None or (type(xv) is list and not xv):
                continue
            present += 1
            yv = ya.get(key)
            if isinstance(xv, exp.Expr):
                if not isinstance(yv, exp.Expr):
                    return False
                stack.append((xv, yv))
            elif type(xv) is list:
                if type(yv) is not list or len(xv) != len(yv):
                    return False
                for xi, yi in zip(xv, yv, strict=True):
                    if isinstance(xi, exp.Expr):
                        if not isinstance(yi, exp.Expr):
                            return False
                        stack.append((xi, yi))
                    elif isinstance(yi, exp.Expr) or xi != yi:
                        return False
            elif isinstance(yv, exp.Expr) or xv != yv:
                return False
        # A plain loop: a generator here was a third of the comparison's time.
        for v in ya.values():
            if v is not None and not (type(v) is list and not v):
                present -= 1
        if present:
            return False
    return True


def _describe(extra: frozenset[Reference], missing: frozenset[Reference]) -> str:
    def names(refs: frozenset[Reference]) -> str:
        return ", ".join(sorted(".".join(p for p in r[1:] if p) for r in refs)[:5]) or "nothing"

    return f"it reads {names(extra)} where the analyzed query read {names(missing)}"


def check_round_trip(normalized: str, tree: exp.Expr, dialect: str) -> list[Violation]:
    """Violations (ROUND_TRIP_MISMATCH) when ``normalized`` does not parse back to ``tree``."""
    try:
        again = _reparse(normalized, dialect)
    except RecursionError:
        again = _Reparsed(None, "it is nested too deeply to parse again")
    if again.tree is None:
        return [violation("ROUND_TRIP_MISMATCH", f"The normalized SQL does not round-trip: {again.error}.")]
    if _same_tree(again.tree, tree) or again.tree == tree:
        return []
    if again.canonical != normalized:
        return [
            violation(
                "ROUND_TRIP_MISMATCH",
                "The normalized SQL does not round-trip: parsing it again gives a different query "
                f"(`{again.canonical[:120]}`).",
            )
        ]
    analyzed = references_of(tree)
    if again.refs != analyzed:
        return [
            violation(
                "ROUND_TRIP_MISMATCH",
                "The normalized SQL does not round-trip: "
                + _describe(again.refs - analyzed, analyzed - again.refs)
                + ".",
            )
        ]
    return []
