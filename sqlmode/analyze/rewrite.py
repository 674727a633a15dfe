"""The normalized code: the analyzed tree, row-limited, rendered back in the dialect.

What runs is rendered from the tree we analyzed, never the original text, so anything
the parser dropped (comments, odd spacing, escapes) cannot come back. Rendering raises
on anything the generator does not support instead of silently dropping it (sqlglot
would otherwise omit, for example, FOR UPDATE in DuckDB or PIVOT in Postgres).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from sqlglot import exp
from sqlglot.errors import ErrorLevel
from sqlglot.optimizer.scope import Scope

from .parse import generate


@dataclass(frozen=True, slots=True)
class Limited:
    root: exp.Expr
    row_limit: int
    # "injected": no LIMIT was written; "lowered": a larger one (or LIMIT ALL) was cut to
    # max_rows; "kept": the query's own LIMIT was at most max_rows; "wrapped": the query's own
    # limit is a percentage, WITH TIES or an expression, so it stays as written and the query
    # is wrapped in an outer SELECT * ... LIMIT that caps it.
    source: str


# A bare VALUES' own ORDER BY, LIMIT and OFFSET.
_MODIFIERS = ("order", "limit", "offset")


class TableColumn(NamedTuple):
    """A base table's column as a written-out star gives it."""

    name: exp.Identifier
    read: bool  # whether the query reads it anywhere
    type: str  # as the schema shows it


# A base table's columns in its order, and whether the table has blocked columns (None: not a
# table to write out).
TableColumns = Callable[[exp.Table], tuple[list[TableColumn], bool] | None]


def _literal_int(node: exp.Expr | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(str(node.this))
        except ValueError:
            return None
    return None


def inject_limit(root: exp.Expr, max_rows: int) -> Limited:
    """Cap the outermost query at max_rows rows (a smaller LIMIT is kept).

    The LIMIT written is max_rows + 1, one probe row past the limit: the executor returns
    at most max_rows rows and flags ``truncated`` only when the probe row came back, so a
    result of exactly max_rows rows is not mistaken for a cut one (datasette's max+1).
    """
    cap = max_rows + 1
    if isinstance(root, exp.Values) and any(root.args.get(k) for k in _MODIFIERS):
        # `VALUES ... ORDER BY 1 LIMIT 5`: rendered inside the wrapping subquery, sqlglot cannot
        # read it back (`(VALUES (1) ORDER BY 1)`). The outer SELECT * takes the modifiers: its
        # columns are the VALUES' own, by position and by name.
        moved = {k: root.args.get(k) for k in _MODIFIERS}
        for k in _MODIFIERS:
            root.set(k, None)
        alias = exp.TableAlias(this=exp.to_identifier("q"))
        outer = exp.select("*").from_(exp.Subquery(this=root, alias=alias))
        for k, v in moved.items():
            if v is not None:
                outer.set(k, v)
        return inject_limit(outer, max_rows)
    if isinstance(root, (exp.Values, exp.Pivot)) or (
        isinstance(root, exp.Subquery) and not isinstance(root.this, exp.Query)
    ):
        return Limited(_wrapped(root, cap), max_rows, "injected")
    if not isinstance(root, exp.Query):
        return Limited(root, 0, "none")
    limit = root.args.get("limit")
    if limit is None:
        root.set("limit", exp.Limit(expression=exp.Literal.number(cap)))
        return Limited(root, max_rows, "injected")
    options = limit.args.get("limit_options")
    special = options is not None and (options.args.get("percent") or options.args.get("with_ties"))
    written = limit.args.get("count") if isinstance(limit, exp.Fetch) else limit.expression
    count = _literal_int(written)
    if count is not None and not special:
        if count <= max_rows:
            return Limited(root, count, "kept")
        root.set("limit", exp.Limit(expression=exp.Literal.number(cap)))
        return Limited(root, max_rows, "lowered")
    if not special and (written is None or isinstance(written, exp.Null) or _is_all(written)):
        # LIMIT ALL / LIMIT NULL mean no limit: the cap replaces them without changing the answer.
        root.set("limit", exp.Limit(expression=exp.Literal.number(cap)))
        return Limited(root, max_rows, "lowered")
    # A percentage, WITH TIES or a computed count: replacing it would change which rows come
    # back (LIMIT 5 PERCENT is not LIMIT 1001), so it stays and an outer query caps the rows.
    return Limited(_wrapped(root, cap), max_rows, "wrapped")


def _is_all(node: exp.Expr) -> bool:
    return isinstance(node, exp.Var) and node.name.upper() == "ALL"


def _wrapped(root: exp.Expr, cap: int) -> exp.Select:
    """SELECT * FROM (root) AS q LIMIT cap."""
    alias = exp.TableAlias(this=exp.to_identifier("q"))
    return exp.select("*").from_(exp.Subquery(this=root, alias=alias)).limit(cap, copy=False)


def match_cte_names(root: exp.Expr) -> exp.Expr:
    """Spell each unquoted reference to a CTE as the CTE's own unquoted name is spelled.

    Both engines fold unquoted names, so ``WITH Monthly AS (...) SELECT * FROM monthly`` reads the
    CTE; sqlglot's scopes match CTE names as written and took ``monthly`` for an unknown table (or
    for a stored table of that name, which the CTE hides). A WITH is visited before the WITHs
    inside it, so an inner CTE of the same name respells what it hides. Quoted names are left as
    they are (PostgreSQL keeps their case).
    """
    for with_ in root.find_all(exp.With):
        names = {
            cte.alias.lower(): cte.alias
            for cte in with_.expressions
            if isinstance(cte.args.get("alias"), exp.TableAlias)
            and isinstance(cte.args["alias"].this, exp.Identifier)
            and not cte.args["alias"].this.quoted
        }
        owner = with_.parent
        if not names or owner is None:
            continue
        for table in owner.find_all(exp.Table):
            ident = table.this
            if table.args.get("db") or not isinstance(ident, exp.Identifier) or ident.quoted:
                continue
            spelled = names.get(ident.name.lower())
            if spelled is not None and spelled != ident.name:
                ident.set("this", spelled)
    return root


def render(root: exp.Expr, dialect: str) -> str:
    """SQL text for the tree; raises sqlglot.errors.UnsupportedError rather than dropping parts."""
    # generate() copies: the generator's transforms rewrite the tree they are given (an ordered
    # aggregate such as string_agg(x, ', ' ORDER BY y) loses its argument), and the round
    # trip compares the rendering with the analyzed tree, which must stay as analyzed.
    return generate(root, dialect, comments=False, unsupported_level=ErrorLevel.RAISE)


def spell_out_stars(
    root: exp.Expr,
    lazy: list[tuple[exp.Expr, list[tuple[exp.Expr, Any]]]],
    columns_of: TableColumns,
    dialect: str,
    forced: set[int] | frozenset[int] = frozenset(),
) -> int | None:
    """Write out each lazy star that stands for a table with blocked columns.

    ``lazy``: the stars of subqueries and CTEs that read only what their readers name, with the
    FROM items each stands for (``References.lazy_stars``). ``columns_of``: the columns of a base
    table in its order, each with whether the query reads it anywhere, and whether the table has
    blocked columns (None: not a table to write out). ``dialect``: sqlglot's, for a column's type.
    An engine that checks a reader's privilege on every column a ``*`` expands to (PostgreSQL's
    column grants) refuses ``EXISTS (SELECT * FROM customers ...)`` for the blocked column the
    query never reads. Written out as the columns the
    query reads, the star still gives every name its readers use (each name they bind through it
    is a column read), and the normalized code reads what the query as written reads, no more.

    ``forced``: ids of stars written out whatever their tables (``References.spelled_stars``: a
    materialized CTE's, which the engine's CTE scan would otherwise read whole).

    Where its readers take its columns by position (a set operation's branch, a column list on
    its query or on a reference to its CTE), a star keeps every position: each column the query
    reads nowhere is written as a NULL of the column's type (a set operation's other branches are
    matched to it as to the column), named as the column, except in a set operation's later
    branches (the first names the columns). It stays as written where what it gives depends on
    columns not named: a column list on a parenthesized join, USING or NATURAL (the engine merges
    columns), EXCLUDE / REPLACE / RENAME, an alias column list on a table, a FROM item without a
    name, a positional star over another query. Returns how many stars were written out,
    or None, with nothing written, when a ``forced`` star must stay as written: the query's reads
    are then those of the star read whole.
    """
    if _lists_join_columns(root):
        # `(a JOIN (SELECT * ...) b ON ...) AS x(p, q, ...)` names the stars' columns by position
        return None if any(id(star) in forced for star, _ in lazy) else 0
    if forced:
        closed = _forced_closure(lazy, forced)
        if closed is None:
            return None
        forced = closed
    planned: list[tuple[exp.Select, exp.Expr, list[exp.Expr]]] = []
    for star, items in lazy:
        parts = _star_columns(root, star, items, columns_of, id(star) in forced, dialect)
        if parts is None:
            if id(star) in forced:
                return None
            continue
        select = star.parent
        assert isinstance(select, exp.Select)
        planned.append((select, star, parts))
    for select, star, parts in planned:
        exprs = list(select.expressions)
        at = next(i for i, e in enumerate(exprs) if e is star)
        rest = [*exprs[:at], *parts, *exprs[at + 1 :]]
        # Nothing of the star is read (`SELECT count(*) FROM (SELECT * FROM t) x`): its rows are.
        select.set("expressions", rest or [exp.Literal.number(1)])
    return len(planned)


def _forced_closure(
    lazy: list[tuple[exp.Expr, list[tuple[exp.Expr, Any]]]], forced: set[int] | frozenset[int]
) -> set[int] | None:
    """``forced`` and the lazy stars of every query a forced star reads through its ``*``.

    A forced star over a subquery or CTE stays ``q.*``, which gives every column ``q`` gives: a
    lazy star of ``q`` must then be written out too, or the CTE scan reads every column of its
    tables. None when a forced star reads a source whose columns cannot be followed (a CTE under
    a column list)."""
    by_query: dict[int, list[tuple[exp.Expr, list[tuple[exp.Expr, Any]]]]] = {}
    for star, items in lazy:
        by_query.setdefault(id(star.parent), []).append((star, items))
    closed = set(forced)
    pending = [items for star, items in lazy if id(star) in closed]
    while pending:
        for _node, src in pending.pop():
            if isinstance(src, exp.Table):
                continue
            if not isinstance(src, Scope):
                return None  # a CTE read under a column list
            for inner, inner_items in by_query.get(id(_query_of(src.expression)), []):
                if id(inner) not in closed:
                    closed.add(id(inner))
                    pending.append(inner_items)
    return closed


def _query_of(node: exp.Expr) -> exp.Expr:
    """The query a source scope stands for: sqlglot scopes ``LATERAL (SELECT ...) d`` as the
    LATERAL node, whose star belongs to the SELECT inside it."""
    while isinstance(node, (exp.Lateral, exp.Subquery)) and isinstance(node.this, exp.Expr):
        node = node.this
    return node


def _star_columns(
    root: exp.Expr,
    star: exp.Expr,
    items: list[tuple[exp.Expr, Any]],
    columns_of: TableColumns,
    always: bool,
    dialect: str,
) -> list[exp.Expr] | None:
    """What ``star`` is written out as (spell_out_stars), or None where it stays as written (it
    also stays, unless ``always``, where none of its tables has a blocked column)."""
    select = star.parent
    if not isinstance(select, exp.Select) or star.arg_key != "expressions":
        return None
    branch = _set_branch(select)
    if branch and not always:
        return None
    positional = branch is not None or _positional(select, root)
    inner = star.this if isinstance(star, exp.Column) else star
    if any(inner.args.get(k) for k in ("except_", "replace", "rename")):
        return None
    if any(j.args.get("using") or j.args.get("method") for j in select.args.get("joins") or []):
        return None
    parts: list[exp.Expr] = []
    hides = False
    for node, src in items:
        qualifier = star.args.get("table") if isinstance(star, exp.Column) else _qualifier(node)
        if not isinstance(qualifier, exp.Identifier):
            return None
        table = src if isinstance(src, exp.Table) and isinstance(src.this, exp.Identifier) else None
        if table is not None and table.alias_column_names:
            return None
        cols = columns_of(table) if table is not None else None
        if cols is None:
            if positional:
                return None  # what the star gives at each position is not known here
            parts.append(exp.Column(this=exp.Star(), table=qualifier.copy()))
            continue
        columns, blocked = cols
        hides |= blocked
        for col in columns:
            if col.read:
                parts.append(exp.Column(this=col.name.copy(), table=qualifier.copy()))
            elif positional:
                null = _null_of(col.type, dialect)
                parts.append(null if branch == "later" else exp.alias_(null, col.name.copy()))
    return parts if hides or always else None


def _set_branch(select: exp.Select) -> str | None:
    """Which branch of a set operation ``select`` is, parenthesized or not: "first" (it names the
    columns), "later", or None (not a branch). A branch's columns meet the others' by position."""
    node: exp.Expr = select
    first = True
    branch = False
    while True:
        parent = node.parent
        if (
            isinstance(parent, exp.Subquery)
            and node.arg_key == "this"
            and isinstance(parent.parent, exp.SetOperation)
        ):
            node = parent
        elif isinstance(parent, exp.SetOperation) and node.arg_key in ("this", "expression"):
            branch = True
            first &= node.arg_key == "this"
            node = parent
        else:
            break
    return ("first" if first else "later") if branch else None


def _null_of(type_name: str, dialect: str) -> exp.Expr:
    """A NULL of a column's type: a branch gives it where the column stood, so the set operation's
    column keeps the type the other branches are matched to. A type sqlglot does not know (one of
    the database's own) is an untyped NULL, which takes the other branches' type."""
    built = _data_type(type_name, dialect)
    return exp.Null() if built is None else exp.Cast(this=exp.Null(), to=built.copy())


@lru_cache(maxsize=256)
def _data_type(type_name: str, dialect: str) -> exp.DataType | None:
    try:
        built = exp.DataType.build(type_name, dialect=dialect)
    except Exception:  # sqlglot cannot read it: a type of the database's own
        return None
    return None if built.is_type(exp.DataType.Type.USERDEFINED) else built


def _positional(select: exp.Select, root: exp.Expr) -> bool:
    """Whether the columns ``select`` gives are named by position by a column list (a set
    operation's branch is ``_set_branch``'s; an ordinal in ``select`` itself makes its star read
    whole, never lazy: ``Resolver._stars_are_eager``)."""
    holder = select.parent
    if isinstance(holder, exp.Subquery):
        lateral = holder.parent if isinstance(holder.parent, exp.Lateral) else None
        return bool(holder.alias_column_names) or bool(lateral is not None and lateral.alias_column_names)
    if isinstance(holder, exp.CTE):
        name = holder.alias_or_name.lower()
        if holder.alias_column_names:
            return True
        return any(
            t.name.lower() == name and not t.args.get("db") and t.alias_column_names
            for t in root.find_all(exp.Table)
        )
    return False


def _lists_join_columns(root: exp.Expr) -> bool:
    """Whether a parenthesized join carries a column list (``(...) AS x(a, b)``), which renames the
    joined items' columns by position (a CTE's or a subquery's among them)."""
    for node in root.find_all(exp.Subquery, exp.Table):
        inner = node.this if isinstance(node, exp.Subquery) else node
        if isinstance(inner, exp.Table) and inner.args.get("joins") and node.alias_column_names:
            return True
    return False


def _qualifier(node: exp.Expr) -> exp.Identifier | None:
    """The name a FROM item is qualified by: its alias, else a table's own name."""
    alias = node.args.get("alias")
    if isinstance(alias, exp.TableAlias) and isinstance(alias.this, exp.Identifier):
        return alias.this
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
        return node.this
    return None
