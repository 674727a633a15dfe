"""Reading an engine's plan: the relations, columns and functions it touches, and how much work.

Input is what :meth:`Executor.explain` returns: PostgreSQL's ``EXPLAIN (VERBOSE, FORMAT JSON)``
document, or DuckDB's ``EXPLAIN (FORMAT JSON)`` wrapped as ``{"Plan": root}``. Output is a
:class:`PlanFacts`, compared with the analyzer's sets in confirm.py. Pure functions, no database.

PostgreSQL. Scan nodes name their relation (``Relation Name``, ``Schema``, a unique ``Alias``).
Columns appear in expression fields (``Output``, ``Filter``, ``Hash Cond``, ``Sort Key``, ...)
as ``alias.column``; unqualified only when the query has a single range-table entry. A scan
whose parent projects may return the table's whole row (a "physical target list") although
the query needs a few columns; that Output is not a use, the parent's expressions are. Functions
appear as ``name(`` or ``schema.name(`` in expressions (the deparser qualifies a function the
search path would not find), and in ``Function Scan`` nodes.

DuckDB. Scans (``SEQ_SCAN`` ...) name ``catalog.schema.table`` and list the columns they read
(``Projections``, after projection pushdown) and pushed-down ``Filters`` over bare column names.
Functions appear as ``name(`` in any operator's expressions and as table functions
(``extra_info.Function``). There is no cost model in the plan: the cost reported here is the sum
of every operator's estimated cardinality, a proxy for the rows the query moves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BOUND_PLAN_SQL",
    "PlanFacts",
    "Scan",
    "duckdb_bound_calls",
    "duckdb_plan_facts",
    "postgres_plan_facts",
    "split_name",
]

# (schema, table) -> (the table's columns in order, its estimated row count) when the reflected
# schema knows the table, else None.
TableLookup = Callable[[str, str], "tuple[list[str], float | None] | None"]

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_STRING = re.compile(r"'(?:[^']|'')*'")
# alias.column (not followed by "(": that is schema.function), or alias.* (a whole row).
_QUALIFIED = re.compile(rf'(?<![\w$."])({_IDENT})\.({_IDENT}|\*)(?![\w$"])(?!\s*\()')
_BARE = re.compile(rf'(?<![\w$."])({_IDENT})(?![\w$"])(?!\s*[.(])')
_CALL = re.compile(rf'(?<![\w$."])(?:({_IDENT})\.)?({_IDENT})\s*\(')
_BARE_REF = re.compile(rf"^(?:({_IDENT})\.)?({_IDENT})$")


@dataclass(frozen=True, slots=True)
class Scan:
    """One read of a stored relation."""

    table: str
    schema: str
    catalog: str = ""
    alias: str = ""
    # Estimated rows this scan reads (a full scan: the table's size when known).
    rows: float = 0.0
    node: str = ""


@dataclass(slots=True)
class PlanFacts:
    """What one plan touches and its estimates."""

    scans: list[Scan] = field(default_factory=list)
    # (schema, table, column); column "*" is a whole-row reference.
    columns: set[tuple[str, str, str]] = field(default_factory=set)
    # (schema or "", name) of every call the plan shows.
    functions: set[tuple[str, str]] = field(default_factory=set)
    rows: float = 0.0  # rows the root returns
    peak_rows: float = 0.0  # the largest row estimate of any step
    peak_node: str = ""
    cost: float = 0.0


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name.lower()


def split_name(text: str) -> list[str]:
    """``"sample".main.orders`` -> ["sample", "main", "orders"] (quotes honoured, others lower-cased)."""
    return [_unquote(m.group(0)) for m in re.finditer(_IDENT, text)]


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _texts(v)


def _calls(text: str, out: set[tuple[str, str]]) -> None:
    for m in _CALL.finditer(text):
        out.add((_unquote(m.group(1)) if m.group(1) else "", _unquote(m.group(2))))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


# -- PostgreSQL -------------------------------------------------------------------------------

# Keys that hold names or settings, never expressions.
_PG_NOT_EXPRESSIONS = frozenset(
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
        "Command",
        "Operation",
        "Sort Method",
        "Sort Space Type",
    }
)


def _pg_nodes(node: dict[str, Any], parent: dict[str, Any] | None = None) -> Iterator[tuple[dict, Any]]:
    yield node, parent
    for child in node.get("Plans") or ():
        yield from _pg_nodes(child, node)


def postgres_plan_facts(doc: dict[str, Any], lookup: TableLookup) -> PlanFacts:
    """Facts from one ``EXPLAIN (VERBOSE, FORMAT JSON)`` document (the object holding ``Plan``)."""
    root = doc["Plan"]
    facts = PlanFacts(rows=_number(root.get("Plan Rows")), cost=_number(root.get("Total Cost")))
    nodes = list(_pg_nodes(root))
    aliases: dict[str, Scan] = {}
    for node, _ in nodes:
        rows = _number(node.get("Plan Rows"))
        if rows > facts.peak_rows:
            facts.peak_rows, facts.peak_node = rows, _pg_label(node)
        if node.get("Relation Name"):
            schema = str(node.get("Schema") or "").lower()
            table = str(node["Relation Name"]).lower()
            read = rows
            known = lookup(schema, table)
            if node.get("Node Type") == "Seq Scan" and known is not None and known[1]:
                read = max(rows, known[1])  # a full scan reads every row, not just those it keeps
            scan = Scan(table, schema, "", str(node.get("Alias") or table).lower(), read, node["Node Type"])
            facts.scans.append(scan)
            aliases[scan.alias] = scan
        elif node.get("Function Name"):
            facts.functions.add((str(node.get("Schema") or "").lower(), str(node["Function Name"]).lower()))
    # With one range-table entry PostgreSQL leaves columns unqualified.
    single = facts.scans[0] if len(facts.scans) == 1 and len(aliases) == 1 else None
    for node, parent in nodes:
        skip_output = parent is not None and _physical_tlist(node, lookup)
        for key, value in node.items():
            if key == "Plans" or key in _PG_NOT_EXPRESSIONS or (key == "Output" and skip_output):
                continue
            for text in _texts(value):
                _pg_expression(text, aliases, single, lookup, facts)
    return facts


def _pg_label(node: dict[str, Any]) -> str:
    rel = node.get("Relation Name")
    return f"{node.get('Node Type', '?')} on {rel}" if rel else str(node.get("Node Type", "?"))


def _physical_tlist(node: dict[str, Any], lookup: TableLookup) -> bool:
    """Whether a scan's Output is just the table's whole row, returned to spare a projection."""
    table = node.get("Relation Name")
    output = node.get("Output")
    if not table or not isinstance(output, list):
        return False
    found = lookup(str(node.get("Schema") or "").lower(), str(table).lower())
    if not found or not found[0]:
        return False
    known = found[0]
    names = []
    for item in output:
        m = _BARE_REF.match(item.strip())
        if m is None:
            return False
        names.append(_unquote(m.group(2)))
    return [n.lower() for n in names] == [c.lower() for c in known]


def _pg_expression(
    text: str, aliases: dict[str, Scan], single: Scan | None, lookup: TableLookup, facts: PlanFacts
) -> None:
    text = _STRING.sub("''", text)
    _calls(text, facts.functions)
    for m in _QUALIFIED.finditer(text):
        scan = aliases.get(_unquote(m.group(1)).lower())
        if scan is not None:
            col = "*" if m.group(2) == "*" else _unquote(m.group(2))
            facts.columns.add((scan.schema, scan.table, col))
    if single is not None:
        found = lookup(single.schema, single.table)
        known = {c.lower() for c in (found[0] if found else ())}
        for m in _BARE.finditer(text):
            name = _unquote(m.group(1))
            if name.lower() in known:
                facts.columns.add((single.schema, single.table, name))


# -- DuckDB -----------------------------------------------------------------------------------

_DUCK_NOT_EXPRESSIONS = frozenset({"Table", "Type", "Estimated Cardinality", "Function", "Join Type"})


def _duck_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("children") or ():
        yield from _duck_nodes(child)


def duckdb_plan_facts(doc: dict[str, Any], lookup: TableLookup, default_catalog: str = "") -> PlanFacts:
    """Facts from DuckDB's JSON plan as ``DuckDBExecutor.explain`` returns it (``{"Plan": root}``)."""
    root = doc["Plan"]
    facts = PlanFacts(rows=_number((root.get("extra_info") or {}).get("Estimated Cardinality")))
    for node in _duck_nodes(root):
        info = node.get("extra_info") or {}
        rows = _number(info.get("Estimated Cardinality"))
        facts.cost += rows
        name = str(node.get("name", "?")).strip()
        table = info.get("Table")
        if rows > facts.peak_rows:
            facts.peak_rows = rows
            facts.peak_node = f"{name} on {split_name(table)[-1]}" if table else name
        if isinstance(table, str):
            parts = split_name(table)
            catalog = parts[-3] if len(parts) >= 3 else default_catalog
            schema = parts[-2] if len(parts) >= 2 else "main"
            tname = parts[-1]
            found = lookup(schema, tname)
            read = max(rows, found[1]) if found is not None and found[1] else rows
            facts.scans.append(Scan(tname, schema, catalog, tname, read, name))
            cols = {c.lower(): c for c in (found[0] if found else ())}
            for text in _texts(info.get("Projections")):
                for item in (t.strip() for t in text.split("\n")):
                    if item:
                        facts.columns.add((schema, tname, _unquote(item) if item.startswith('"') else item))
            for key in ("Filters", "Dynamic Filters"):
                for text in _texts(info.get(key)):
                    for m in _BARE.finditer(_STRING.sub("''", text)):
                        ident = _unquote(m.group(1))
                        if ident.lower() in cols:
                            facts.columns.add((schema, tname, ident))
        fn = info.get("Function")
        if isinstance(fn, str) and fn:
            facts.functions.add(("", fn.lower()))
        for key, value in info.items():
            if key in _DUCK_NOT_EXPRESSIONS:
                continue
            for text in _texts(value):
                _calls(_STRING.sub("''", text), facts.functions)
    return facts


# DuckDB's bound logical plan as JSON. The physical plan's text names output columns rather than
# expressions (a projection shows "x", not "jitter(total)"), so the calls come from the binder:
# every bound function, aggregate, window and table function with its catalog path, macros and
# views already expanded.
BOUND_PLAN_SQL = "SELECT json_serialize_plan(?::VARCHAR)"
# Read from the text: a regex over a few KB beats decoding and walking the whole document 5x.
_QNAME = re.compile(r'"qname"\s*:\s*\{\s*"path"\s*:\s*\[([^\]]*)\]')
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_NAME = re.compile(r"^[A-Za-z_][\w$]*$")


def duckdb_bound_calls(text: str) -> set[tuple[str, str]]:
    """(schema, name) of every named call in a ``json_serialize_plan`` document.

    Operators (``+``, ``~~``), casts (``__cast``) and table scans (``seq_scan``) are not calls.
    """
    out: set[tuple[str, str]] = set()
    for m in _QNAME.finditer(text):
        path = [p.lower() for p in _JSON_STRING.findall(m.group(1))]
        if not path or path == ["seq_scan"] or path[-1].startswith("__") or not _NAME.match(path[-1]):
            continue
        out.add((path[-2] if len(path) > 1 else "", path[-1]))
    return out
