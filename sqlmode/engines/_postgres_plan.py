"""PostgreSQL's plan, read with PostgreSQL's own lexer and parser: what the query reads and calls.

Input is one ``EXPLAIN (VERBOSE, FORMAT JSON)`` document (the object holding ``Plan``). Scan nodes
name their relation (``Relation Name``, ``Schema``) and the alias the deparser uses for it
(``Alias``, unique in the plan: ruleutils renames duplicates ``orders_1``). Every expression field
(``Output``, ``Filter``, ``Hash Cond``, ``Sort Key``, ``Window``, ``Function Call``, ...) is deparsed
SQL, so it is parsed as SQL (pglast, libpg_query: the server's grammar), never matched with
patterns: a ``'`` inside a quoted alias (``"a'b".ssn``) or ``"c".ssn`` inside a literal is then
exactly what it is.

- Column references map through the alias table, exactly (case-sensitive: ``"C"`` is not ``c``).
  ``alias.*`` is the whole row. A plan whose range table has one entry prints bare column names;
  they belong to that entry. A reference to a CTE, subquery, function or VALUES alias is the
  output of a node whose own reads are counted where they happen.
- The deparser's plan-only notation is rewritten on the token stream before parsing:
  ``(SubPlan 1)``, ``(hashed SubPlan 2).col1``, ``(InitPlan 1).col1`` become a parameter (their
  reads are counted in the SubPlan and InitPlan nodes, which are walked like any other),
  ``ANY (...)`` / ``ALL (...)`` tests, ``EXISTS(SubPlan n)``, ``ARRAY(SubPlan n)`` and
  ``PARTIAL agg(...)`` lose their keyword.
- A scan's Output that is exactly its table's whole row, under a parent that projects (a
  "physical target list", returned to spare a projection), is not a use: the parent's
  expressions are. An index-only scan's Output under a parent is its index keys: kept apart
  (``PlanFacts.access_path_columns``), checked against blocked columns only.
- Fail closed: an expression that does not parse, a reference to an alias the plan does not
  define, a field sqlmode does not know: each is a problem the confirmer refuses.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pglast import parser as pg

from ..execute.plans import PlanFacts, Scan, TableLookup, number

__all__ = ["column_aliases", "postgres_plan_facts", "range_names"]

# An expression longer than this is a folded constant too large to read, not a query's text.
MAX_EXPRESSION_CHARS = 1_000_000
# Parse trees of the plan's expression statements, by text. Parsing is a pure function of the
# text, and plans repeat most expressions from one query to the next (a changed literal changes
# one Filter), so decoding pglast's JSON, the largest cost of reading a plan, is mostly skipped.
# The trees are shared: nothing that reads them changes them. Only statements that parsed are
# kept, at most TREE_CACHE_SIZE of at most TREE_CACHE_CHARS characters each (LRU, per process).
TREE_CACHE_SIZE = 2048
TREE_CACHE_CHARS = 2_000
# A statement's tree and its column references and calls in walk order (_walk): both pure
# functions of the text, both shared read-only.
Refs = tuple[tuple[str, Any], ...]
Parsed = tuple[Any, Refs]
_trees: OrderedDict[str, Parsed] = OrderedDict()
_trees_lock = threading.Lock()

# How each expression field is wrapped into a statement PostgreSQL's grammar accepts.
_SCALAR = "SELECT {}"
_FIELDS: dict[str, str] = {
    "Output": _SCALAR,
    "Filter": _SCALAR,
    "Join Filter": _SCALAR,
    "Hash Cond": _SCALAR,
    "Merge Cond": _SCALAR,
    "Index Cond": _SCALAR,
    "Recheck Cond": _SCALAR,
    "TID Cond": _SCALAR,
    "One-Time Filter": _SCALAR,
    "Run Condition": _SCALAR,
    "Order By": _SCALAR,
    "Group Key": _SCALAR,
    "Presorted Key": _SCALAR,
    "Hash Key": _SCALAR,
    "Cache Key": _SCALAR,
    "Sampling Parameters": _SCALAR,
    "Repeatable Seed": _SCALAR,
    "Sort Key": "SELECT 1 ORDER BY {}",
    "Window": "SELECT 1 WINDOW {}",
    "Function Call": "SELECT 1 FROM {}",
    "Table Function Call": "SELECT 1 FROM {}",
}
# Fields holding names, settings or numbers, never expressions.
_NOT_EXPRESSIONS = frozenset(
    {
        "Node Type",
        "Parent Relationship",
        "Relation Name",
        "Schema",
        "Alias",
        "Index Name",
        "Strategy",
        "Partial Mode",
        "Join Type",
        "Scan Direction",
        "Subplan Name",
        "CTE Name",
        "Function Name",
        "Table Function Name",
        "Command",
        "Sampling Method",
        "Cache Mode",
        "Startup Cost",
        "Total Cost",
        "Plan Rows",
        "Plan Width",
        "Parallel Aware",
        "Async Capable",
        "Disabled",
        "Disabled Nodes",
        "Inner Unique",
        "Planned Partitions",
        "Subplans Removed",
        "Workers Planned",
        "Single Copy",
        "Plans",
        "Grouping Sets",  # read below: a list of {"Group Keys"/"Hash Keys": [[expr, ...]]}
    }
)
# What the SubPlan / InitPlan notation becomes: a parameter, which is never a column.
_PLACEHOLDER = "$99999"
_SUBPLAN_WORDS = frozenset({"SubPlan", "InitPlan"})
_LEADING = frozenset({None, "ASCII_40", "ASCII_44", "NOT", "AND", "OR"})  # "(" "," NOT AND OR


@dataclass(slots=True)
class _Stmt:
    text: str  # the statement to parse
    field: str
    node: int  # index into the plan's nodes
    raw: str


def column_aliases(sql: str, doc: Any = None) -> dict[str, list[str] | None]:
    """Tables the query renames columns of (``FROM customers AS c(a, b)``): alias -> new names.

    The deparser prints such a table's columns by the new names (``c.b`` is the second column),
    so they are mapped back by position. An alias given twice maps to None (cannot be placed).
    ``doc``: pglast's parse of ``sql`` (``parse_sql_json``, decoded) when the caller has it.
    """
    out: dict[str, list[str] | None] = {}
    if "(" not in sql:
        return out
    for kind, value in _range_vars(sql, doc):
        alias = value.get("alias") or {}
        names = alias.get("colnames")
        if kind == "RangeVar" and alias.get("aliasname") and names:
            key = str(alias["aliasname"])
            out[key] = None if key in out else [str(n.get("String", {}).get("sval", "")) for n in names]
    return out


def _range_vars(sql: str, doc: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """The query's RangeVar nodes (``doc``: pglast's decoded parse, parsed here when None)."""
    if doc is None:
        try:
            doc = json.loads(pg.parse_sql_json(sql))
        except pg.ParseError:
            return iter(())
    return _walk(doc, ("RangeVar",))


def range_names(sql: str, doc: Any = None) -> dict[str, tuple[str, str] | None]:
    """The query's tables by the name its columns go by: alias (or table name) -> (schema, table).

    A name given twice maps to None (cannot be placed). ``doc`` as in :func:`column_aliases`.
    """
    out: dict[str, tuple[str, str] | None] = {}
    for kind, value in _range_vars(sql, doc):
        if kind != "RangeVar" or not value.get("relname"):
            continue
        alias = (value.get("alias") or {}).get("aliasname")
        key = str(alias or value["relname"])
        out[key] = None if key in out else (str(value.get("schemaname") or ""), str(value["relname"]))
    return out


def postgres_plan_facts(
    doc: dict[str, Any],
    lookup: TableLookup,
    renamed: dict[str, list[str] | None] | None = None,
    *,
    tables: dict[str, tuple[str, str] | None] | None = None,
    ancestors: Callable[[str, str], Collection[str]] | None = None,
    sources: Callable[[], dict[str, tuple[str, str] | None]] | None = None,
) -> PlanFacts:
    """Facts from one ``EXPLAIN (VERBOSE, FORMAT JSON)`` document (the object holding ``Plan``).

    ``renamed``: :func:`column_aliases` of the query's text. ``tables``: :func:`range_names` of it,
    and ``ancestors(schema, table)``: the names of the tables a table inherits from. With both, a
    partitioned (or inheritance parent) table is placed: the plan scans its partitions under
    ``events_1``, ``events_2``..., and the nodes above name the parent's columns as ``events.kind``,
    an alias no scan defines. ``sources``: :func:`range_names` of the query's text, asked for only
    when a node reads no rows (see :func:`_empty_nodes`).
    """
    root = doc["Plan"]
    facts = PlanFacts(rows=number(root.get("Plan Rows")), cost=number(root.get("Total Cost")))
    nodes = list(_nodes(root, None))
    aliases: dict[str, Scan | None] = {}  # None: a source that is not a stored relation
    stmts: list[_Stmt] = []
    for i, (node, _) in enumerate(nodes):
        rows = number(node.get("Plan Rows"))
        if rows > facts.peak_rows:
            facts.peak_rows, facts.peak_node = rows, _label(node)
        _sources(node, lookup, facts, aliases)
        for key, value in node.items():
            if key in _FIELDS:
                stmts += _statements(key, value, i, facts)
            elif key == "Grouping Sets":
                for group in value if isinstance(value, list) else [value]:
                    for sub, keys in group.items() if isinstance(group, dict) else ():
                        for item in keys if isinstance(keys, list) else [keys]:
                            stmts += _statements(f"Grouping Sets {sub}", item, i, facts)
            elif key not in _NOT_EXPRESSIONS and isinstance(value, (str, list, dict)):
                facts.problems.append(f"the plan has a field sqlmode does not read ({key})")
    via_parent: dict[str, Scan] = {}
    if tables and ancestors is not None:
        via_parent = _place_parents(aliases, tables, ancestors, lookup)
    for alias in aliases:
        stem, _, suffix = alias.rpartition("_")
        if renamed and alias not in renamed and suffix.isdigit() and stem in renamed:
            # The deparser made a repeated alias unique; which one renames columns is unknown.
            facts.problems.append("an alias of the plan may be a table whose columns the query renames")
    parsed = _parse(stmts, facts)
    single = _single_source(aliases)
    empty = _empty_nodes(nodes)
    named: dict[str, tuple[str, str] | None] | None = None
    for stmt, entry in zip(stmts, parsed, strict=True):
        if entry is None:
            continue
        tree, refs = entry
        node, parent = nodes[stmt.node]
        if stmt.node in empty:
            # A node over no rows at all (`WHERE false`): the planner dropped the scans its columns
            # come from, so no scan defines their aliases; they are placed by the query's own
            # names and the schema's tables instead (what cannot be placed is still refused).
            if named is None:
                named = sources() if sources is not None else {}
            _unscanned(refs, aliases, named, lookup, facts, renamed or {})
            continue
        if stmt.field == "Output" and _physical_tlist(node, parent, tree, aliases, single, lookup):
            continue
        if stmt.field == "Output" and _index_keys_to_parent(node, parent):
            found = PlanFacts()
            _references(refs, aliases, single, lookup, found, renamed or {})
            facts.access_path_columns |= found.columns
            facts.functions |= found.functions
            facts.problems += found.problems
            continue
        _references(refs, aliases, single, lookup, facts, renamed or {}, via_parent)
    facts.access_path_columns -= facts.columns
    return facts


_SIDE_PLANS = frozenset({"InitPlan", "SubPlan"})


def _empty_nodes(nodes: list[tuple[dict[str, Any], Any]]) -> set[int]:
    """Indices of the nodes that read no row: a ``Result`` whose one-time filter is the constant
    ``false`` (the planner proved the query empty and removed the scans below it), and a node whose
    every input is such a node. InitPlans and SubPlans are not inputs: their scans are read as
    anywhere else. A node that scans a relation itself is never one.
    """
    index = {id(node): i for i, (node, _) in enumerate(nodes)}
    empty: set[int] = set()
    for i in range(len(nodes) - 1, -1, -1):  # children come after their parent in _nodes' order
        node = nodes[i][0]
        if node.get("Relation Name") or node.get("Function Name") or node.get("CTE Name"):
            continue
        inputs = [c for c in node.get("Plans") or () if c.get("Parent Relationship") not in _SIDE_PLANS]
        proven = node.get("Node Type") == "Result" and node.get("One-Time Filter") == "false"
        if (proven and not inputs) or (inputs and all(index.get(id(c)) in empty for c in inputs)):
            empty.add(i)
    return empty


def _set_arm(alias: str) -> bool:
    """The name PostgreSQL gives an arm of a set operation (``"*SELECT* 1".id``)."""
    return alias.startswith("*SELECT* ") and alias[len("*SELECT* ") :].isdigit()


def _unscanned(
    refs: Refs,
    aliases: dict[str, Scan | None],
    named: dict[str, tuple[str, str] | None],
    lookup: TableLookup,
    facts: PlanFacts,
    renamed: dict[str, list[str] | None],
) -> None:
    """:func:`_references` for a node over no rows, whose columns' tables were never scanned.

    An alias is placed by a scan if one defines it, else by the query's own names (``orders o``),
    else as a table of the schema by that name (the deparser names a view's base table so); a bare
    name by the query's one table. Placed columns count as read (blocked ones are refused like any
    other); one that cannot be placed is a problem, as everywhere. A bare name (or one of a set
    operation's arm, ``"*SELECT* 1".id``) over several tables is checked, in every one of them with
    such a column, against the blocked columns only (which arm's table it is, the plan does not
    say).
    """
    tables = [t for t in named.values() if t is not None]
    for kind, value in refs:
        if kind == "FuncCall":
            _references(((kind, value),), aliases, (False, None), lookup, facts, renamed)
            continue
        fields = _fields(value)
        if fields is None or not fields or len(fields) > 2:
            facts.problems.append("the plan references a column in a form sqlmode cannot place")
            continue
        alias, name = (None, fields[0]) if len(fields) == 1 else (fields[0], fields[1])
        if alias is not None and _set_arm(alias) and alias not in aliases and alias not in named:
            alias = None  # `"*SELECT* 1".id`: an arm of a set operation, as a bare name
        scan: Scan | None = None
        if alias is None:
            if len(tables) == 1 and len(named) == 1 and name is not None:
                schema, table = tables[0]
                scan = Scan(table.lower(), schema.lower(), "", next(iter(named)), 0.0, "Result")
            elif name is not None and len(tables) == len(named) > 1 and not set(named) & set(renamed):
                # The arms of a set operation over no rows print their columns bare, and which arm's
                # table a name is of is not said: every one of the query's tables with such a
                # column is checked against the blocked ones (as an access path is), none counted
                # as read.
                found = PlanFacts()
                for alias_, placed in named.items():
                    cols = lookup(placed[0], placed[1]) if placed is not None else None
                    if placed is not None and cols is not None and name in cols[0]:
                        _add(
                            Scan(placed[1].lower(), placed[0].lower(), "", alias_, 0.0, "Result"),
                            name,
                            lookup,
                            found,
                            renamed,
                        )
                if found.columns and not found.problems:
                    facts.access_path_columns |= found.columns
                    continue
        elif alias in aliases:
            if aliases[alias] is not None:
                _add(aliases[alias], name if name is not None else "*", lookup, facts, renamed)  # type: ignore[arg-type]
            continue
        elif named.get(alias) is not None:
            schema, table = named[alias]  # type: ignore[misc]
            scan = Scan(table.lower(), schema.lower(), "", alias, 0.0, "Result")
        elif alias not in named and lookup("", alias) is not None:
            scan = Scan(alias.lower(), "", "", alias, 0.0, "Result")
        if scan is None or lookup(scan.schema, scan.table) is None:
            facts.problems.append("the plan references a column of a relation it does not scan")
            continue
        _add(scan, name if name is not None else "*", lookup, facts, renamed)


def _index_keys_to_parent(node: dict[str, Any], parent: dict[str, Any] | None) -> bool:
    """Whether ``node`` is an index-only scan handing its index keys to a parent plan node.

    Its Output is what the index holds, not what the query asked for (``count(*)`` over a join
    prints ``Output: orders.id``); a parent that uses a key names it in its own fields.
    """
    return (
        parent is not None
        and node.get("Node Type") == "Index Only Scan"
        and node.get("Parent Relationship") not in ("SubPlan", "InitPlan")
    )


def _place_parents(
    aliases: dict[str, Scan | None],
    tables: dict[str, tuple[str, str] | None],
    ancestors: Callable[[str, str], Collection[str]],
    lookup: TableLookup,
) -> dict[str, Scan]:
    """Define the alias of each parent table whose partitions the plan scans (``events`` for the
    scans ``events_1``, ``events_2``... of its partitions): only for a name the query gave one
    table, that table known to the schema, and at least one such scan of a partition of it.

    Returns partition alias -> the parent's scan: what a partition scan reads, it reads for the
    parent (its own column counts for blocked columns only, as an access path).
    """
    via: dict[str, Scan] = {}
    for name, rel in tables.items():
        if rel is None or name in aliases:
            continue
        schema, table = rel[0].lower(), rel[1].lower()
        if lookup(schema, table) is None:
            continue
        children = [
            scan
            for alias, scan in aliases.items()
            if scan is not None
            and alias.startswith(name + "_")
            and alias[len(name) + 1 :].isdigit()
            and table in ancestors(scan.schema, scan.table)
        ]
        if children:
            parent = aliases[name] = Scan(table, schema or children[0].schema, "", name, 0.0, "Append")
            via.update((child.alias, parent) for child in children)
    return via


def _nodes(node: dict[str, Any], parent: dict[str, Any] | None) -> Iterator[tuple[dict[str, Any], Any]]:
    yield node, parent
    for child in node.get("Plans") or ():
        yield from _nodes(child, node)


def _label(node: dict[str, Any]) -> str:
    rel = node.get("Relation Name")
    return f"{node.get('Node Type', '?')} on {rel}" if rel else str(node.get("Node Type", "?"))


def _sources(
    node: dict[str, Any], lookup: TableLookup, facts: PlanFacts, aliases: dict[str, Scan | None]
) -> None:
    """Record the relation or other source a node reads, under its alias."""
    alias = node.get("Alias")
    if node.get("Relation Name"):
        schema = str(node.get("Schema") or "").lower()
        table = str(node["Relation Name"]).lower()
        rows = number(node.get("Plan Rows"))
        known = lookup(schema, table)
        if node.get("Node Type") == "Seq Scan" and known is not None and known[1]:
            rows = max(rows, known[1])  # a full scan reads every row, not just those it keeps
        scan = Scan(
            table, schema, "", str(alias if alias is not None else table), rows, str(node["Node Type"])
        )
        facts.scans.append(scan)
        key = scan.alias
        if key in aliases and aliases[key] != scan and (aliases[key] is None or aliases[key].table != table):  # type: ignore[union-attr]
            facts.problems.append("the plan uses one alias for two different sources")
        aliases[key] = scan
    elif alias is not None:
        key = str(alias)
        if aliases.get(key) is not None:
            facts.problems.append("the plan uses one alias for two different sources")
        aliases[key] = None
    if node.get("Function Name"):
        facts.functions.add((str(node.get("Schema") or "").lower(), str(node["Function Name"]).lower()))


def _single_source(aliases: dict[str, Scan | None]) -> tuple[bool, Scan | None]:
    """(whether bare column names have an owner, the relation that owns them or None)."""
    if len(aliases) == 1:
        return True, next(iter(aliases.values()))
    return False, None


# -- lexing and parsing ---------------------------------------------------------------------


def _statements(key: str, value: Any, node: int, facts: PlanFacts) -> list[_Stmt]:
    texts = value if isinstance(value, list) else [value]
    if not all(isinstance(t, str) for t in texts):
        facts.problems.append(f"the plan's {key} is not text")
        return []
    if any(len(t) > MAX_EXPRESSION_CHARS for t in texts):
        facts.problems.append(f"the plan's {key} holds an expression too large to read (a huge constant?)")
        return []
    if not texts:
        return []
    template = _FIELDS.get(key, _SCALAR)
    out = []
    rewritten = []
    for text in texts:
        try:
            rewritten.append(_rewrite_cached(text) if len(text) <= TREE_CACHE_CHARS else _rewrite(text))
        except pg.ParseError:
            facts.problems.append(f"PostgreSQL's lexer rejects an expression of the plan's {key}")
            return []
    if key == "Output" or template != _SCALAR:
        # One statement for the list: an Output's items are the target list, in order.
        out.append(_Stmt(template.format(", ".join(rewritten)), key, node, "; ".join(texts)))
    else:
        out += [_Stmt(template.format(r), key, node, t) for r, t in zip(rewritten, texts, strict=True)]
    return out


@lru_cache(maxsize=2048)  # TREE_CACHE_SIZE, written out for the documented-caches check
def _rewrite_cached(text: str) -> str:
    return _rewrite(text)


def _rewrite(text: str) -> str:
    """The deparser's plan-only notation as SQL the grammar accepts (see the module docstring)."""
    tokens = pg.scan(text)
    drop: set[int] = set()
    replace: dict[int, str] = {}

    def raw(i: int) -> str:
        t = tokens[i]
        return text[t.start : t.end + 1]

    def subplan_at(i: int) -> bool:
        return (
            i + 1 < len(tokens)
            and tokens[i].name == "IDENT"
            and raw(i) in _SUBPLAN_WORDS
            and tokens[i + 1].name == "ICONST"
        )

    for i, tok in enumerate(tokens):
        if subplan_at(i):
            replace[i] = _PLACEHOLDER
            drop.add(i + 1)
            if i > 0 and tokens[i - 1].name == "IDENT" and raw(i - 1) == "hashed":
                drop.add(i - 1)
        elif tok.name in ("ANY", "ALL"):
            prev = tokens[i - 1].name if i > 0 else None
            if prev in _LEADING and i + 1 < len(tokens) and tokens[i + 1].name == "ASCII_40":
                drop.add(i)
        elif tok.name in ("EXISTS", "ARRAY"):
            if i + 2 < len(tokens) and tokens[i + 1].name == "ASCII_40" and subplan_at(i + 2):
                drop.add(i)
        elif raw(i) == "PARTIAL" and i + 2 < len(tokens) and tokens[i + 2].name == "ASCII_40":
            drop.add(i)
    if not drop and not replace:
        return text
    parts: list[str] = []
    pos = 0
    for i, tok in enumerate(tokens):
        if i in drop or i in replace:
            parts.append(text[pos : tok.start])
            parts.append(replace.get(i, " "))
            pos = tok.end + 1
    parts.append(text[pos:])
    return "".join(parts)


def _parse(stmts: list[_Stmt], facts: PlanFacts) -> list[Parsed | None]:
    """(tree, references) per statement (None where a statement does not parse: a problem)."""
    if not stmts:
        return []
    found: dict[str, Parsed] = {}
    with _trees_lock:
        for st in stmts:
            entry = _trees.get(st.text)
            if entry is not None:
                _trees.move_to_end(st.text)
                found[st.text] = entry
    missing = [st for st in stmts if st.text not in found]
    if missing:
        for st, tree in zip(missing, _parse_fresh(missing, facts), strict=True):
            if tree is not None and st.text not in found:
                found[st.text] = (tree, tuple(_walk(tree)))
        with _trees_lock:
            for st in missing:
                if st.text in found and len(st.text) <= TREE_CACHE_CHARS:
                    _trees[st.text] = found[st.text]
            while len(_trees) > TREE_CACHE_SIZE:
                _trees.popitem(last=False)
    return [found.get(st.text) for st in stmts]


def _parse_fresh(stmts: list[_Stmt], facts: PlanFacts) -> list[Any]:
    """:func:`_parse` without the cache: one parse for all, each alone to find a culprit."""
    try:
        doc = json.loads(pg.parse_sql_json(";\n".join(s.text for s in stmts)))
        parsed = doc.get("stmts", [])
        if len(parsed) == len(stmts) and _aligned(parsed, stmts):
            return [p.get("stmt") for p in parsed]
    except pg.ParseError:
        pass
    out = []
    for s in stmts:  # find the culprit
        try:
            parsed = json.loads(pg.parse_sql_json(s.text)).get("stmts", [])
        except pg.ParseError:
            parsed = []
            # The expression itself is not shown: through a view it may hold what is hidden.
            facts.problems.append(f"PostgreSQL's parser cannot read an expression of the plan's {s.field}")
        else:
            if len(parsed) != 1:
                facts.problems.append(f"the plan's {s.field} is not one expression")
        out.append(parsed[0].get("stmt") if len(parsed) == 1 else None)
    return out


def _aligned(parsed: list[dict[str, Any]], stmts: list[_Stmt]) -> bool:
    """Whether each statement of the joined parse spans exactly one statement's text.

    Then each tree is that text's own parse (what is cached under it), not a neighbour's part.
    """
    at = 0
    for i, (p, st) in enumerate(zip(parsed, stmts, strict=True)):
        length = p.get("stmt_len", 0)  # 0 (left out) on the last: "to the end"
        if p.get("stmt_location", 0) != at or length != (0 if i == len(stmts) - 1 else len(st.text)):
            return False
        at += len(st.text) + 2  # ";\n"
    return True


# -- references -------------------------------------------------------------------------------


def _walk(node: Any, kinds: tuple[str, ...] = ("ColumnRef", "FuncCall")) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in kinds:
                yield key, value
            yield from _walk(value, kinds)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, kinds)


def _fields(ref: dict[str, Any]) -> list[str | None] | None:
    """A ColumnRef's fields: names, None for ``*``; None when a field is neither."""
    out: list[str | None] = []
    for f in ref.get("fields") or []:
        if "String" in f:
            out.append(str(f["String"].get("sval", "")))
        elif "A_Star" in f:
            out.append(None)
        else:
            return None
    return out


def _references(
    refs: Refs,
    aliases: dict[str, Scan | None],
    single: tuple[bool, Scan | None],
    lookup: TableLookup,
    facts: PlanFacts,
    renamed: dict[str, list[str] | None],
    via_parent: dict[str, Scan] | None = None,
) -> None:
    for kind, value in refs:
        if kind == "FuncCall":
            parts = [p.get("String", {}).get("sval", "") for p in value.get("funcname", [])]
            if parts:
                facts.functions.add(((parts[-2] if len(parts) > 1 else "").lower(), parts[-1].lower()))
            continue
        fields = _fields(value)
        if fields is None or not fields or len(fields) > 2:
            facts.problems.append("the plan references a column in a form sqlmode cannot place")
            continue
        if len(fields) == 1:
            owned, scan = single
            name = fields[0]
            if not owned or name is None:
                facts.problems.append("the plan references a column without saying whose")
            elif scan is not None:
                _add(scan, name, lookup, facts, renamed)
            continue
        alias, name = fields
        if alias is None or alias not in aliases:
            facts.problems.append("the plan references a column through an alias it does not define")
            continue
        scan = aliases[alias]
        parent = via_parent.get(alias) if via_parent else None
        if parent is not None and scan is not None:
            _add(parent, name if name is not None else "*", lookup, facts, renamed)
            facts.access_path_columns.add((scan.schema, scan.table, name if name is not None else "*"))
        elif scan is not None:
            _add(scan, name if name is not None else "*", lookup, facts, renamed)


def _add(
    scan: Scan, name: str, lookup: TableLookup, facts: PlanFacts, renamed: dict[str, list[str] | None]
) -> None:
    found = lookup(scan.schema, scan.table)
    if scan.alias in renamed and name != "*":
        new = renamed[scan.alias]
        if new is None or not found or not found[0]:
            facts.problems.append("the plan reads a column of a table whose columns the query renames")
            return
        if name in new:  # the deparser prints the alias; the stored column is at its position
            name = found[0][new.index(name)] if new.index(name) < len(found[0]) else name
    if name != "*" and found is not None and found[0] and name not in found[0]:
        facts.problems.append("the plan reads a column the schema does not list")
        return
    facts.columns.add((scan.schema, scan.table, name))


def _physical_tlist(
    node: dict[str, Any],
    parent: dict[str, Any] | None,
    tree: Any,
    aliases: dict[str, Scan | None],
    single: tuple[bool, Scan | None],
    lookup: TableLookup,
) -> bool:
    """Whether a scan's Output is just its table's whole row, returned to a parent that projects."""
    if (
        parent is None
        or node.get("Parent Relationship") in ("SubPlan", "InitPlan")
        or not node.get("Relation Name")
    ):
        return False
    alias = node.get("Alias")
    scan = aliases.get(str(alias)) if alias is not None else None
    if scan is None:
        return False
    found = lookup(scan.schema, scan.table)
    if not found or not found[0]:
        return False
    names: list[str] = []
    for target in (tree.get("SelectStmt") or {}).get("targetList") or []:
        ref = ((target.get("ResTarget") or {}).get("val") or {}).get("ColumnRef")
        fields = _fields(ref) if isinstance(ref, dict) else None
        if fields is None or None in fields:
            return False
        if len(fields) == 2 and fields[0] == scan.alias:
            names.append(str(fields[1]))
        elif len(fields) == 1 and single == (True, scan):
            names.append(str(fields[0]))
        else:
            return False
    return names == list(found[0])
