"""Resolve every table and column reference to base ``table.column`` reads.

A scope-based resolver over sqlglot's ``traverse_scope`` (measured several times faster
than ``qualify`` with a ``MappingSchema``, and it lets us keep what ``qualify`` throws
away: *where* a column was used, and which route reached it).

Rules that keep blocked columns out of reach:

* explicit columns are read wherever they appear (SELECT, WHERE, JOIN, GROUP BY, ORDER BY,
  HAVING, windows): a filter on a column is an oracle on its values;
* ``*`` and ``t.*`` expand against the *full* reflected schema. In a CTE or derived table
  a plain star is lazy: only the columns the outer query actually uses count, so
  ``WITH c AS (SELECT * FROM customers) SELECT name FROM c`` reads ``customers.name``
  only, and so does a star in a branch of a UNION ALL there, position by position. Everywhere
  else (the outer query, other set operations, DISTINCT, GROUP/ORDER BY ALL, stars inside
  functions) every column counts;
* whole-row values (``row_to_json(c)``, ``SELECT c FROM customers c``), positional
  (``#1``) and regex (``COLUMNS(...)``) selectors read every column of the sources they can
  reach; a NATURAL join reads every name two of its scope's sources give, from each of them,
  and every column where a source's columns are not exactly known;
* anything the resolver cannot place is matched against every table in the query, so an
  unplaced ``ssn`` still counts as ``customers.ssn``.

Binding over-approximates the engines' binders: a name counts as read from
*every* thing it could bind to. Resolution stops at a scope only when a source whose
columns are exactly known has the name. An output alias of the same SELECT, a source
whose columns are unknown or only guessed (table functions, VALUES, PIVOT), a whole-row
name and a comprehension or lambda variable never stop it: the outer scopes are searched
too and every match there counts. (Postgres binds output aliases only in ORDER BY and,
after input columns, in GROUP BY; DuckDB also in WHERE, GROUP BY and HAVING; counting
both sides covers both.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, ScopeType, traverse_scope, walk_in_scope

from ..engines.base import EngineTraits
from ..schema.snapshot import SchemaSnapshot
from .classify import Inventory, survey

# Node types the per-scope walk acts on (exact types; a Pseudocolumn is left to the sweep).
_KINDS: dict[type, str] = {
    exp.Column: "column",
    exp.Star: "star",
    exp.PositionalColumn: "selector",
    exp.Columns: "selector",
    exp.Dot: "dot",
    exp.Join: "join",
}

# Origins of a scope's output column. A "maybe" name is one the engine may give the
# column (a table function's or VALUES' default names): it places a name but never stops
# the search for outer columns of the same name.
_EXPLICIT = ("expr",)
_OPAQUE = ("opaque",)
_MAYBE = ("maybe",)
# An output the engine names (`count(*)` without AS: "count" to PostgreSQL, "count_star()" to
# DuckDB): its name starts with this mark, so no name binds to it exactly, and a source that has
# one places any name (the engine binds it or refuses it) without stopping the search outward.
# What it holds is computed from columns already checked where they are written.
_ENGINE_NAMED = "\x00"

# Columns of table functions called without a column alias list. An empty tuple: one
# column, named after the function (DuckDB and Postgres name it after the table alias
# when there is one). Functions not listed have unknown columns: any name may come from
# them, and the search continues outwards.
TABLE_FUNCTION_COLUMNS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        [
            "generate_series",
            "range",
            "unnest",
            "explode",
            "generate_subscripts",
            "regexp_matches",
            "regexp_split_to_table",
            "string_to_table",
            "json_object_keys",
            "jsonb_object_keys",
            "jsonb_path_query",
            "json_array_elements_text",
            "jsonb_array_elements_text",
        ],
        (),
    ),
    "json_each": ("key", "value", "type", "atom", "id", "parent", "fullkey", "path"),
    "json_tree": ("key", "value", "type", "atom", "id", "parent", "fullkey", "path"),
    "jsonb_each": ("key", "value"),
    "json_each_text": ("key", "value"),
    "jsonb_each_text": ("key", "value"),
    "json_array_elements": ("value",),
    "jsonb_array_elements": ("value",),
}

_CLAUSES: tuple[tuple[type, str], ...] = (
    (exp.OnConflict, "ON CONFLICT"),
    (exp.Returning, "RETURNING"),
    (exp.Where, "WHERE"),
    (exp.Join, "JOIN"),
    (exp.Group, "GROUP BY"),
    (exp.Having, "HAVING"),
    (exp.Order, "ORDER BY"),
    (exp.Qualify, "QUALIFY"),
    (exp.Window, "a window"),
)

# Nodes whose ORDER BY is a clause of the query (not an aggregate's argument ordering).
_ORDER_OWNERS = (exp.Select, exp.SetOperation, exp.Subquery, exp.Window)


@dataclass(slots=True)
class UnknownColumn:
    name: str
    # (name shown, base table, base column): base parts are empty for computed outputs.
    # rules/blocked_columns.py drops candidates that are blocked, so hints name only visible columns.
    candidates: list[tuple[str, str, str]]
    qualifier: str = ""


@dataclass(slots=True)
class References:
    """Everything the query names, resolved."""

    tables: list[exp.Table] = field(default_factory=list)  # base-table nodes (not CTE refs)
    table_functions: list[exp.Table] = field(default_factory=list)
    # (table, column) -> where it was used first: a label ("*", "a whole-row value", ...)
    # or the first column node reading it (see clause_label)
    reads: dict[tuple[str, str], str | exp.Expr] = field(default_factory=dict)
    unknown_columns: list[UnknownColumn] = field(default_factory=list)
    scopes: list[Scope] = field(default_factory=list)
    # id(column node) -> source keys it resolved to in its scope (for join graphs)
    column_sources: dict[int, set[str]] = field(default_factory=dict)
    output_fields: int = 0
    depth: int = 0
    # Lower-case column names the query itself spells: messages may name only these.
    named: frozenset[str] = frozenset()
    # Stars in a subquery's or CTE's select list that read only what their readers name, each
    # with the FROM items it stands for, in order: (FROM node, source) (rewrite.spell_out_stars).
    lazy_stars: list[tuple[exp.Expr, list[tuple[exp.Expr, Any]]]] = field(default_factory=list)
    # ids of the lazy stars the normalized code must write out whatever their tables: a star of a
    # CTE the engine computes once, whole, on an engine whose stars are written out (PostgreSQL).
    # Left as written, the CTE scan would read every column it names.
    spelled_stars: set[int] = field(default_factory=set)


class Resolver:
    """One resolution pass over one parsed statement."""

    def __init__(
        self, root: exp.Expr, snapshot: SchemaSnapshot, inventory: Inventory | None, traits: EngineTraits
    ):
        self.root = root
        self.inventory = inventory or survey(root)[1]
        self.snapshot = snapshot
        self.refs = References()
        self._outputs: dict[int, list[tuple[str, tuple[Any, ...]]] | None] = {}
        self._seen_columns: set[int] = set()
        self._pivot_clause_columns: set[int] = set()
        self._table_cols: dict[str, list[str]] = {}
        self._table_outs: dict[int, list[tuple[str, tuple[Any, ...]]] | None] = {}
        self._indexes: dict[int, dict[str, list[tuple[Any, ...]]] | None] = {}
        self._aliases: dict[int, set[str]] = {}
        self._lc_sources: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        # Per scope: how many sources sqlglot listed when built, and the sources (see _sources_of).
        self._subs: dict[int, tuple[int, dict[str, Any]]] = {}
        # Quoted names are case-sensitive (PostgreSQL): `"C".x` does not bind to a source `c`.
        self.case_sensitive_quotes = traits.quoted_identifiers_case_sensitive
        self.values_names = traits.values_column_names
        self.struct_star = traits.struct_star
        self.materialized_whole = traits.materialized_ctes_read_whole
        # Such a CTE's star is read lazily and written out as what its readers name, where the
        # engine's stars are written out anyway (spells_out_stars); else it is read whole.
        self.spells_materialized = traits.materialized_ctes_read_whole and traits.spells_out_stars
        # A UNION ALL branch's star reads what its readers name by position (_lazy_branch) where
        # the engine can follow that: its stars are written out by position (spells_out_stars), or
        # its check follows each column to its readers, as it does a CTE's (DuckDB's lineage, the
        # engines that do not read a materialized CTE whole).
        self.lazy_branches = traits.spells_out_stars or not traits.materialized_ctes_read_whole
        self.spells_branches = traits.spells_out_stars
        self._own: dict[int, set[int]] = {}
        self._cte_uses: dict[int, int] = {}  # CTE scope -> how many references name it
        # The query a PIVOT statement pivots (`PIVOT (SELECT ...) ON ...`), by the id of its node
        # (sqlglot may scope it a second time, from the query around an unaliased pivot): the
        # scope resolved for it and the pivot.
        self._pivot_sources: dict[int, tuple[Scope, exp.Pivot]] = {}
        self._quiet = 0  # > 0: resolving a candidate binding; unplaced names are not errors
        self._comprehensions = any(isinstance(n, exp.Comprehension) for n in self.inventory.lambdas)

    def _key(self, table: exp.Table) -> str:
        """The snapshot key of a table reference (``sales.orders`` when several schemas have one)."""
        return self.snapshot.key_of(table.name, table.text("db"))

    # -- entry point ---------------------------------------------------------------------

    def run(self) -> References:
        root = self.root
        pivot_table = None
        if isinstance(root, exp.Pivot):
            # DuckDB's PIVOT/UNPIVOT statement: a table source is grouped by every column it
            # does not pivot (all are read); a subquery source is resolved as a query.
            inner = root.this
            if isinstance(inner, exp.Subquery):
                scopes = traverse_scope(inner.unnest())
                self._pivot_source(root, scopes)
            else:
                scopes = []
                # With an explicit GROUP BY only the named columns are read (recorded below);
                # without one, every other column is grouped by.
                pivot_table = inner
        else:
            scopes = traverse_scope(root)
        # sqlglot's scopes stop at a PIVOT statement nested in FROM (`SELECT * FROM (PIVOT (WITH c
        # AS (...) SELECT * FROM c) ON ...) q`): a query source of one is resolved on its own, first.
        nested: list[Scope] = []
        for pivot in root.find_all(exp.Pivot):
            if pivot is not root and isinstance(pivot.this, exp.Subquery):
                own = traverse_scope(pivot.this.unnest())
                self._pivot_source(pivot, own)
                nested += own
        if nested:
            # sqlglot also scopes the source of an unaliased one, from the query around it: once is
            # enough (twice, a CTE in it counted as named twice, hence materialized and read whole).
            covered = {id(s.expression) for s in nested}
            scopes = nested + [s for s in scopes if id(s.expression) not in covered]
        pivoted_ctes: list[tuple[exp.Pivot, Scope]] = []
        for scope in scopes:
            for pivot in _add_pivot_sources(scope):
                # Its clauses name its source's columns, never the outer query's: left to the
                # sweep, which reads them from every table the query names.
                for key, value in pivot.args.items():
                    if key != "this":
                        for item in value if isinstance(value, list) else [value]:
                            if isinstance(item, exp.Expr):
                                self._pivot_clause_columns.update(map(id, item.find_all(exp.Column)))
                cte = _pivoted_cte(scope, pivot)
                if cte is not None:
                    pivoted_ctes.append((pivot, cte))
        self.refs.scopes = scopes
        cte_refs: set[int] = set()
        for scope in scopes:
            for table in _tables_of(scope):
                src = scope.sources.get(table.alias_or_name)
                if isinstance(src, Scope) and not table.args.get("db"):
                    cte_refs.add(id(table))
                    self._cte_uses[id(src)] = self._cte_uses.get(id(src), 0) + 1
            self.refs.depth = max(self.refs.depth, _depth(scope))
        for pivot, cte in pivoted_ctes:
            # sqlglot lists a PIVOT statement's CTE source as a table of the query around it only
            # when the statement has no alias: either way it is a use of the CTE, not a table.
            if id(pivot.this) not in cte_refs:
                cte_refs.add(id(pivot.this))
                self._cte_uses[id(cte)] = self._cte_uses.get(id(cte), 0) + 1
        for table in self.inventory.tables:
            if id(table) in cte_refs or isinstance(table.parent, exp.Into):
                continue
            if isinstance(table.this, exp.Identifier):
                self.refs.tables.append(table)
            else:
                self.refs.table_functions.append(table)
        write_scope = self._write_scope(root, scopes) if isinstance(root, exp.DML) else None
        for scope in scopes:
            self._resolve_scope(scope)
        self._lambda_candidates(scopes)
        if write_scope is not None:
            self._resolve_scope(write_scope)
            self._insert_columns(root)
        for table in self.refs.tables:
            # FROM t PIVOT (...) groups by every column it does not pivot; UNPIVOT passes them on:
            # every column of the table is read, whatever the outer query names.
            for pivot in table.args.get("pivots") or ():
                self._pivot_table_reads(pivot, table)
        for scope in scopes:
            # The same for a CTE: FROM c PIVOT (...) reads every column of c, through a * in c too.
            for table in _tables_of(scope):
                src = scope.sources.get(table.alias_or_name)
                if id(table) not in cte_refs or not isinstance(src, Scope) or not table.args.get("pivots"):
                    continue
                listed = [c.lower() for c in table.alias_column_names]
                for pivot in table.args["pivots"]:
                    self._pivot_reads(pivot, _Renamed(src, listed) if listed else src)
        for scope in scopes:
            # And for a query: FROM (SELECT ...) PIVOT (...) reads its columns, through a * too.
            for derived in _pivoted_queries(scope):
                query = scope.sources.get(derived.alias_or_name)
                if isinstance(query, Scope):
                    for pivot in derived.args["pivots"]:
                        self._pivot_reads(pivot, query)
        if not scopes and not isinstance(root, (exp.DML, exp.Pivot)):
            for table in self.refs.tables:
                for c in self._columns_of(self._key(table)):
                    self._record(self._key(table), c, None, "PIVOT")
        for pivot, cte in pivoted_ctes:
            self._pivot_reads(pivot, cte)
        for query, pivot in self._pivot_sources.values():
            self._pivot_reads(pivot, query)
        for pivot in root.find_all(exp.Pivot):
            # The same for a PIVOT statement, also inside a query: `SELECT * FROM (PIVOT customers
            # ON region IN (...) USING count(*)) p` groups by, and returns, every other column.
            source = pivot.this
            if any(pivot is p for p, _ in pivoted_ctes) or (pivot is root and pivot_table is None):
                continue
            if not (isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier)):
                continue
            if self._pivot_table_reads(pivot, source) is None and pivot is root:
                # The statement has no scopes: a query in its clauses is read whole too.
                for table in self.refs.tables:
                    for c in self._columns_of(self._key(table)):
                        self._record(self._key(table), c, None, "PIVOT")
        if scopes and not isinstance(root, exp.DML):
            top = scopes[-1]
            outs = self._outputs_of(top)
            selects = getattr(top.expression, "selects", None) or []
            self.refs.output_fields = len(outs) if outs is not None else len(selects)
        self._sweep_unplaced()
        self.refs.named = _named_columns(root, self.inventory)
        return self.refs

    def _write_scope(self, root: exp.Expr, scopes: list[Scope]) -> Scope | None:
        """INSERT / UPDATE / DELETE: a scope whose sources (the target, FROM and USING
        tables) serve SET, WHERE and RETURNING. Written columns count like read ones: a
        blocked column may not be written either."""
        target = root.this
        if isinstance(target, exp.Schema):
            target = target.this
        if not isinstance(target, exp.Table) or not isinstance(target.this, exp.Identifier):
            return None
        sources: dict[str, Any] = {target.alias_or_name: target}
        extra: list[exp.Expr] = []
        from_ = root.args.get("from_")
        if isinstance(from_, exp.From):
            extra.append(from_.this)
            extra.extend(j.this for j in from_.args.get("joins") or [])
        using = root.args.get("using")
        extra.extend(using if isinstance(using, list) else [using] if using is not None else [])
        extra.extend(j.this for j in root.args.get("joins") or [])
        for node in extra:
            if isinstance(node, exp.Table):
                sources[node.alias_or_name] = node
        if isinstance(root, exp.Insert) and root.args.get("conflict") is not None:
            # ON CONFLICT ... DO UPDATE SET c = excluded.c: `excluded` is the row proposed for
            # insertion, a row of the target table. Its columns resolve as the target's, so a
            # blocked one is refused like any other (and an unknown one is unknown).
            sources.setdefault("excluded", target)
        # Subqueries of the statement hang off one shared parent scope: give it the sources
        # so that correlated references resolve, and resolve the statement itself through it.
        dml_scope = next(
            (s.parent for s in scopes if s.parent is not None and s.parent.expression is root), None
        )
        if dml_scope is None:
            dml_scope = Scope(root)
        dml_scope.sources.update(sources)
        return dml_scope

    def _insert_columns(self, root: exp.Expr) -> None:
        """INSERT writes its column list, or every column of the table without one."""
        if not isinstance(root, exp.Insert):
            return
        target = root.this
        columns = list(target.expressions) if isinstance(target, exp.Schema) else None
        table = target.this if isinstance(target, exp.Schema) else target
        if not isinstance(table, exp.Table):
            return
        tname = self._key(table)
        for name in [i.name.lower() for i in columns] if columns else self._columns_of(tname):
            self._record(tname, name, None, "INSERT")

    # -- per-scope resolution ------------------------------------------------------------

    def _resolve_scope(self, scope: Scope) -> None:
        expr = scope.expression
        eager = self._stars_are_eager(scope)
        if isinstance(expr, exp.SetOperation) and self.lazy_branches and not self.spells_branches:
            self._cast_columns(scope)
        for node in walk_in_scope(expr):
            kind = _KINDS.get(type(node))  # one lookup per node: most nodes are none of these
            if kind is None or (node is expr and kind != "column"):
                continue
            if kind == "column":
                if id(node) in self._pivot_clause_columns:
                    continue
                self._seen_columns.add(id(node))
                assert isinstance(node, exp.Column)
                if isinstance(node.this, exp.Star):
                    self._table_star(scope, node, eager and _is_projection(node, expr))
                elif node.arg_key in ("except_", "rename"):
                    continue
                else:
                    self._column(scope, node)
            elif kind == "star":
                parent = node.parent
                if isinstance(parent, exp.Count) or (isinstance(parent, exp.Column) and parent.this is node):
                    continue  # count(*) reads no column; t.* handled with its Column
                if isinstance(parent, exp.Select) and node.arg_key == "expressions":
                    # A lazy star is only safe when the outer query can see through it.
                    if eager or self._outputs_of(scope) is None:
                        self._demand_all_sources(scope, node, "*")
                    else:
                        self._lazy_star(node, scope, None)
                    continue
                # A star inside a function or selector reaches every column of every source.
                self._demand_all_sources(scope, node, "*")
            elif kind == "selector":
                if isinstance(node, exp.Columns) and _is_any_star(node.this):
                    # COLUMNS(* EXCLUDE (c)): the star inside is read as any star in a call is,
                    # less what its EXCLUDE / REPLACE / RENAME take away (its own kind, above).
                    continue
                self._demand_all_sources(scope, None, "a positional or COLUMNS(...) selector")
            elif kind == "dot":
                if node.is_star:
                    self._demand_all_sources(scope, None, "*")
            else:
                self._join_columns(scope, node)  # type: ignore[arg-type]

    def _stars_are_eager(self, scope: Scope) -> bool:
        """Whether a bare ``*`` in this scope reads every column at once."""
        expr = scope.expression
        if scope.scope_type == ScopeType.CTE and self._materialized(scope) and not self._spells_out(scope):
            return True
        # `JOIN LATERAL (SELECT * ...) x`: sqlglot scopes the query as a subquery; x's readers
        # name what it gives, as for a derived table. So does the query a PIVOT statement pivots,
        # whose one reader is the pivot (run: _pivot_reads), when it has a GROUP BY.
        lateral = isinstance(expr.parent, exp.Subquery) and isinstance(expr.parent.parent, exp.Lateral)
        pivoted = id(expr) in self._pivot_sources
        if (
            scope.scope_type in (ScopeType.DERIVED_TABLE, ScopeType.CTE)
            or lateral
            or pivoted
            or self._lazy_branch(scope)
        ) and isinstance(expr, exp.Select):
            distinct = expr.args.get("distinct")
            if distinct is not None and not distinct.args.get("on"):
                return True
            group = expr.args.get("group")
            if group is not None and group.args.get("all"):
                return True
            return _orders_by_all(expr) or has_ordinals(expr)
        # EXISTS (SELECT * ...) tests for rows, not values.
        return not (scope.scope_type == ScopeType.SUBQUERY and isinstance(expr.parent, exp.Exists))

    def _lazy_branch(self, scope: Scope) -> bool:
        """Whether this query is a branch of a set operation whose readers' names reach it by
        position: a chain of UNION ALL (no ORDER BY on it, no BY NAME) that a derived table, a
        LATERAL query or a CTE the engine folds into its readers stands for. A ``*`` in such a
        branch reads, at each position, only what the readers name there (``_compute_outputs``),
        where the engine can follow that: its stars are written out, by position
        (rewrite.spell_out_stars), or its check follows each column to its readers. UNION,
        INTERSECT and EXCEPT compare whole rows: every column of theirs counts."""
        if scope.scope_type != ScopeType.SET_OPERATION or not self.lazy_branches:
            return False
        top = scope.parent
        while top is not None and top.scope_type == ScopeType.SET_OPERATION:
            top = top.parent
        if top is None or not isinstance(top.expression, exp.SetOperation):
            return False
        # Its readers see through it only where its columns are known position by position (not
        # while they are being worked out: a branch's own columns do not depend on this).
        return self._lazy_set_operation(top) and self._outputs_of(top) is not None

    def _lazy_set_operation(self, scope: Scope) -> bool:
        """Whether the set operation ``scope`` stands for passes its readers' names to its branches
        by position (:meth:`_lazy_branch`)."""
        expr = scope.expression
        parent = expr.parent
        if scope.scope_type == ScopeType.CTE:
            if self._materialized(scope):
                return False
        elif not (
            isinstance(parent, exp.Subquery)
            and (scope.scope_type == ScopeType.DERIVED_TABLE or isinstance(parent.parent, exp.Lateral))
        ):
            return False
        return _union_all_chain(expr)

    def _spells_out(self, scope: Scope) -> bool:
        """Whether the star of this materialized CTE is read as its readers name and written out
        as those columns (:meth:`_lazy_star`, ``References.spelled_stars``): on an engine whose
        stars are written out, for a CTE that is not recursive (whose star feeds itself)."""
        return self.spells_materialized and not _recursive_cte(scope)

    def _materialized(self, scope: Scope) -> bool:
        """Whether the engine may compute this CTE once, whole, instead of folding it into its
        readers, and a ``*`` in it then reads every column, whatever the readers name, unless it is
        written out as what they name (:meth:`_spells_out`). Engines do
        so for ``AS MATERIALIZED``, for a CTE named more than once and for recursive ones. Only a
        recursive CTE counts everywhere; the others only where the engine's plan of such a CTE
        reads every column its star names (``EngineTraits.materialized_ctes_read_whole``:
        PostgreSQL's CTE scan). DuckDB's engine check follows each column of it to its readers,
        as the analyzer does."""
        cte = scope.expression.parent
        if not isinstance(cte, exp.CTE):
            return False
        if _recursive_cte(scope):
            return True
        if not self.materialized_whole:
            return False
        materialized = cte.args.get("materialized")
        if materialized is not None:
            return bool(materialized)  # AS [NOT] MATERIALIZED
        return self._cte_uses.get(id(scope), 0) > 1

    # -- columns -------------------------------------------------------------------------

    def _column(self, scope: Scope, col: exp.Column) -> None:
        name = col.name.lower()
        qualifier = col.table.lower()
        if self._comprehensions and _comprehension_variable(col, (qualifier or name)):
            # The loop variable binds first, but a same-named column is a candidate too.
            self._quiet += 1
            try:
                self._bind_column(scope, col, name, qualifier)
            finally:
                self._quiet -= 1
            return
        self._bind_column(scope, col, name, qualifier)

    def _bind_column(self, scope: Scope, col: exp.Column, name: str, qualifier: str) -> None:
        if not qualifier:
            self._unqualified(scope, col, name)
            return
        db = col.db.lower()
        hit = False
        # `alias.struct_col.field` (db part is a source): the column is the middle part.
        if db and self._find_source(scope, db) is not None:
            for outer in self._find_sources(scope, db, col.parts[-3]):
                hit |= self._read_named(scope, outer, db, qualifier, col)
        if self._find_source(scope, qualifier) is not None:
            for source in self._find_sources(scope, qualifier, col.args.get("table")):
                hit |= self._read_named(scope, source, qualifier, name, col, report=not hit)
            return
        if hit:
            return
        # `col.field` struct access, or a table's own name used although it is aliased.
        by_table = [
            (key, src)
            for s in _chain(scope)
            for key, src in s.sources.items()
            if isinstance(src, exp.Table) and src.name.lower() == qualifier
        ]
        if by_table:
            for key, src in by_table:
                self._read_named(scope, src, key, name, col)
            return
        if self._unqualified(scope, col, qualifier, report=False):
            return
        # `s.a.b`: a struct column's nested field (the first part names the column).
        first = col.parts[0].name.lower() if len(col.parts) > 2 else ""
        if first and self._unqualified(scope, col, first, report=False):
            return
        if not self._quiet:  # a lambda parameter's field (`x -> x.a`) is no column
            self._unknown(scope, name, qualifier)

    def _find_sources(self, scope: Scope, key: str, ident: Any) -> list[tuple[Any, Scope]]:
        """The source a qualifier names, plus, where quoted names are case-sensitive
        (PostgreSQL), every outer source of the same name when letter case could make the
        engine skip the inner one (`"C".x` does not bind to a source `c`)."""
        first = self._find_source(scope, key)
        if first is None:
            return []
        found = [first]
        if self.case_sensitive_quotes:
            own = self._own_of(scope)
            level = first[1].parent
            while level is not None:
                src = self._lower_sources(level).get(key)
                if src is not None and _sid(src) not in own and _case_matters(ident, level, key):
                    found.append((src, level))
                level = level.parent
        return found

    def _unqualified(self, scope: Scope, col: exp.Column, name: str, report: bool = True) -> bool:
        """Bind an unqualified name, counting every candidate (see the module docstring)."""
        placed = False
        case_matters = self.case_sensitive_quotes and _quoted_mixed_case(col)
        own = self._own_of(scope)
        for level in _chain(scope):
            exact: list[tuple[str, Any]] = []
            for key, src in self._sources_of(level).items():
                if _sid(src) in own:
                    continue  # a derived table cannot read its own output: the name is outer
                index = self._index_of(src)
                if index is None:
                    placed = True  # unknown columns: it may come from here, or from outside
                    continue
                origins = index.get(name)
                if not origins:
                    placed |= _ENGINE_NAMED in index  # maybe a column the engine names
                    continue
                placed = True
                # Ambiguous names are read from every match: the engine picks one or fails.
                self._read_named(level, (src, level), key, name, col)
                if any(o is not _MAYBE for o in origins):
                    exact.append((key, src))
            if exact and not case_matters:
                return True
            if level is scope and name in self._aliases_of(scope):
                placed = True  # an output alias may be meant; input and outer columns count too
            whole = self._lower_sources(level).get(name)
            if whole is not None and _sid(whole) not in own:
                self._demand_source(whole, col, "a whole-row value")
                placed = True
        if not placed and report and not self._quiet:
            self._unknown(scope, name, "")
        return placed

    def _aliases_of(self, scope: Scope) -> set[str]:
        key = id(scope)
        if key not in self._aliases:
            self._aliases[key] = _select_aliases(scope)
        return self._aliases[key]

    def _lower_sources(self, scope: Scope) -> dict[str, Any]:
        """The scope's sources keyed by lower-case name (built once per scope)."""
        key = id(scope)
        sources = self._sources_of(scope)
        built = self._lc_sources.get(key)
        if built is None or built[0] is not sources:
            built = self._lc_sources[key] = (sources, {k.lower(): v for k, v in sources.items()})
        return built[1]

    def _sources_of(self, scope: Scope) -> dict[str, Any]:
        """``scope.sources``, where a CTE is named with a column list (``FROM c AS z(a, b)``)
        as a :class:`_Renamed` of the CTE's scope: its columns go by the names the list gives;
        a pivoted CTE or query (``FROM c PIVOT (...) p``) as its node, an opaque source."""
        key = id(scope)
        built = self._subs.get(key)
        if built is not None and built[0] == len(scope.sources):
            return built[1]
        found: dict[str, Any] = dict(scope.sources)
        # A CTE that only a PIVOT statement in FROM names (`FROM (PIVOT c ON ...) p`) is the pivot's
        # source, not the query's: sqlglot lists it among the query's sources all the same.
        pivoted = {id(p.this): p.this for p in _pivot_statements(scope)}
        named = {t.alias_or_name for t in _tables_of(scope) if id(t) not in pivoted}
        for table in pivoted.values():
            if isinstance(table, exp.Table) and table.alias_or_name not in named:
                found.pop(table.alias_or_name, None)
        for table in _tables_of(scope):
            name = table.alias_or_name
            src = found.get(name)
            if isinstance(src, Scope) and table.args.get("pivots"):
                # `FROM c PIVOT (...)` returns what the pivot reads of c (run: _pivot_reads).
                found[name] = table
            elif isinstance(src, Scope) and table.alias_column_names:
                found[name] = _Renamed(src, [c.lower() for c in table.alias_column_names])
        for derived in _pivoted_queries(scope):
            # `FROM (SELECT ...) s PIVOT (...) p` likewise: opaque, named s or p.
            found[derived.alias_or_name] = derived
            for pivot in derived.args["pivots"]:
                if pivot.alias:
                    found.setdefault(pivot.alias, derived)
        self._subs[key] = (len(scope.sources), found)
        return found

    def _own_of(self, scope: Scope) -> set[int]:
        key = id(scope)
        own = self._own.get(key)
        if own is None:
            own = self._own[key] = _own_scopes(scope)
        return own

    def _find_source(self, scope: Scope, key: str) -> tuple[Any, Scope] | None:
        own = self._own_of(scope)
        for level in _chain(scope):
            src = self._lower_sources(level).get(key)
            if src is not None and _sid(src) not in own:
                return src, level
        return None

    def _read_named(
        self,
        scope: Scope,
        found: tuple[Any, Scope] | Any,
        key: str,
        name: str,
        col: exp.Column,
        report: bool = True,
    ) -> bool:
        src = found[0] if isinstance(found, tuple) else found
        self.refs.column_sources.setdefault(id(col), set()).add(key.lower())
        index = self._index_of(src)
        if index is None:
            return True
        origins = index.get(name)
        if origins:
            for origin in origins:
                self._demand(origin, col)
            return True
        if _ENGINE_NAMED in index:
            return True  # maybe a column the engine names: nothing more is read
        if report and not self._quiet:
            self._unknown(scope, name, key, src)
        return False

    def _table_star(self, scope: Scope, col: exp.Column, eager: bool) -> None:
        qualifier = col.table.lower()
        found = self._find_source(scope, qualifier)
        if found is None:
            # DuckDB's `s.*` over a struct column s: its fields, all of s read.
            if not (self.struct_star and self._unqualified(scope, col, qualifier, report=False)):
                self._unknown(scope, "*", qualifier)
            return
        self.refs.column_sources.setdefault(id(col), set()).add(qualifier)
        if eager or not _is_projection(col, scope.expression) or self._outputs_of(scope) is None:
            star = col.this
            if any(star.args.get(k) for k in ("except_", "replace", "rename")):
                # t.* EXCLUDE (c) / REPLACE (... AS c): what the modifiers leave is read, as for *.
                outs = self._source_outputs(found[0])
                if outs is not None:
                    for _, origin in _apply_star_modifiers(star, outs, qualifier, True):
                        self._demand(origin, col, "*")
                    return
            self._demand_source(found[0], col, "*")
        elif found[1] is scope:
            self._lazy_star(col, scope, found[0])

    def _lazy_star(self, star: exp.Expr, scope: Scope, only: Any) -> None:
        """Note a star that reads only what its readers name, with the FROM items it stands for
        (``only``: the one source of a ``t.*``)."""
        try:
            selected = scope.selected_sources
        except Exception:  # sqlglot cannot list them: the star stays as written
            return
        subs = self._sources_of(scope)
        items: list[tuple[exp.Expr, Any]] = [(n, subs.get(k, src)) for k, (n, src) in selected.items()]
        if only is not None:
            items = [(node, src) for node, src in items if src is only or _sid(src) == _sid(only)]
        if items:
            self.refs.lazy_stars.append((star, items))
            if (scope.scope_type == ScopeType.CTE and self._materialized(scope)) or (
                self.spells_branches and self._lazy_branch(scope)
            ):
                self.refs.spelled_stars.add(id(star))

    def _join_columns(self, scope: Scope, join: exp.Join) -> None:
        using = join.args.get("using") or []
        for ident in using:
            name = ident.name.lower() if isinstance(ident, (exp.Identifier, exp.Column)) else ""
            for src in self._sources_of(scope).values():
                outs = self._source_outputs(src)
                if outs is None:
                    continue
                for out_name, origin in outs:
                    if out_name == name:
                        self._demand(origin, None, "JOIN")
        if str(join.args.get("method") or "").upper() == "NATURAL":
            self._natural_columns(scope)

    def _natural_columns(self, scope: Scope) -> None:
        """A NATURAL join compares the columns of the same name on its sides: every name two of the
        scope's sources give is read, from each source that gives it. Where a source's columns are
        not exactly known (a table function, VALUES, a name the engine gives), every column of every
        source is."""
        given: list[tuple[Any, list[tuple[str, tuple[Any, ...]]]]] = []
        for _, src in self._ordered_sources(scope):
            outs = self._source_outputs(src)
            if outs is None or any(o is _MAYBE or n.startswith(_ENGINE_NAMED) for n, o in outs):
                for whole in self._sources_of(scope).values():
                    self._demand_source(whole, None, "a NATURAL join")
                return
            given.append((src, outs))
        sources_of: dict[str, int] = {}
        for _, outs in given:
            for name in {n for n, _ in outs}:
                sources_of[name] = sources_of.get(name, 0) + 1
        for _, outs in given:
            for name, origin in outs:
                if sources_of[name] > 1:
                    self._demand(origin, None, "a NATURAL join")

    # -- outputs of sources --------------------------------------------------------------

    def _index_of(self, src: Any) -> dict[str, list[tuple[Any, ...]]] | None:
        """Output name -> origins of a source (None: opaque), built once per source."""
        key = id(src)
        if key in self._indexes:
            return self._indexes[key]
        outs = self._source_outputs(src)
        index: dict[str, list[tuple[Any, ...]]] | None = None
        if outs is not None:
            index = {}
            for name, origin in outs:
                index.setdefault(name, []).append(origin)
                if name.startswith(_ENGINE_NAMED):
                    index[_ENGINE_NAMED] = [_MAYBE]
        self._indexes[key] = index
        return index

    def _source_outputs(self, src: Any) -> list[tuple[str, tuple[Any, ...]]] | None:
        if isinstance(src, Scope):
            return self._outputs_of(src)
        if isinstance(src, _Renamed):
            outs = self._outputs_of(src.scope)
            if outs is None:
                return None
            return _renamed(outs, src.names, _merges_star_columns(src.scope.expression))
        key = id(src)
        if key not in self._table_outs:
            self._table_outs[key] = self._table_outputs(src)
        return self._table_outs[key]

    def _table_outputs(self, src: Any) -> list[tuple[str, tuple[Any, ...]]] | None:
        if isinstance(src, exp.Table):
            if isinstance(src.this, exp.Identifier):
                tname = self._key(src)
                info = self.snapshot.table(tname)
                if info is None or src.args.get("pivots"):
                    return None
                alias_cols = [c.lower() for c in src.alias_column_names]
                outs = []
                for i, c in enumerate(self._columns_of(tname)):
                    out_name = alias_cols[i] if i < len(alias_cols) else c
                    outs.append((out_name, ("base", tname, c)))
                return outs
            if src.this is None:
                # ROWS FROM (f(...), g(...)): only an alias column list names its columns.
                return [(n.lower(), _EXPLICIT) for n in src.alias_column_names] or None
            return _function_outputs(src.this, src)
        return None

    def _columns_of(self, table: str) -> list[str]:
        cols = self._table_cols.get(table)
        if cols is None:
            info = self.snapshot.table(table)
            cols = [c.name.lower() for c in info.columns] if info else []
            self._table_cols[table] = cols
        return cols

    def _outputs_of(self, scope: Scope) -> list[tuple[str, tuple[Any, ...]]] | None:
        key = id(scope)
        if key in self._outputs:
            return self._outputs[key]
        self._outputs[key] = None  # recursion guard (recursive CTEs)
        outs = self._compute_outputs(scope)
        declared = scope.outer_columns or _cte_column_list(scope.expression)
        if outs is not None and declared and not _is_join(scope.expression):  # a join renames its own
            outs = _renamed(outs, [c.lower() for c in declared], _merges_star_columns(scope.expression))
        if outs is not None and (added := _search_columns(scope.expression)):
            outs = outs + [(name, _EXPLICIT) for name in added]
        self._outputs[key] = outs
        return outs

    def _compute_outputs(self, scope: Scope) -> list[tuple[str, tuple[Any, ...]]] | None:
        expr = scope.expression
        if isinstance(expr, exp.SetOperation) and self.lazy_branches and self._lazy_set_operation(scope):
            return self._branch_outputs(scope)
        if isinstance(expr, exp.SetOperation):
            left = expr
            while isinstance(left, exp.SetOperation):
                left = left.this
            left = left.unnest() if isinstance(left, exp.Subquery) else left
            if isinstance(left, exp.Select):
                if any(_is_any_star(p) for p in left.expressions):
                    return None  # branch stars are eager, so nothing is hidden behind this
                return [(_output_name(p), _EXPLICIT) for p in left.expressions]
            return None
        if isinstance(expr, exp.Values):
            return self._values_outputs(expr)
        if isinstance(expr, exp.Unnest):
            return _function_outputs(expr, expr)
        if isinstance(expr, exp.UDTF):
            inner = [s for s in scope.subquery_scopes] or [
                s for s in scope.sources.values() if isinstance(s, Scope)
            ]
            if inner:
                return self._outputs_of(inner[-1])
            return None
        if _is_join(expr):
            return self._join_outputs(scope, expr)
        if not isinstance(expr, exp.Select):
            return None
        outs: list[tuple[str, tuple[Any, ...]]] = []
        eager = self._stars_are_eager(scope)
        for proj in expr.expressions:
            if isinstance(proj, exp.Star):
                for src in self._ordered_sources(scope):
                    src_outs = self._source_outputs(src[1])
                    if src_outs is None:
                        return None
                    outs.extend(_apply_star_modifiers(proj, src_outs, src[0], eager))
            elif _is_table_star(proj):
                found = self._find_source(scope, proj.table.lower())
                src_outs = self._source_outputs(found[0]) if found else None
                if src_outs is None:
                    return None
                star = proj.this if isinstance(proj.this, exp.Star) else proj
                outs.extend(_apply_star_modifiers(star, src_outs, proj.table.lower(), eager))
            else:
                # The expression itself: a UNION ALL's branches are matched by its type (_cast_columns).
                outs.append((_output_name(proj), ("expr", proj)))
        return outs

    def _branch_outputs(self, scope: Scope) -> list[tuple[str, tuple[Any, ...]]] | None:
        """A UNION ALL chain's columns (:meth:`_lazy_branch`): the first branch's names, each
        reading the column at its position in every branch."""
        branches: list[list[tuple[str, tuple[Any, ...]]]] = []
        pending = [scope]
        while pending:
            node = pending.pop()
            if isinstance(node.expression, exp.SetOperation):
                if len(node.set_operation_scopes) != 2:
                    return None
                pending.extend(reversed(node.set_operation_scopes))
                continue
            outs = self._outputs_of(node)
            if outs is None or (branches and len(outs) != len(branches[0])):
                return None
            if _merges_star_columns(node.expression):
                return None  # its columns' positions are the engine's: every column may be read
            branches.append(outs)
        if not branches:
            return None
        return [
            (name, ("any", tuple(outs[i][1] for outs in branches))) for i, (name, _) in enumerate(branches[0])
        ]

    def _cast_columns(self, scope: Scope) -> None:
        """The columns a lazy UNION ALL (:meth:`_lazy_branch`) casts, read whether its readers name
        them or not: where its branches' columns at a position are not all table columns of one
        type, the engine's plan casts each to the common type, and a cast reads its column
        (DuckDB's check counts it). On an engine whose stars are written out, a column nobody
        reads is a NULL of its type there (rewrite.spell_out_stars): nothing to cast."""
        if not self._lazy_set_operation(scope):
            return
        for _, origin in self._outputs_of(scope) or []:
            if origin[0] != "any":
                continue
            types = {self._branch_type(inner) for inner in origin[1]} - {"NULL"}
            columns = types - {"STRING"}
            if None in types or len(columns) > 1 or ("STRING" in types and columns - {"VARCHAR"}):
                self._demand(origin, None, "a star in a UNION ALL branch")

    def _branch_type(self, origin: tuple[Any, ...]) -> str | None:
        """A branch column's type, where the analyzer knows it: a table column's, "NULL" for NULL
        and "STRING" for a string constant, which take the table column's type without a cast
        (DuckDB's binder casts the constant to VARCHAR). None: any other expression."""
        if origin[0] == "expr" and len(origin) > 1:
            node = origin[1].unalias()
            if isinstance(node, exp.Null):
                return "NULL"
            return "STRING" if isinstance(node, exp.Literal) and node.is_string else None
        table, column = self._base_of(origin)
        info = self.snapshot.table(table) if table else None
        found = [c.type.upper() for c in info.columns if c.name.lower() == column] if info else []
        return found[0] if found else None

    def _join_outputs(self, scope: Scope, expr: exp.Table) -> list[tuple[str, tuple[Any, ...]]] | None:
        """``(a JOIN b ON ...) AS x``: x's columns are every column of the joined sources, in order.

        With USING or NATURAL the engine merges the shared columns and puts them first, so a
        column list on the alias (``AS x(p, q)``) renames positions this order does not know
        (nor does it when the sources cannot be put in order): then every name the list gives
        may be any column of the join."""
        joins = expr.args.get("joins") or []
        names = [expr.alias_or_name, *(j.this.alias_or_name for j in joins)]
        sources = self._sources_of(scope)
        in_order = [sources.get(n) for n in names]
        # In order when each source is one of the joined items. A CTE is a source under its own
        # name wherever it is visible (`cv` beside `c` for `cv c`, or not read here at all): a name,
        # not a joined item.
        joined = {_sid(v) for v in in_order}
        ordered = (
            len(set(names)) == len(names)
            and None not in in_order
            and all(
                _sid(v) in joined or (isinstance(v, Scope) and v.scope_type == ScopeType.CTE)
                for v in sources.values()
            )
        )
        outs: list[tuple[str, tuple[Any, ...]]] = []
        for src in in_order if ordered else list(sources.values()):
            src_outs = self._source_outputs(src)
            if src_outs is None:
                return None
            outs.extend(src_outs)
        declared = [d.lower() for d in scope.outer_columns]
        if not declared:
            return outs
        if not ordered or any(j.args.get("using") or j.args.get("method") for j in joins):
            return [(d, origin) for d in declared for _, origin in outs]
        return [(declared[i] if i < len(declared) else n, origin) for i, (n, origin) in enumerate(outs)]

    def _values_outputs(self, values: exp.Values) -> list[tuple[str, tuple[Any, ...]]]:
        """VALUES columns: the alias list, then the engine's default names (DuckDB has used
        both col0.. and column1..; Postgres column1..), which only ever place a name."""
        first = values.expressions[0] if values.expressions else None
        width = len(first.expressions) if isinstance(first, exp.Tuple) else 1
        aliases = [c.lower() for c in values.alias_column_names]
        outs: list[tuple[str, tuple[Any, ...]]] = [(n, _EXPLICIT) for n in aliases]
        for i in range(len(aliases), width):
            outs.extend((name.format(i=i, n=i + 1), _MAYBE) for name in self.values_names)
        return outs

    def _ordered_sources(self, scope: Scope) -> list[tuple[str, Any]]:
        sources = self._sources_of(scope)
        try:
            ordered = [(k, sources.get(k, v[1])) for k, v in scope.selected_sources.items()]
        except Exception:
            return list(sources.items())
        # A PIVOT statement in FROM is no source to sqlglot (_add_pivot_sources): its columns too.
        selected = {k for k, _ in ordered}
        ordered += [(k, v) for k, v in scope.sources.items() if _is_pivot_statement(v) and k not in selected]
        return ordered

    # -- demand --------------------------------------------------------------------------

    def _pivot_source(self, pivot: exp.Pivot, scopes: list[Scope]) -> None:
        """Note the query a PIVOT statement pivots (the last of its scopes): with a GROUP BY, a star
        in it reads what the pivot names (:meth:`_stars_are_eager`, :meth:`_pivot_reads`)."""
        if scopes and pivot.args.get("group") is not None and not pivot.args.get("unpivot"):
            self._pivot_sources[id(scopes[-1].expression)] = (scopes[-1], pivot)

    def _pivot_reads(self, pivot: exp.Pivot, source: Scope | _Renamed) -> None:
        """What a PIVOT / UNPIVOT reads of the query or CTE it pivots (``FROM (PIVOT c ON ...) p``,
        ``FROM c PIVOT (...)``, ``FROM (SELECT ...) PIVOT (...)``, ``PIVOT (SELECT ...) ON ...``):
        the columns :func:`_pivot_named` finds, or every column. A ``*`` there is then read for
        those columns, as for any reader."""
        outs = self._source_outputs(source)
        if outs is None:
            self._demand_source(source, None, "PIVOT")
            return
        named = _pivot_named(pivot, {n for n, _ in outs})
        for name, origin in outs:
            if named is None or name in named:
                self._demand(origin, None, "PIVOT")

    def _pivot_table_reads(self, pivot: exp.Pivot, table: exp.Table) -> set[str] | None:
        """What a PIVOT / UNPIVOT of a stored table reads of it (see :meth:`_pivot_reads`): the
        columns named, or None for all."""
        key = self._key(table)
        columns = self._columns_of(key)
        named = _pivot_named(pivot, set(columns))
        for c in columns:
            if named is None or c in named:
                self._record(key, c, None, "PIVOT")
        return named

    def _demand(self, origin: tuple[Any, ...], col: exp.Expr | None, where: str | None = None) -> None:
        kind = origin[0]
        if kind == "base":
            self._record(origin[1], origin[2], col, where)
        elif kind == "any":  # a UNION ALL's column: the column at its position in every branch
            for inner in origin[1]:
                self._demand(inner, col, where)
        elif kind == "via":
            outs = self._outputs_of(origin[1])
            if outs is None:
                return
            for name, inner in outs:
                if name == origin[2]:
                    self._demand(inner, col, where)

    def _demand_source(self, src: Any, col: exp.Expr | None, where: str) -> None:
        """Every column of one source is read (whole row, t.* in the outer query...)."""
        outs = self._source_outputs(src)
        if outs is None:
            if isinstance(src, (exp.Table, exp.Subquery)) and src.args.get("pivots"):
                return  # it returns what its pivot reads, recorded in run (_pivot_table_reads, _pivot_reads)
            if isinstance(src, exp.Table) and isinstance(src.this, exp.Identifier):
                tname = self._key(src)
                for c in self._columns_of(tname):
                    self._record(tname, c, col, where)
            elif isinstance(src, (Scope, _Renamed)):
                self._demand_scope_tables(src.scope if isinstance(src, _Renamed) else src, col, where)
            return
        for _, origin in outs:
            self._demand(origin, col, where)

    def _demand_scope_tables(self, scope: Scope, col: exp.Expr | None, where: str) -> None:
        """Fallback for opaque scopes: every column of every base table below them.

        Except below a PIVOT or UNPIVOT statement: what it returns comes only from what it reads,
        and that is read already (``run``: its source query as a scope of its own, a table source
        grouped by every other column, its clauses' columns by the sweep)."""
        top = scope.expression
        for table in top.find_all(exp.Table):
            if _under_pivot_statement(table, top):
                continue
            if isinstance(table.this, exp.Identifier):
                tname = self._key(table)
                for c in self._columns_of(tname):
                    self._record(tname, c, col, where)

    def _demand_all_sources(self, scope: Scope, col: exp.Expr | None, where: str) -> None:
        """Every column of every source, minus what a star's EXCLUDE / REPLACE removes."""
        modified = isinstance(col, exp.Star) and any(
            col.args.get(k) for k in ("except_", "replace", "rename")
        )
        for key, src in self._star_sources(scope):
            outs = self._source_outputs(src) if modified else None
            if outs is None or col is None:
                self._demand_source(src, col, where)
                continue
            for _, origin in _apply_star_modifiers(col, outs, key, True):
                self._demand(origin, col, where)

    def _star_sources(self, scope: Scope) -> list[tuple[str, Any]]:
        """The sources a ``*``, a selector or a whole-scope read of ``scope`` reaches.

        sqlglot lists every CTE of an enclosing WITH among a scope's sources, named in its FROM or
        not (``WITH b AS (SELECT * FROM customers), agg AS (SELECT region FROM b) SELECT * FROM
        agg`` lists ``b`` for the outer query): a CTE its FROM does not name gives it nothing.
        Every other source stays, also one sqlglot does not count as selected (over-reading).
        """
        sources = self._sources_of(scope)
        try:
            named = set(scope.selected_sources)
        except Exception:  # sqlglot cannot tell: every source counts
            return list(sources.items())
        named.update(t.alias_or_name for t in _tables_of(scope))
        return [(k, v) for k, v in sources.items() if k in named or not _is_cte_source(v)]

    def _record(self, table: str, column: str, col: exp.Expr | None, where: str | None) -> None:
        key = (table, column)
        if key not in self.refs.reads:
            # The clause is only worded for blocked columns: keep the node, name it later.
            self.refs.reads[key] = where if where else (col if col is not None else "SELECT")

    def _unknown(self, scope: Scope, name: str, qualifier: str, src: Any = None) -> None:
        # Candidates keep their base column: rules/blocked_columns.py drops blocked ones, also when a CTE
        # or subquery passes them on under a star.
        candidates: dict[str, tuple[str, str, str]] = {}
        sources = [src] if src is not None else list(self._sources_of(scope).values())
        for s in sources:
            for n, origin in self._source_outputs(s) or []:
                if not n or n.startswith(_ENGINE_NAMED):
                    continue  # an expression without AS: its name is the engine's
                base = self._base_of(origin)
                if n not in candidates or base[0]:
                    candidates[n] = (n, *base)
        self.refs.unknown_columns.append(UnknownColumn(name, sorted(candidates.values()), qualifier))

    def _base_of(self, origin: tuple[Any, ...], depth: int = 0) -> tuple[str, str]:
        """The base (table, column) an output origin reads, or empty strings."""
        if origin[0] == "base":
            return origin[1], origin[2]
        if origin[0] == "any" and depth < 50:
            for inner in origin[1]:
                if (base := self._base_of(inner, depth + 1))[0]:
                    return base
        if origin[0] == "via" and depth < 50:
            for n, inner in self._outputs_of(origin[1]) or []:
                if n == origin[2]:
                    return self._base_of(inner, depth + 1)
        return "", ""

    def _lambda_candidates(self, scopes: list[Scope]) -> None:
        """Lambda parameters (``x -> ...``): sqlglot turns every reference to one in the
        body, subqueries included, into a bare identifier. The parameter binds first, but
        a same-named column of the enclosing scopes is a candidate and counts as read."""
        lambdas = [n for n in self.inventory.lambdas if isinstance(n, exp.Lambda)]
        if not lambdas:
            return
        by_expr = {id(s.expression): s for s in scopes}
        for lam in lambdas:
            params = {e.name.lower() for e in lam.expressions}
            body = lam.this
            if body is None:
                continue
            for node in body.walk():
                if isinstance(node, exp.Dot) and isinstance(node.this, exp.Identifier):
                    head, tail = node.this, node.expression
                    if head.name.lower() not in params or not isinstance(tail, exp.Identifier):
                        continue
                    fake = exp.Column(this=tail.copy(), table=head.copy())
                elif isinstance(node, exp.Identifier) and node.name.lower() in params:
                    if isinstance(node.parent, exp.Dot) or node.arg_key not in _VALUE_KEYS:
                        continue
                    fake = exp.Column(this=node.copy())
                else:
                    continue
                scope = _scope_of(node, by_expr)
                if scope is None:
                    continue
                fake.parent = node.parent  # clause labels and inventory walks see its place
                self._quiet += 1
                try:
                    self._bind_column(scope, fake, fake.name.lower(), fake.table.lower())
                finally:
                    self._quiet -= 1

    def _sweep_unplaced(self) -> None:
        """Columns no scope walked over count against every table the query names."""
        names = {self._key(t) for t in self.refs.tables}
        for col in self.inventory.columns:
            if id(col) in self._seen_columns or col.arg_key in ("except_", "rename"):
                continue
            cname = col.name.lower()
            for tname in names:
                if cname in self._columns_of(tname) or cname == "*":
                    for c in self._columns_of(tname) if cname == "*" else [cname]:
                        self._record(tname, c, col, None)


def resolve(
    root: exp.Expr, snapshot: SchemaSnapshot, inventory: Inventory | None, traits: EngineTraits
) -> References:
    """Resolve tables and columns of one statement against the full snapshot, with the binding
    rules of the engine ``traits`` describe."""
    return Resolver(root, snapshot, inventory, traits).run()


# -- helpers ----------------------------------------------------------------------------


def _add_pivot_sources(scope: Scope) -> list[exp.Pivot]:
    """Make a PIVOT statement in FROM (``FROM (PIVOT t ON c IN (...) ...) p``) a source of the scope.

    sqlglot cannot build a scope for it and leaves ``p`` out of the sources, so ``p.region`` would
    name nothing. It becomes an opaque source: names may come from it (its output columns depend
    on the data's IN values), and unqualified names are still read from every other source that
    has them. Its own reads are not lost: its source query was resolved as a scope of its own
    (``run``), and its clauses' columns by the sweep. Returns the pivots added.
    """
    added: list[exp.Pivot] = []
    for pivot in _pivot_statements(scope):
        node = pivot.parent
        assert isinstance(node, exp.Subquery)  # _pivot_statements: each is a Subquery's body
        # No alias: a key only a quoted name could spell (which DuckDB then binds to nothing).
        sources: dict[str, Any] = scope.sources  # sqlglot types it Table | Scope; any node serves
        sources.setdefault(node.alias or "(pivot)", node)
        added.append(pivot)
    return added


def _pivot_statements(scope: Scope) -> list[exp.Pivot]:
    """The PIVOT / UNPIVOT statements in the scope's FROM (``FROM (PIVOT t ON ...) p``)."""
    expr = scope.expression
    if not isinstance(expr, exp.Select):
        return []
    from_ = expr.args.get("from_")
    nodes = [from_.this] if isinstance(from_, exp.From) else []
    nodes += [j.this for j in expr.args.get("joins") or []]
    return [node.this for node in nodes if _is_pivot_statement(node)]


# Arguments of a PIVOT that name no columns of its source.
_PIVOT_NAMING = frozenset({"this", "alias", "columns"})


def _is_cte_source(src: Any) -> bool:
    """A CTE as a source (its scope, or read under a column list)."""
    scope = src.scope if isinstance(src, _Renamed) else src
    return isinstance(scope, Scope) and scope.scope_type == ScopeType.CTE


def _pivoted_queries(scope: Scope) -> list[exp.Subquery]:
    """The scope's queries in FROM that carry a PIVOT / UNPIVOT (``FROM (SELECT ...) s PIVOT (...)``)."""
    return [d for d in scope.derived_tables if isinstance(d, exp.Subquery) and d.args.get("pivots")]


def _pivot_named(pivot: exp.Pivot, columns: set[str]) -> set[str] | None:
    """The columns of its source a PIVOT reads, or None for all of them.

    Without GROUP BY a PIVOT groups by every column it does not pivot, and an UNPIVOT passes them
    on: all are read. With GROUP BY it reads what its ON, USING and GROUP BY name, when they name
    plain columns of the source; a star outside ``count(*)``, ``COLUMNS(...)``, a positional
    column, a lambda, a field access or a name that is no column of the source (a whole-row
    value) may reach any column, and then all count.
    """
    if pivot.args.get("group") is None or pivot.args.get("unpivot"):
        return None
    named: set[str] = set()
    for key, value in pivot.args.items():
        if key in _PIVOT_NAMING:
            continue
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, exp.Expr):
                continue
            for node in item.walk():
                if isinstance(node, (exp.Columns, exp.PositionalColumn, exp.Lambda, exp.Dot)):
                    return None
                if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
                    return None
                if isinstance(node, exp.Column):
                    name = node.name.lower()
                    if isinstance(node.this, exp.Star) or name not in columns:
                        return None
                    named.add(name)
    return named


def _pivoted_cte(scope: Scope, pivot: exp.Pivot) -> Scope | None:
    """The CTE a PIVOT statement in ``scope``'s FROM names as its source (``(PIVOT c ON ...) p``).

    DuckDB binds that name to a CTE or a table, never to an alias beside it: where an alias of
    the same name hides the CTE from sqlglot's sources, none is found and the name stays an
    unknown table (refused)."""
    source = pivot.this
    plain = isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier)
    if not plain or source.args.get("db"):
        return None
    name = source.name.lower()
    for level in _chain(scope):
        for key, src in level.sources.items():
            if key.lower() == name:
                return src if isinstance(src, Scope) and src.scope_type == ScopeType.CTE else None
    return None


def _chain(scope: Scope) -> Iterator[Scope]:
    s: Scope | None = scope
    while s is not None:
        yield s
        s = s.parent


def _comprehension_variable(col: exp.Column, name: str) -> bool:
    """``x`` in DuckDB's ``[x * 2 FOR x IN list IF x > 1]``: only the body and the condition
    see the variable; the iterator (which may hold whole subqueries) is resolved as usual."""
    child: exp.Expr = col
    node: exp.Expr | None = col.parent
    while node is not None:
        if isinstance(node, exp.Comprehension) and child.arg_key in ("this", "condition"):
            var = node.args.get("expression")
            if var is not None and var.name.lower() == name:
                return True
        child, node = node, node.parent
    return False


def _renamed(
    outs: list[tuple[str, tuple[Any, ...]]], names: list[str], uncertain: bool
) -> list[tuple[str, tuple[Any, ...]]]:
    """``outs`` under a column list: the names rename the columns in order, the rest keep theirs.
    ``uncertain``: the order is the engine's (:func:`_merges_star_columns`), so each listed name
    may be any of the columns, and each column may keep its own name."""
    if uncertain:
        return [(name, origin) for name in names for _, origin in outs] + outs
    return [(names[i] if i < len(names) else n, origin) for i, (n, origin) in enumerate(outs)]


def _merges_star_columns(expr: exp.Expr) -> bool:
    """Whether a ``*`` of this query stands over a USING or NATURAL join: the engine merges the
    shared columns into one (PostgreSQL puts them first, DuckDB keeps the left side's place), so
    which column stands at which position is not the order of the sources' columns."""
    if not isinstance(expr, exp.Select) or not any(_is_any_star(p) for p in expr.expressions):
        return False
    return any(j.args.get("using") or j.args.get("method") for j in expr.args.get("joins") or [])


class _Renamed:
    """A CTE read under a column list (``FROM c AS z(a, b)``): c's scope, z's names for its
    columns in order (the rest keep c's own names). Each reference has its own; c's scope is
    shared, so the names cannot live on it."""

    __slots__ = ("names", "scope")

    def __init__(self, scope: Scope, names: list[str]) -> None:
        self.scope = scope
        self.names = names


def _sid(src: Any) -> int:
    """The identity a source is compared by against a scope chain (a renamed CTE: its scope's)."""
    return id(src.scope) if isinstance(src, _Renamed) else id(src)


def _own_scopes(scope: Scope) -> set[int]:
    """The scope and the scopes enclosing it: sources that a name inside cannot bind to
    (``(SELECT * FROM (SELECT ssn) t)``: ``ssn`` is not ``t``'s own output, it is outer)."""
    return {id(s) for s in _chain(scope)}


def _named_columns(root: exp.Expr, inventory: Inventory) -> frozenset[str]:
    names = {c.name.lower() for c in inventory.columns}
    names.update(c.table.lower() for c in inventory.columns if c.table)
    for join in inventory.join_nodes:
        names.update(i.name.lower() for i in join.args.get("using") or [])
    for lam in inventory.lambdas:  # parameters stand for columns in lambda bodies
        names.update(i.name.lower() for i in lam.find_all(exp.Identifier))
    return frozenset(names)


def _case_matters(ident: Any, level: Scope, key: str) -> bool:
    """Whether letter case could make Postgres bind a qualifier to an outer source."""
    if isinstance(ident, exp.Identifier) and ident.quoted and ident.name != ident.name.lower():
        return True
    return any(k.lower() == key and k != k.lower() for k in level.sources)


def _quoted_mixed_case(col: exp.Column) -> bool:
    ident = col.this
    return isinstance(ident, exp.Identifier) and ident.quoted and ident.name != ident.name.lower()


# Argument slots where an identifier stands for a value (a replaced lambda parameter).
_VALUE_KEYS = frozenset({"this", "expression", "expressions", "condition", "true", "false", "default"})


def _scope_of(node: exp.Expr, by_expr: dict[int, Scope]) -> Scope | None:
    parent: exp.Expr | None = node.parent
    while parent is not None:
        scope = by_expr.get(id(parent))
        if scope is not None:
            return scope
        parent = parent.parent
    return None


def _output_name(proj: exp.Expr) -> str:
    """A projection's output name: its alias or column's name, else marked as the engine's."""
    if isinstance(proj, (exp.Alias, exp.Column, exp.Dot)):
        return proj.alias_or_name.lower()
    return _ENGINE_NAMED + proj.alias_or_name.lower()


def _function_outputs(fn: exp.Expr, src: exp.Expr) -> list[tuple[str, tuple[Any, ...]]] | None:
    """Columns of a table function in FROM: an alias column list names them exactly;
    otherwise the catalog's names (and the function's or the alias's own name) only place
    a name, and a function the catalog does not know has unknown columns (None)."""
    explicit = [n.lower() for n in src.alias_column_names] if hasattr(src, "alias_column_names") else []
    offset = fn.args.get("offset") if isinstance(fn, exp.Unnest) else None
    if isinstance(offset, exp.Identifier):
        explicit.append(offset.name.lower())  # UNNEST ... WITH ORDINALITY AS x(v, n)
    outs: list[tuple[str, tuple[Any, ...]]] = [(n, _EXPLICIT) for n in explicit]
    names = _function_names(fn)
    known = [TABLE_FUNCTION_COLUMNS[n] for n in names if n in TABLE_FUNCTION_COLUMNS]
    if not known or any(isinstance(a, (exp.Kwarg, exp.PropertyEQ)) for a in fn.iter_expressions()):
        return outs or None
    guesses: list[str] = []
    for cols in known:
        guesses.extend(cols)
    if not any(known):
        guesses.extend(n for n in names if n in TABLE_FUNCTION_COLUMNS)
        alias = src.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.name:
            guesses.append(alias.name.lower())
    if src.args.get("ordinality") or offset is True:
        guesses.append("ordinality")
    outs.extend((n, _MAYBE) for n in dict.fromkeys(guesses))
    return outs


def _function_names(fn: exp.Expr) -> list[str]:
    if isinstance(fn, exp.Anonymous):
        return [str(fn.name).lower()]
    sql_names: Any = getattr(type(fn), "sql_names", list)
    names = [n.lower() for n in sql_names()] + [type(fn).key]
    if isinstance(fn, exp.GenerateSeries) or type(fn).__name__ == "ExplodingGenerateSeries":
        names += ["generate_series", "range"]
    return list(dict.fromkeys(names))


def _depth(scope: Scope) -> int:
    d = 0
    s = scope.parent
    while s is not None:
        d += 1
        s = s.parent
    return d


def _select_aliases(scope: Scope) -> set[str]:
    expr = scope.expression
    if isinstance(expr, exp.Select):
        return {p.alias.lower() for p in expr.expressions if isinstance(p, exp.Alias)}
    if isinstance(expr, exp.SetOperation):
        return {n.lower() for n in expr.named_selects}
    return set()


def has_ordinals(select: exp.Select) -> bool:
    """Whether ORDER BY, GROUP BY or DISTINCT ON name a selected column by its position
    (``ORDER BY 4``): behind a ``*`` that may be any column of its sources."""
    order = select.args.get("order")
    group = select.args.get("group")
    distinct = select.args.get("distinct")
    on = distinct.args.get("on") if isinstance(distinct, exp.Distinct) else None
    named = [
        *(o.this for o in (order.expressions if isinstance(order, exp.Order) else [])),
        *(on.expressions if isinstance(on, exp.Tuple) else [on] if on is not None else []),
    ]
    items = list(group.expressions) if isinstance(group, exp.Group) else []
    while items:
        # PostgreSQL reads positions inside ROLLUP, CUBE and GROUPING SETS too.
        item = items.pop()
        if isinstance(item, (exp.Rollup, exp.Cube, exp.GroupingSets, exp.Tuple)):
            items.extend(item.expressions)
        else:
            named.append(item)
    # `ORDER BY (4)` is position 4 too: the engines drop the parentheses.
    return any(
        isinstance(e := n.unnest() if isinstance(n, exp.Paren) else n, exp.Literal) and not e.is_string
        for n in named
    )


def _orders_by_all(select: exp.Select) -> bool:
    """DuckDB's ORDER BY ALL sorts by every selected column."""
    order = select.args.get("order")
    return order is not None and any(
        isinstance(o.this, exp.Var) and o.this.name.upper() == "ALL" for o in order.expressions
    )


def _is_projection(node: exp.Expr, scope_expr: exp.Expr) -> bool:
    return node.parent is scope_expr and node.arg_key == "expressions"


def _is_any_star(node: object) -> bool:
    """``*`` or ``t.*``, with or without EXCLUDE / REPLACE / RENAME."""
    return isinstance(node, exp.Star) or (isinstance(node, exp.Expr) and _is_table_star(node))


def _is_table_star(proj: exp.Expr) -> bool:
    return isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star)


def _is_pivot_statement(node: Any) -> bool:
    """A PIVOT or UNPIVOT statement in FROM (``FROM (PIVOT t ON ...) p``)."""
    return isinstance(node, exp.Subquery) and isinstance(node.this, exp.Pivot)


def _under_pivot_statement(node: exp.Expr, top: exp.Expr) -> bool:
    """Whether ``node`` lies in a PIVOT or UNPIVOT statement below ``top``."""
    parent = node.parent
    while parent is not None and parent is not top:
        if isinstance(parent, exp.Pivot) and isinstance(parent.parent, exp.Subquery):
            return True
        parent = parent.parent
    return False


def _tables_of(scope: Scope) -> list[exp.Table]:
    """The scope's table references. sqlglot scopes ``(cv c JOIN orders o ON ...) x`` as the table
    ``cv c`` carrying the joins, and leaves that first table out of ``scope.tables``: it is added
    here, so a CTE read there is a CTE (it was an unknown table)."""
    expr = scope.expression
    return [expr, *scope.tables] if _is_join(expr) else list(scope.tables)


def _is_join(expr: exp.Expr) -> TypeGuard[exp.Table]:
    """A parenthesized join in FROM (``(a JOIN b ON ...) AS x``), which sqlglot scopes as a table."""
    return isinstance(expr, exp.Table) and bool(expr.args.get("joins"))


def _apply_star_modifiers(
    star: exp.Expr, outs: list[tuple[str, tuple[Any, ...]]], key: str, eager: bool
) -> list[tuple[str, tuple[Any, ...]]]:
    """EXCLUDE / REPLACE / RENAME applied to the columns of the source named ``key`` under a star.

    A qualified name (``EXCLUDE (c.ssn)``, ``RENAME (c.ssn AS x)``) applies only to the source it
    names: DuckDB still returns ``d.ssn`` under ``* EXCLUDE (c.ssn)`` over ``c`` and ``d``.
    """
    key = key.lower()

    def mine(col: exp.Expr) -> bool:
        return isinstance(col, exp.Column) and col.table.lower() in ("", key)

    excluded = {c.name.lower() for c in star.args.get("except_") or [] if mine(c)}
    replaced = {r.alias.lower() for r in star.args.get("replace") or [] if isinstance(r, exp.Alias)}
    renamed = {
        a.this.name.lower(): a.alias.lower()
        for a in star.args.get("rename") or []
        if isinstance(a, exp.Alias) and mine(a.this)
    }
    result = []
    for name, origin in outs:
        if name in excluded:
            continue
        if name in replaced:
            result.append((name, _EXPLICIT))
            continue
        result.append((renamed.get(name, name), origin))
    return result


def _union_all_chain(node: exp.Expr) -> bool:
    """Whether ``node`` is a chain of UNION ALL, parenthesized or not, without ORDER BY, BY NAME
    or CORRESPONDING on any of its set operations: its branches' columns meet only by position."""
    pending = [node]
    while pending:
        node = pending.pop()
        if isinstance(node, exp.Subquery):
            if any(v for k, v in node.args.items() if k != "this"):
                return False
            pending.append(node.this)
        elif isinstance(node, exp.SetOperation):
            if not isinstance(node, exp.Union) or node.args.get("distinct") is not False:
                return False
            if any(node.args.get(k) for k in ("by_name", "side", "kind", "on", "order")):
                return False
            pending.extend([node.this, node.expression])
    return True


def _recursive_cte(scope: Scope) -> bool:
    """Whether the scope is the body of a CTE under WITH RECURSIVE."""
    cte = scope.expression.parent
    with_ = cte.parent if isinstance(cte, exp.CTE) else None
    return isinstance(with_, exp.With) and bool(with_.args.get("recursive"))


def _cte_of(expr: exp.Expr) -> exp.CTE | None:
    """The CTE whose body (or first branch) ``expr`` is."""
    node = expr
    while isinstance(node.parent, (exp.SetOperation, exp.Subquery)) and node.arg_key == "this":
        node = node.parent
    return node.parent if isinstance(node.parent, exp.CTE) else None


def _search_columns(expr: exp.Expr) -> list[str]:
    """The columns a recursive CTE's SEARCH or CYCLE clause adds to it (PostgreSQL), lower-cased.

    ``SEARCH DEPTH FIRST BY n SET ord`` adds ``ord``; ``CYCLE n SET is_cycle USING path`` adds
    ``is_cycle`` and ``path``. Their values are made of the CTE's own columns, whose reads were
    counted in its body. sqlglot keeps the clauses on the WITH, for its last CTE.
    """
    cte = _cte_of(expr)
    with_ = cte.parent if cte is not None else None
    if not isinstance(with_, exp.With) or with_.expressions[-1] is not cte:
        return []
    added: list[str] = []
    for clause in (with_.args.get("search"), with_.args.get("cycle")):
        if isinstance(clause, exp.RecursiveWithSearch):
            for arg in ("expression", "using"):
                name = clause.args.get(arg)
                if isinstance(name, exp.Identifier):
                    added.append(name.name.lower())
    return added


def _cte_column_list(expr: exp.Expr) -> list[str]:
    """The column list of the CTE whose first branch ``expr`` is, else nothing.

    sqlglot resolves a recursive CTE's reference to itself as the anchor branch's scope,
    which carries no column list: in ``WITH RECURSIVE chain(id, depth) AS (SELECT id, 1 ...
    UNION ALL SELECT ... FROM chain ch)``, ``ch.depth`` names the anchor's second column.
    """
    cte = _cte_of(expr)
    return list(cte.alias_column_names) if cte is not None else []


def clause_label(where: str | exp.Expr) -> str:
    """Where a read happened, in words: a stored label, or the clause holding the node."""
    return where if isinstance(where, str) else _clause_of(where)


def _clause_of(node: exp.Expr) -> str:
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.Order) and not isinstance(parent.parent, _ORDER_OWNERS):
            # An aggregate's own ORDER BY (string_agg(x, ', ' ORDER BY y), WITHIN GROUP):
            # the read happens wherever the aggregate is.
            child, parent = parent, parent.parent
            continue
        for cls, label in _CLAUSES:
            if isinstance(parent, cls):
                return label
        if isinstance(parent, exp.Update) and child.arg_key == "expressions":
            return "SET"
        if isinstance(parent, (exp.Select, exp.SetOperation)):
            return "SELECT"
        child, parent = parent, parent.parent
    return "SELECT"
