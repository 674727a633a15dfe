"""Plain-language explanations: what is read, joined, filtered, grouped, ordered, limited.

Written for the business user who approves the query, so aliases are replaced by table
names, comparisons are put into words, and aggregates are named ("the total of
orders.total"). Anything without a simple wording falls back to short SQL.
"""

from __future__ import annotations

from sqlglot import exp

from .parse import generate
from .rewrite import Limited

_MAX_ITEMS = 6
_MAX_SNIPPET = 80

_COMPARE: dict[type, str] = {
    exp.EQ: "is",
    exp.NEQ: "is not",
    exp.GT: "is greater than",
    exp.GTE: "is at least",
    exp.LT: "is less than",
    exp.LTE: "is at most",
}
_AGG_WORDS: dict[type, str] = {
    exp.Sum: "the total of {}",
    exp.Avg: "the average {}",
    exp.Min: "the smallest {}",
    exp.Max: "the largest {}",
}


class _Words:
    def __init__(self, dialect: str, aliases: dict[str, str]):
        self.dialect = dialect
        self.aliases = aliases

    def sql(self, node: exp.Expr) -> str:
        try:
            text = generate(node, self.dialect, comments=False)
        except Exception:
            text = type(node).__name__
        return text if len(text) <= _MAX_SNIPPET else text[: _MAX_SNIPPET - 3] + "..."

    def __call__(self, node: exp.Expr | None) -> str:
        if node is None:
            return ""
        if isinstance(node, exp.Literal):
            # the common case, without building a SQL generator
            text = str(node.this)
            return "'" + text.replace("'", "''") + "'" if node.is_string else text
        if isinstance(node, exp.Paren):
            return self(node.this)
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                return f"every column of {self.aliases.get(node.table.lower(), node.table)}"
            table = node.table
            return f"{self.aliases.get(table.lower(), table)}.{node.name}" if table else node.name
        if isinstance(node, exp.Alias):
            return self(node.this)
        if isinstance(node, exp.Filter) and isinstance(node.expression, exp.Where):
            # count(*) FILTER (WHERE x > 1): the condition is half the meaning
            return f"{self(node.this)} where {self(node.expression.this)}"
        if isinstance(node, exp.Tuple):
            return ", ".join(self(e) for e in node.expressions)
        word = _COMPARE.get(type(node))
        if word is not None:
            return f"{self(node.this)} {word} {self(node.expression)}"
        if isinstance(node, exp.And):
            return " and ".join(self(p) for p in node.flatten())
        if isinstance(node, exp.Or):
            return "either " + " or ".join(self(p) for p in node.flatten())
        if isinstance(node, exp.Not):
            inner = node.this
            if (
                isinstance(inner, exp.Is)
                and isinstance(inner.expression, exp.Null)
                and not inner.args.get("negate")
            ):
                return f"{self(inner.this)} has a value"
            if isinstance(inner, exp.In):
                if inner.args.get("query") is not None:
                    return (
                        f"{self(inner.this)} does not appear in a list computed from {self._tables_of(inner)}"
                    )
                return f"{self(inner.this)} is not one of {self._list(inner)}"
            if isinstance(inner, exp.Exists):
                return f"no matching row exists in {self._tables_of(inner)}"
            return f"not ({self(inner)})"
        # sqlglot marks `IS NOT NULL` (PostgreSQL) and `NOT LIKE` with a negate flag, not a NOT node:
        # read without it, the sentence said the opposite of the query.
        negated = bool(node.args.get("negate"))
        if isinstance(node, exp.Is):
            if isinstance(node.expression, exp.Null):
                return f"{self(node.this)} {'has a value' if negated else 'is empty'}"
            return self.sql(node)
        if isinstance(node, exp.In):
            if node.args.get("query") is not None:
                return f"{self(node.this)} appears in a list computed from {self._tables_of(node)}"
            return f"{self(node.this)} is one of {self._list(node)}"
        if isinstance(node, exp.Between):
            low, high = self(node.args.get("low")), self(node.args.get("high"))
            return f"{self(node.this)} is between {low} and {high}"
        if isinstance(node, (exp.Like, exp.ILike)):
            verb = "does not match" if negated else "matches"
            return f"{self(node.this)} {verb} the pattern {self(node.expression)}"
        if isinstance(node, exp.Exists):
            return f"a matching row exists in {self._tables_of(node)}"
        if isinstance(node, exp.Count):
            arg = node.this
            if arg is None or isinstance(arg, exp.Star):
                return "the number of rows"
            if isinstance(arg, exp.Distinct):
                return f"the number of distinct {', '.join(self(e) for e in arg.expressions)}"
            return f"the number of {self(arg)} values"
        pattern = _AGG_WORDS.get(type(node))
        if pattern is not None:
            return pattern.format(self(node.this))
        return self.sql(node)

    def _list(self, node: exp.In) -> str:
        items = node.expressions
        shown = ", ".join(self(e) for e in items[:_MAX_ITEMS])
        return shown + (f" (and {len(items) - _MAX_ITEMS} more)" if len(items) > _MAX_ITEMS else "")

    def _tables_of(self, node: exp.Expr) -> str:
        names = sorted({t.name for t in node.find_all(exp.Table) if isinstance(t.this, exp.Identifier)})
        return ", ".join(names) or "a subquery"


_SET_WORDS = {
    exp.Union: "Combines",
    exp.Intersect: "Keeps rows common to",
    exp.Except: "Takes rows of the first query that are not in the others, from",
}


def _call_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    names = type(node).sql_names() if isinstance(node, exp.Func) else []
    return names[0].lower() if names else type(node).__name__.lower()


def _aliases(select: exp.Select) -> dict[str, str]:
    """alias -> table name, for tables read once; a self-join keeps its aliases apart."""
    seen: dict[str, list[str]] = {}
    from_ = select.args.get("from_")
    sources = [from_.this] if from_ is not None else []
    sources += [j.this for j in select.args.get("joins") or []]
    for table in sources:
        if isinstance(table, exp.Table) and isinstance(table.this, exp.Identifier) and table.alias:
            seen.setdefault(table.name, []).append(table.alias.lower())
    return {aliases[0]: name for name, aliases in seen.items() if len(aliases) == 1}


def _source_name(node: exp.Expr, aliases: dict[str, str] | None = None) -> str:
    if isinstance(node, exp.Table):
        if isinstance(node.this, exp.Identifier):
            alias = node.alias.lower()
            if alias and aliases is not None and alias not in aliases:
                return f"{node.name} (as {node.alias})"
            return node.name
        return f"the table function {_call_name(node.this)}" if node.this is not None else "a table function"
    if isinstance(node, (exp.Subquery, exp.Values)) and isinstance(node.unnest(), exp.Values):
        rows = len(node.unnest().expressions)
        return f"{rows} literal row{'s' if rows != 1 else ''} (VALUES)"
    if isinstance(node, exp.Subquery):
        tables = sorted({t.name for t in node.find_all(exp.Table) if isinstance(t.this, exp.Identifier)})
        if isinstance(node.this, exp.Table) and node.this.args.get("joins"):  # (a JOIN b ON ...) AS x
            what = f"the join of {', '.join(tables)}"
        elif isinstance(node.this, exp.Pivot):
            what = f"a {'unpivot' if node.this.args.get('unpivot') else 'pivot'} of {', '.join(tables)}"
        else:
            what = f"a subquery over {', '.join(tables)}" if tables else "a subquery"
        return f"{node.alias} ({what})" if node.alias else what
    if isinstance(node, exp.Lateral):
        return "a per-row (LATERAL) subquery"
    if isinstance(node, exp.Unnest):
        return "the elements of a list"
    return "a derived source"


def _positional(node: exp.Expr, projections: list[exp.Expr]) -> exp.Expr:
    """GROUP BY 1 / ORDER BY 2 name the select list's first or second column."""
    if isinstance(node, exp.Literal) and not node.is_string and str(node.this).isdigit():
        i = int(str(node.this)) - 1
        if any(p.is_star for p in projections[: i + 1]):
            # A star before it (or it) stands for several columns: say the position.
            return exp.Var(this=f"output column {i + 1}")
        if 0 <= i < len(projections):
            p = projections[i]
            return p.this if isinstance(p, exp.Alias) and not isinstance(p.this, exp.AggFunc) else p
    return node


def _output_name(w: _Words, proj: exp.Expr) -> str:
    if isinstance(proj, exp.Alias):
        return proj.alias
    if isinstance(proj, exp.Column):
        return w(proj)
    if isinstance(proj, exp.Star):
        return "every column of the sources"
    window = proj.find(exp.Window)
    return w(proj) if window is None else f"a computed column ({_call_name(window.this)})"


def _join_condition(w: _Words, on: exp.Expr) -> str:
    """'matching orders.customer_id to customers.id' for key equalities, else 'where ...'."""
    # A list: flatten() is a generator, and the conditions are read twice (a self-join's
    # `a.id < b.id` went unsaid once the key equalities had consumed it).
    parts = list(on.flatten()) if isinstance(on, exp.And) else [on]
    keys = [
        p
        for p in parts
        if isinstance(p, exp.EQ) and isinstance(p.this, exp.Column) and isinstance(p.expression, exp.Column)
    ]
    rest = [p for p in parts if p not in keys]
    text = ""
    if keys:
        text = "matching " + " and ".join(f"{w(k.this)} to {w(k.expression)}" for k in keys)
    if rest:
        text += ("where " if not text else ", where ") + " and ".join(w(r) for r in rest)
    return text


def _whole_aggregate(agg: exp.Expr) -> exp.Expr:
    """The aggregate with what qualifies it: ``percentile_cont(0.5) WITHIN GROUP (ORDER BY x)`` names
    its column only in the WITHIN GROUP, and a FILTER is half the meaning."""
    while isinstance(agg.parent, (exp.WithinGroup, exp.Filter)):
        agg = agg.parent
    return agg


def _distinct_words(w: _Words, nodes: list[exp.Expr]) -> list[str]:
    """Each description once, in order (two ``count(*)`` said "the number of rows" twice)."""
    return list(dict.fromkeys(w(n) for n in nodes))


def _derived_steps(select: exp.Select, dialect: str, depth: int) -> list[str]:
    """What each subquery in FROM or a join does, like a CTE's step: a filter or a grouping in a
    derived table is as much the query as one in the outer SELECT."""
    if depth >= 2:
        return []
    from_ = select.args.get("from_")
    sources = ([from_.this] if from_ is not None else []) + [j.this for j in select.args.get("joins") or []]
    out = []
    for src in sources:
        inner = src.this if isinstance(src, (exp.Subquery, exp.Lateral)) else None
        if isinstance(inner, exp.Subquery):  # LATERAL (SELECT ...)
            inner = inner.this
        if isinstance(inner, exp.Select):
            body = describe_select(inner, dialect, depth + 1)
            if body:
                summary = " ".join(body)
                name = f"The subquery {src.alias}" if src.alias else "A subquery"
                out.append(f"{name}: {summary[0].lower()}{summary[1:]}")
    return out


def _computed_by_subquery(w: _Words, select: exp.Select) -> list[str]:
    """'Computes cust_avg with a subquery over orders.' for each select-list value a scalar subquery makes."""
    out = []
    for p in select.expressions:
        sub = p.find(exp.Subquery)
        if sub is not None and sub.find_ancestor(exp.Select) is select:
            out.append(f"Computes {_output_name(w, p)} with a subquery over {w._tables_of(sub)}.")
    return out


def describe_select(select: exp.Select, dialect: str, depth: int = 0) -> list[str]:
    """Sentences for one SELECT: sources (and what a derived one does), filters, grouping, windows, order."""
    w = _Words(dialect, _aliases(select))
    out: list[str] = _derived_steps(select, dialect, depth)
    from_ = select.args.get("from_")
    if from_ is not None:
        sentence = f"{'Then reads' if out else 'Reads'} {_source_name(from_.this, w.aliases)}"
        for join in select.args.get("joins") or []:
            kind = " ".join(p for p in (join.side, join.kind) if p).lower()
            verb = {
                "left": "keeping rows without a match in",
                "right": "keeping every row of",
                "full": "keeping unmatched rows on both sides with",
                "cross": "combined with every row of",
                "semi": "keeping rows that have a match in",
                "anti": "keeping rows that have no match in",
            }.get(join.side.lower() or join.kind.lower(), "joined with")
            if kind in ("left outer", "left"):
                verb = "left-joined with"
            part = f", {verb} {_source_name(join.this, w.aliases)}"
            on = join.args.get("on")
            using = join.args.get("using")
            if on is not None:
                part += f" {_join_condition(w, on)}"
            elif using:
                part += f" on matching {', '.join(u.name for u in using)}"
            elif not kind or kind == "cross":
                part += " (every combination)"
            sentence += part
        out.append(sentence + ".")
    where = select.args.get("where")
    if where is not None:
        out.append(f"Keeps only rows where {w(where.this)}.")
    group = select.args.get("group")
    projections = select.expressions
    # This SELECT's own aggregates: not a window's, not a scalar subquery's (`(SELECT avg(total) ...)`
    # in the select list read as if the whole query were aggregated).
    aggs = [
        _whole_aggregate(a)
        for p in select.expressions
        for a in p.find_all(exp.AggFunc)
        if not a.find_ancestor(exp.Window) and a.find_ancestor(exp.Select) is select
    ]
    if group is not None:
        keys = [w(_positional(e, projections)) for e in group.expressions] or ["every selected column"]
        if group.args.get("all"):
            keys = ["every non-aggregated column"]
        for kind in ("rollup", "cube", "grouping_sets"):
            if group.args.get(kind):
                keys.append(f"with {kind.replace('_', ' ')} subtotals")
        sentence = f"Groups rows by {', '.join(keys[:_MAX_ITEMS])}"
        if aggs:
            sentence += f" and computes {', '.join(_distinct_words(w, aggs)[:_MAX_ITEMS])}"
        out.append(sentence + ".")
    elif aggs:
        out.append(f"Computes {', '.join(_distinct_words(w, aggs)[:_MAX_ITEMS])} over all matching rows.")
    having = select.args.get("having")
    if having is not None:
        out.append(f"Keeps only groups where {w(having.this)}.")
    out.extend(_computed_by_subquery(w, select))
    windows = [
        win
        for p in select.expressions
        for win in p.find_all(exp.Window)
        if win.find_ancestor(exp.Select) is select
    ]
    if windows:
        names = sorted({_call_name(win.this) for win in windows})
        shown = ", ".join(names[:_MAX_ITEMS])
        out.append(f"Computes per-row values over related rows (window functions: {shown}).")
    qualify = select.args.get("qualify")
    if qualify is not None:
        out.append(f"Then keeps only rows where {w(qualify.this)}.")
    distinct = select.args.get("distinct")
    if distinct is not None:
        on = distinct.args.get("on")
        out.append(f"Keeps one row per {w(on)}." if on is not None else "Removes duplicate rows.")
    order = select.args.get("order")
    if order is not None:
        keys = []
        for o in order.expressions:
            # DuckDB's ORDER BY ALL: every column of the select list, left to right
            every = isinstance(o.this, exp.Var) and o.this.name.upper() == "ALL"
            text = "every column" if every else w(_positional(o.this, projections))
            keys.append(f"{text} {'descending' if o.args.get('desc') else 'ascending'}")
        out.append(f"Sorts by {', '.join(keys[:_MAX_ITEMS])}.")
    limit = select.args.get("limit")
    if depth > 0 and isinstance(limit, exp.Limit) and limit.expression is not None:
        # a step's or subquery's own LIMIT (the statement's is said with the row cap)
        out.append(f"Keeps the first {w(limit.expression)} rows.")
    cols = [_output_name(w, p) for p in select.expressions]
    if cols and not any(p.is_star for p in select.expressions):
        shown = ", ".join(cols[:8]) + (f" and {len(cols) - 8} more" if len(cols) > 8 else "")
        out.append(f"Returns {len(cols)} column{'s' if len(cols) > 1 else ''}: {shown}.")
    elif cols and not all(isinstance(p, exp.Star) for p in select.expressions):
        # `o.*` or `id, *`: a count of select items is not a count of columns
        shown = ", ".join(cols[:8]) + (f" and {len(cols) - 8} more" if len(cols) > 8 else "")
        out.append(f"Returns {shown}.")
    elif cols:
        out.append("Returns every column of the sources.")
    return out


def _describe_write(node: exp.Expr, dialect: str) -> list[str]:
    target = node.this.this if isinstance(node.this, exp.Schema) else node.this
    table = target.name if isinstance(target, exp.Table) else "a table"
    w = _Words(
        dialect, {target.alias.lower(): table} if isinstance(target, exp.Table) and target.alias else {}
    )
    out = []
    if isinstance(node, exp.Insert):
        cols = [c.name for c in node.this.expressions] if isinstance(node.this, exp.Schema) else []
        source = node.expression
        what = "rows computed by a query" if isinstance(source, exp.Query) else "the listed rows"
        out.append(f"Inserts {what} into {table}" + (f" (columns {', '.join(cols)})." if cols else "."))
    elif isinstance(node, exp.Update):
        sets = [w(e.this) for e in node.expressions if isinstance(e, exp.EQ)]
        out.append(f"Changes {', '.join(sets[:_MAX_ITEMS])} in {table}.")
    else:
        out.append(f"Deletes rows from {table}.")
    where = node.args.get("where")
    if isinstance(node, (exp.Update, exp.Delete)):
        out.append(f"Only rows where {w(where.this)}." if where is not None else "Every row of the table.")
    if node.args.get("returning") is not None:
        out.append("Returns the changed rows.")
    return out


def _wrapped_pivot(node: exp.Expr) -> exp.Pivot | None:
    """The PIVOT statement of ``SELECT * FROM (PIVOT ...)`` without a WHERE (the analyzer's wrapping
    of a PIVOT statement, for its LIMIT or as a CTE's body), else None."""
    if not isinstance(node, exp.Select) or any(
        node.args.get(k) for k in ("where", "joins", "group", "having")
    ):
        return None
    if len(node.expressions) != 1 or not isinstance(node.expressions[0], exp.Star):
        return None
    from_ = node.args.get("from_")
    inner = from_.this.this if isinstance(from_, exp.From) else None
    return inner if isinstance(inner, exp.Pivot) else None


def _describe_pivot(pivot: exp.Pivot, dialect: str) -> list[str]:
    w = _Words(dialect, {})
    source = _source_name(pivot.this)
    if pivot.args.get("unpivot"):
        cols = ", ".join(w(e) for e in pivot.expressions)
        return [f"Unpivots {source}: turns the columns {cols} into rows of name and value."]
    spread = "; ".join(
        f"one column per {w(e.this)} value ({w.__call__(exp.Tuple(expressions=e.expressions))})"
        if isinstance(e, exp.In)
        else f"one column per {w(e)} value"
        for e in pivot.expressions
    )
    aggs = ", ".join(w(a) for a in pivot.args.get("using") or [])
    group = pivot.args.get("group")
    rows = f", one row per {', '.join(w(g) for g in group.expressions)}" if group is not None else ""
    return [f"Pivots {source}: {spread}{rows}, each holding {aggs or 'a value'}."]


def _describe_set(node: exp.SetOperation, dialect: str, depth: int = 0) -> list[str]:
    """A UNION / INTERSECT / EXCEPT and its queries. Only operations of the same kind (and the same
    ALL or DISTINCT) are read as one list: ``a INTERSECT b EXCEPT c`` is (a and b in common) minus c,
    not c and b taken from a."""
    kind = _SET_WORDS.get(type(node), "Combines")
    distinct = node.args.get("distinct")
    dedup = "" if distinct is False else ", removing duplicates"
    branches: list[exp.Expr] = []
    stack: list[exp.Expr] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, exp.SetOperation) and (
            item is node or (type(item) is type(node) and item.args.get("distinct") == distinct)
        ):
            right = item.expression
            if isinstance(item, exp.Except) and isinstance(right, exp.SetOperation):
                right = exp.Subquery(this=right)  # a - (b - c) is not a - b - c: its own query
            stack.extend([right, item.this])
        else:
            branches.append(item)
    out = [f"{kind} the results of {len(branches)} queries{dedup}."]
    for i, b in enumerate(branches[:_MAX_ITEMS], 1):
        inner = b.unnest() if isinstance(b, exp.Subquery) else b
        if isinstance(inner, exp.Select):
            out.append(f"Query {i}: " + " ".join(describe_select(inner, dialect, 1)[:2]))
        elif isinstance(inner, exp.SetOperation) and depth < 2:
            nested = _describe_set(inner, dialect, depth + 1)
            out.append(f"Query {i}: " + nested[0][0].lower() + nested[0][1:])
    return out


def _offset(node: exp.Expr) -> str:
    """' after skipping the first N rows' for an OFFSET (the row cap alone says less than the query)."""
    offset = node.args.get("offset") if isinstance(node, exp.Query) else None
    if isinstance(offset, exp.Offset) and offset.expression is not None:
        skipped = generate(offset.expression)
        return f", after skipping the first {'row' if skipped == '1' else f'{skipped} rows'}"
    return ""


def explain(root: exp.Expr, limited: Limited | None, dialect: str) -> str:
    """A paragraph describing the whole statement."""
    parts: list[str] = []
    node = root
    with_ = node.args.get("with_") if isinstance(node, exp.Query) else None
    if with_ is not None:
        steps = []
        for cte in with_.expressions[:_MAX_ITEMS]:
            inner = cte.this
            pivot = _wrapped_pivot(inner)
            if pivot is not None:  # a PIVOT statement as the CTE's body (pivot.wrap_cte_pivots)
                body = _describe_pivot(pivot, dialect)
            else:
                body = describe_select(inner, dialect, 1) if isinstance(inner, exp.Select) else []
            summary = " ".join(body) if body else "combines several queries."
            steps.append(f"{cte.alias}: {summary[0].lower() + summary[1:] if summary else ''}")
        n = len(with_.expressions)
        kind = ("recursive " if with_.args.get("recursive") else "") + ("step" if n == 1 else "steps")
        parts.append(
            f"First prepares {n} named {kind}. " + " ".join(f"({i}) {s}" for i, s in enumerate(steps, 1))
        )
        if len(with_.expressions) > _MAX_ITEMS:
            parts.append(f"(and {len(with_.expressions) - _MAX_ITEMS} more steps)")
    pivot = _wrapped_pivot(node)
    if pivot is not None:
        parts.extend(_describe_pivot(pivot, dialect))  # a PIVOT statement, wrapped for its LIMIT
    elif isinstance(node, exp.Select):
        body = describe_select(node, dialect)
        if with_ is not None and body:
            body[0] = "Then " + body[0][0].lower() + body[0][1:]
        parts.extend(body)
    elif isinstance(node, exp.SetOperation):
        parts.extend(_describe_set(node, dialect))
    elif isinstance(node, (exp.Insert, exp.Update, exp.Delete)):
        parts.extend(_describe_write(node, dialect))
    else:
        parts.append(f"Runs a {type(node).__name__.upper()} statement.")
    if limited is not None and limited.row_limit:
        rows = "1 row" if limited.row_limit == 1 else f"{limited.row_limit:,} rows"
        cap = f"Returns at most {rows}{_offset(root)}"
        if limited.source == "lowered":
            parts.append(f"{cap} (the query's own limit was lowered to the maximum).")
        elif limited.source == "wrapped":
            parts.append(
                f"{cap} (the query's own limit applies first, and the result is capped at the maximum)."
            )
        else:
            parts.append(f"{cap}.")
    return " ".join(p for p in parts if p)
