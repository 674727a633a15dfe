"""Result columns keep the names the query as written gets from the database.

What runs is sqlglot's rendering of the analyzed tree, and a database names an unaliased result
column after its spelling: PostgreSQL names ``strpos(email, '.')`` "strpos" and its rendering
``POSITION('.' IN email)`` "position"; DuckDB names ``string_agg(name, ',')`` after its print,
and the rendering ``LISTAGG(name, ',')`` after another. The engine's own parser names both texts
(``Engine.output_names``, optional: an engine without it keeps the rendering's names); an item whose
names differ gets the written name as its alias, and the tree is rendered again. The round trip
then checks that rendering like any other.

PostgreSQL implements it (pglast, about 25 us a text, and only for a query with an unaliased item
that is not a column). DuckDB does not: its parser's print is reachable only through SQL
(``json_serialize_sql``, then ``json_deserialize_sql``), 0.5-0.9 ms a text measured, a cost on
every such validate for a name no value depends on; there an unaliased call sqlglot renames
(``string_agg`` as ``listagg``, ``substr`` as ``substring``) is named after the rendering.
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
    names_of = getattr(engine, "output_names", None)
    select = _leftmost_select(root)
    if names_of is None or select is None:
        return False
    items = list(select.expressions)
    if not any(_named_by_spelling(p) for p in items):
        return False
    before, now = names_of(code, written), names_of(rendered)
    if before is None or now is None or not len(before) == len(now) == len(items):
        return False
    changed = False
    for item, name, current in zip(items, before, now, strict=True):
        if name is None or current is None or name == current or not _named_by_spelling(item):
            continue
        if len(name) > MAX_NAME_CHARS:
            continue
        alias = exp.Alias(alias=exp.to_identifier(name, quoted=True))
        item.replace(alias)
        alias.set("this", item)
        changed = True
    return changed
