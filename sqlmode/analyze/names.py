"""Result columns keep the names the query as written gets from the database.

What runs is sqlglot's rendering of the analyzed tree, and a database names an unaliased result
column after its spelling: PostgreSQL names ``strpos(email, '.')`` "strpos" and its rendering
``POSITION('.' IN email)`` "position"; DuckDB names ``string_agg(name, ',')`` after its print,
and the rendering ``LISTAGG(name, ',')`` after another. The engine's own parser names the items of both texts
(``Engine.written_names``, optional: an engine without it keeps the rendering's names); an item
whose names differ gets the written name as its alias, and the tree is rendered again. The round
trip then checks that rendering like any other.

PostgreSQL names both texts with pglast (about 25 us a text, only for a query with an unaliased
item that is not a column). DuckDB's lexer pairs the two select lists, and only an item spelled
differently is named, by DuckDB's parser alone (engines/_duckdb_names.py, about 15 us an item).
"""

from __future__ import annotations

import re
from typing import Any

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, build_scope

from .parse import generate

__all__ = ["alias_order_by_output_names", "keep_output_names", "unnamed_item_hint"]

#: A longer written name (DuckDB names an expression by its whole print) stays the rendering's.
MAX_NAME_CHARS = 200


def _leftmost_select(root: exp.Expr) -> exp.Select | None:
    node: exp.Expr | None = root
    while isinstance(node, (exp.SetOperation, exp.Subquery)):
        node = node.this
    return node if isinstance(node, exp.Select) else None


def _give_alias(item: exp.Expr, name: str, *, quoted: bool) -> exp.Alias:
    """Wrap select item ``item`` in place as ``item AS name``; returns the Alias now in the tree."""
    alias = exp.Alias(alias=exp.to_identifier(name, quoted=quoted))
    item.replace(alias)
    alias.set("this", item)
    return alias


def _named_by_spelling(projection: exp.Expr) -> bool:
    """An item the database names after how it is written: not aliased, not a column or a star."""
    return not isinstance(projection, (exp.Alias, exp.Column, exp.Star))


def keep_output_names(code: str, rendered: str, root: exp.Expr, engine: Any, *, written: Any = None) -> bool:
    """Alias each item of ``root``'s select list that ``rendered`` names otherwise than ``code``.

    ``root`` is the tree ``rendered`` was rendered from; ``written``: the engine's view of
    ``code`` (``Engine.native_statements``), whose parse the engine may reuse. True when an alias
    was added (the tree must be rendered again); False when every name already matches or cannot
    be known.
    """
    names_of = getattr(engine, "written_names", None)
    select = _leftmost_select(root)
    if names_of is None or select is None:
        return False
    items = list(select.expressions)
    if not any(_named_by_spelling(p) for p in items):
        return False
    names = names_of(code, rendered, written)
    if names is None or len(names) != len(items):
        return False
    changed = False
    for item, name in zip(items, names, strict=True):
        if name is None or not _named_by_spelling(item) or len(name) > MAX_NAME_CHARS:
            continue
        _give_alias(item, name, quoted=True)
        changed = True
    return changed


def _input_names(root: exp.Select, snapshot: Any) -> set[str] | None:
    """The lower-cased names of the columns ``root``'s FROM offers, or None when one of its sources
    is not known (a table outside the snapshot, a source sqlglot cannot scope)."""
    try:
        scope = build_scope(root)
        sources = scope.selected_sources if scope is not None else None
    except Exception:  # sqlglot cannot scope it: the analysis says why, not this
        return None
    if sources is None:
        return None
    names: set[str] = set()
    for _node, source in sources.values():
        if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
            table = snapshot.table(source.name, source.db or None)
            if table is None:
                return None
            names |= {c.name.lower() for c in table.columns}
        elif isinstance(source, Scope) and isinstance(source.expression, exp.Query):
            body = source.expression
            if any(p.find(exp.Star) for p in body.selects):
                return None
            names |= {n.lower() for n in body.named_selects}
        else:
            return None  # a table function, VALUES without column names...
    return names


def alias_order_by_output_names(
    root: exp.Expr, code: str, engine: Any, snapshot: Any, *, written: Any = None
) -> bool:
    """PostgreSQL's ORDER BY may name a result column by the name the database gives it without
    ``AS`` (``SELECT status, count(*) FROM orders GROUP BY 1 ORDER BY count DESC``): give that
    item the very name as its alias, so the analysis resolves the reference as PostgreSQL does.

    Only a bare ORDER BY name that is no column of the FROM's sources and no alias, matching
    exactly one item's name (``Engine.output_names``, optional: DuckDB has no such rule). The
    result's names are unchanged. True when an alias was added.
    """
    names_of = getattr(engine, "output_names", None)
    if names_of is None or not isinstance(root, exp.Select):
        return False
    order = root.args.get("order")
    if not isinstance(order, exp.Order):
        return False
    items = list(root.expressions)
    taken = {p.alias.lower() for p in items if isinstance(p, exp.Alias)}
    wanted = [
        o.this
        for o in order.expressions
        if isinstance(o, exp.Ordered)
        and isinstance(o.this, exp.Column)
        and not o.this.table
        and isinstance(o.this.this, exp.Identifier)
        and o.this.name.lower() not in taken
    ]
    if not wanted:
        return False
    names = names_of(code, written)
    if names is None or len(names) != len(items):
        return False
    # Cheapest first: only a name some item has is worth scoping the FROM for.
    wanted = [c for c in wanted if (c.name if c.this.quoted else c.name.lower()) in names]
    if not wanted:
        return False
    inputs = _input_names(root, snapshot)
    if inputs is None:
        return False
    wanted = [c for c in wanted if c.name.lower() not in inputs]
    changed = False
    for column in wanted:
        # Unquoted, PostgreSQL folds the name to lower case before matching.
        target = column.name if column.this.quoted else column.name.lower()
        hits = [i for i, n in enumerate(names) if n == target]
        if len(hits) != 1 or not _named_by_spelling(items[hits[0]]):
            continue
        items[hits[0]] = _give_alias(items[hits[0]], target, quoted=column.this.quoted)
        changed = True
    return changed


_PLAIN_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _called(item: exp.Expr) -> str:
    """The function an item calls at its top (``count`` for ``COUNT(*)``), lower case; else ""."""
    node = item.unnest() if isinstance(item, exp.Paren) else item
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    return node.key if isinstance(node, exp.Func) else ""


def unnamed_item_hint(root: exp.Expr, name: str, dialect: str, *, by_call: bool) -> str | None:
    """A hint for a name that is no column, when the query has select items without ``AS``.

    Such an item is named by the database, not always after its function (DuckDB names
    ``count(*)`` "count_star()"; PostgreSQL names ``strpos(...)`` "strpos" but sqlglot's rendering
    of it "position"), so a query that names one is told to alias it. ``by_call``: only when an
    item calls a function of that very name (the analyzer's own finding); else whenever one such
    item exists (the database could not find the name). None when nothing fits.
    """
    items = [
        p
        for select in root.find_all(exp.Select)
        for p in select.expressions
        if _named_by_spelling(p) and not isinstance(p, exp.Dot)
    ]
    last = name.rsplit(".", 1)[-1].strip('"').lower()
    match = next((p for p in items if _called(p) == last), None)
    if match is None and (by_call or len(items) != 1 or not _PLAIN_NAME.fullmatch(last)):
        if by_call or not items:
            return None
        return (
            f"`{name}` may be meant as a select item without AS: the database names such items "
            "itself. Give each one you use a name with AS and use that name."
        )
    item = match if match is not None else items[0]
    shown = generate(item, dialect)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return (
        f"`{name}` is no column here; {shown} has no AS, so the database names it itself, not "
        f"always after its function: write {shown} AS {last} and use that name."
    )
