"""Result columns keep the names the query as written gets from the database.

What runs is sqlglot's rendering of the analyzed tree, and a database names an unaliased result
column after its spelling: PostgreSQL names ``strpos(email, '.')`` "strpos" and its rendering
``POSITION('.' IN email)`` "position"; DuckDB names ``string_agg(name, ',')`` after its print,
and the rendering ``LISTAGG(name, ',')`` after another. The engine's own parser names the items of both texts
(``Engine.written_names``, optional: an engine without it keeps the rendering's names); an item
whose names differ gets the written name as its alias, and the tree is rendered again. The round
trip then checks that rendering like any other.

PostgreSQL names both texts with pglast (about 25 us a text, only for a query with an unaliased
item that is not a column). DuckDB's print is reachable only through SQL (0.15-0.4 ms), so its
lexer pairs the two select lists first and only an item spelled differently is printed
(engines/_duckdb_names.py).
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

__all__ = ["keep_output_names"]

#: A longer written name (DuckDB names an expression by its whole print) stays the rendering's.
MAX_NAME_CHARS = 200


def _leftmost_select(root: exp.Expr) -> exp.Select | None:
    node: exp.Expr | None = root
    while isinstance(node, (exp.SetOperation, exp.Subquery)):
        node = node.this
    return node if isinstance(node, exp.Select) else None


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
        alias = exp.Alias(alias=exp.to_identifier(name, quoted=True))
        item.replace(alias)
        alias.set("this", item)
        changed = True
    return changed
