"""Classification: what kind of statement this is, and every node that is not a read.

The root decides the statement type and action; then the *whole* tree is walked,
because a query root proves nothing about what hides inside it (a DELETE in a CTE,
SELECT INTO, FOR UPDATE). Node families are refused by default: anything from
sqlglot's DDL/DML/properties/constraints modules, and every query-module node that is
not on a short list of read-only clauses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from ..models import Action, Violation
from .codes import violation
from .parse import generate

QUERY_ROOTS = (exp.Select, exp.SetOperation, exp.Values, exp.Subquery, exp.Pivot)
WRITE_ROOTS = (exp.Insert, exp.Update, exp.Merge)
DELETE_ROOTS = (exp.Delete,)

# Roots that read metadata rather than data: refused as introspection, never run.
INTROSPECTION_ROOTS = (exp.Describe, exp.Show, exp.Summarize)

_REFUSED_MODULES = (
    "sqlglot.expressions.ddl",
    "sqlglot.expressions.dml",
    "sqlglot.expressions.properties",
    "sqlglot.expressions.constraints",
)
# Nodes from the refused modules that are plain expressions (DuckDB list comprehension).
_MODULE_EXCEPTIONS: frozenset[type] = frozenset({exp.Comprehension})

# Query-module nodes a read may contain. Everything else from that module (INTO,
# locking, GRANT, ANALYZE, procedural blocks, staging commands...) is refused.
_QUERY_MODULE_SAFE: frozenset[type] = frozenset(
    {
        exp.With,
        exp.CTE,
        exp.RecursiveWithSearch,
        exp.TableAlias,
        exp.BitString,
        exp.HexString,
        exp.ByteString,
        exp.RawString,
        exp.UnicodeString,
        exp.National,
        exp.From,
        exp.Having,
        exp.Fetch,
        exp.Group,
        exp.Cube,
        exp.Rollup,
        exp.GroupingSets,
        exp.Lambda,
        exp.Limit,
        exp.LimitOptions,
        exp.Join,
        exp.Lateral,
        exp.Offset,
        exp.Order,
        exp.Qualify,
        exp.Tuple,
        exp.Table,
        exp.Union,
        exp.Except,
        exp.Intersect,
        exp.Values,
        exp.Select,
        exp.Subquery,
        exp.TableSample,
        exp.Pivot,
        exp.UnpivotColumns,
        exp.Window,
        exp.WindowSpec,
        exp.Where,
        exp.ColumnDef,
        exp.Schema,
        exp.JSONPath,
        exp.JSONPathFilter,
        exp.JSONPathKey,
        exp.JSONPathRecursive,
        exp.JSONPathRoot,
        exp.JSONPathScript,
        exp.JSONPathSlice,
        exp.JSONPathSelector,
        exp.JSONPathSubscript,
        exp.JSONPathUnion,
        exp.JSONPathWildcard,
        exp.FormatJson,
        exp.JSONKeyValue,
        exp.ForClause,
    }
)
_CORE_REFUSED: dict[type, str] = {
    exp.Cache: "CACHE",
    exp.Uncache: "UNCACHE",
    exp.Refresh: "REFRESH",
    exp.LockingStatement: "LOCKING",
    exp.Parameter: "a query parameter",
    exp.SessionParameter: "a session variable",
    exp.Placeholder: "a query parameter",
}
# Clauses of a write statement: the statement itself is judged (root or NESTED_WRITE).
_WRITE_PARTS: frozenset[type] = frozenset({exp.Returning, exp.OnConflict, exp.When, exp.Whens})


@dataclass(slots=True)
class Classification:
    statement_type: str
    action: Action
    is_query: bool
    violations: list[Violation] = field(default_factory=list)
    inventory: Inventory | None = None
    # False: refused as a whole (MERGE), so nothing of the statement is resolved further.
    resolve: bool = True


def statement_type(root: exp.Expr) -> str:
    """A short upper-case name for the root statement: SELECT, UNION, INSERT, COMMIT..."""
    node = root
    while isinstance(node, exp.Subquery):
        node = node.this
    if isinstance(node, exp.Command):
        return str(node.this).upper().split()[0] if node.this else "COMMAND"
    if isinstance(node, (exp.Column, exp.Alias, exp.Identifier)):
        return "UNKNOWN"
    names: dict[type, str] = {exp.Transaction: "BEGIN", exp.TruncateTable: "TRUNCATE", exp.Values: "VALUES"}
    return names.get(type(node), type(node).__name__.upper())


def classify(root: exp.Expr, *, allow_writes: bool, allow_deletes: bool) -> Classification:
    """Statement type, action, and every refused node in the tree."""
    stype = statement_type(root)
    if isinstance(root, QUERY_ROOTS):
        result = Classification(stype, Action.READ, True)
    elif isinstance(root, exp.Merge):
        # MERGE can insert, update and delete at once: never judged as a plain write, writes on
        # or off; nothing of it is resolved further (the analyzer stops on this refusal).
        hint = "Write a separate INSERT or UPDATE statement." if allow_writes else None
        return Classification(
            stype,
            Action.WRITE,
            False,
            [
                violation(
                    "WRITE_NOT_ALLOWED",
                    "MERGE can insert, update and delete in one statement and is never allowed.",
                    hint,
                )
            ],
            resolve=False,
        )
    elif isinstance(root, WRITE_ROOTS):
        result = Classification(stype, Action.WRITE, False)
        if not allow_writes:
            result.violations.append(
                violation("WRITE_NOT_ALLOWED", f"{stype} changes data, and writes are disabled.")
            )
    elif isinstance(root, DELETE_ROOTS):
        result = Classification(stype, Action.DELETE, False)
        if not allow_deletes:
            result.violations.append(
                violation("DELETE_NOT_ALLOWED", f"{stype} deletes data, and deletes are disabled.")
            )
    elif isinstance(root, exp.Summarize):
        # Not metadata: a profile of every column (min, max, distinct counts), blocked ones too.
        return Classification(
            stype,
            Action.ADMIN,
            False,
            [violation("INTROSPECTION_BLOCKED", _SUMMARIZE, _SUMMARIZE_HINT)],
        )
    elif isinstance(root, INTROSPECTION_ROOTS):
        return Classification(
            stype,
            Action.ADMIN,
            False,
            [violation("INTROSPECTION_BLOCKED", f"{stype} reads database metadata, not data.")],
        )
    elif isinstance(root, exp.Command):
        return Classification(
            stype,
            Action.ADMIN,
            False,
            [violation("OPAQUE_STATEMENT", f"{stype} is not a query and cannot be analyzed.")],
        )
    elif isinstance(root, (exp.Column, exp.Alias, exp.Identifier, exp.Literal)) or not isinstance(
        root, (exp.Query, exp.DDL, exp.DML)
    ):
        # Bare words such as ABORT, CHECKPOINT or `LISTEN ch` parse as a column or an
        # alias; the engine runs them as commands.
        action = Action.UNKNOWN if stype == "UNKNOWN" else Action.ADMIN
        return Classification(
            stype,
            action,
            False,
            [violation("STATEMENT_NOT_ALLOWED", f"`{_snippet(root)}` is not a query.")],
        )
    else:
        return Classification(
            stype,
            Action.ADMIN,
            False,
            [violation("STATEMENT_NOT_ALLOWED", f"{stype} is not a query; only SELECT queries run.")],
        )
    found, result.inventory = survey(root)
    result.violations.extend(found)
    return result


@dataclass(slots=True)
class Inventory:
    """Everything later stages need from the tree, gathered in the one walk classify makes."""

    tables: list[exp.Table] = field(default_factory=list)
    columns: list[exp.Column] = field(default_factory=list)
    funcs: list[exp.Func] = field(default_factory=list)
    datatypes: list[exp.DataType] = field(default_factory=list)
    # The Join nodes themselves: max_joins applies per query block (complexity.query_blocks).
    join_nodes: list[exp.Join] = field(default_factory=list)
    # Lambda and comprehension nodes: their variables bind in a body (references.py).
    lambdas: list[exp.Lambda | exp.Comprehension] = field(default_factory=list)
    joins: int = 0
    ctes: int = 0
    windows: int = 0
    aggregations: int = 0
    set_operations: int = 0
    conditions: int = 0
    recursive_ctes: int = 0


# Per node class: (refusal kind or None, inventory bucket or None, counter or None).
_Category = tuple[str | None, str | None, str | None]
_CATEGORIES: dict[type, _Category] = {}


def _categorize(cls: type) -> _Category:
    refusal: str | None = None
    if issubclass(cls, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
        refusal = "NESTED_WRITE"
    elif cls is exp.Into:
        refusal = "SELECT_INTO"
    elif cls is exp.Lock:
        refusal = "LOCKING_CLAUSE"
    elif issubclass(cls, exp.Command):
        refusal = "OPAQUE_STATEMENT"
    elif cls in _CORE_REFUSED:
        refusal = "core"
    elif cls.__module__ in _REFUSED_MODULES:
        if cls not in _MODULE_EXCEPTIONS and cls not in _WRITE_PARTS:
            refusal = "module"
    elif cls.__module__ == "sqlglot.expressions.query" and cls not in _QUERY_MODULE_SAFE:
        refusal = "query"
    bucket = None
    if issubclass(cls, exp.Table):
        bucket = "tables"
    elif issubclass(cls, exp.Column):
        bucket = "columns"
    elif issubclass(cls, exp.Func):
        bucket = "funcs"
    elif issubclass(cls, exp.DataType):
        bucket = "datatypes"
    elif cls is exp.Join:
        bucket = "join_nodes"
    elif cls is exp.Lambda or cls is exp.Comprehension:
        bucket = "lambdas"
    counter = None
    if cls is exp.Join:
        counter = "joins"
    elif cls is exp.CTE:
        counter = "ctes"
    elif cls is exp.Window:
        counter = "windows"
    elif issubclass(cls, exp.AggFunc):
        counter = "aggregations"
    elif issubclass(cls, exp.SetOperation):
        counter = "set_operations"
    elif issubclass(cls, exp.Predicate):
        counter = "conditions"
    elif cls is exp.With:
        counter = "with"
    cat = (refusal, bucket, counter)
    _CATEGORIES[cls] = cat
    return cat


def survey(root: exp.Expr) -> tuple[list[Violation], Inventory]:
    """One walk over the tree: refused nodes (one violation per kind) and the inventory."""
    seen: dict[str, Violation] = {}
    inv = Inventory()
    buckets: dict[str, list[Any]] = {
        "tables": inv.tables,
        "columns": inv.columns,
        "funcs": inv.funcs,
        "datatypes": inv.datatypes,
        "join_nodes": inv.join_nodes,
        "lambdas": inv.lambdas,
    }
    for node in root.walk():
        cls = type(node)
        refusal, bucket, counter = _CATEGORIES.get(cls) or _categorize(cls)
        if bucket is not None:
            buckets[bucket].append(node)
        if counter is not None:
            if counter == "with":
                inv.recursive_ctes += 1 if node.args.get("recursive") else 0
            elif counter != "aggregations" or not isinstance(node.parent, exp.Window):
                setattr(inv, counter, getattr(inv, counter) + 1)
        if cls is exp.Interval:
            bad = _bad_interval_unit(node)
            if bad:
                seen.setdefault(
                    "UNSUPPORTED_SYNTAX",
                    violation(
                        "UNSUPPORTED_SYNTAX",
                        f"`{bad}` is not an interval unit.",
                        "Write intervals as INTERVAL '3 days' or INTERVAL 3 DAY.",
                    ),
                )
        if cls is exp.Select and not node.expressions and not isinstance(node.parent, exp.Exists):
            # PostgreSQL runs `SELECT` / `SELECT FROM t` (no columns); nothing needs it but the
            # `EXISTS (SELECT FROM t WHERE ...)` idiom, which asks only whether a row exists.
            seen.setdefault(
                "UNSUPPORTED_SYNTAX",
                violation("UNSUPPORTED_SYNTAX", "A SELECT without any columns.", "Select a column."),
            )
        if refusal is None or node is root:
            continue
        code, message = refusal, ""
        if refusal == "NESTED_WRITE":
            message = f"{statement_type(node)} is nested inside the query."
        elif refusal == "SELECT_INTO":
            message = "SELECT ... INTO would create a table."
        elif refusal == "LOCKING_CLAUSE":
            message = "FOR UPDATE / FOR SHARE would lock rows."
        elif refusal == "OPAQUE_STATEMENT":
            message = f"`{_snippet(node)}` cannot be analyzed."
        elif refusal == "core":
            code = "UNSUPPORTED_SYNTAX"
            message = f"The query uses {_CORE_REFUSED[cls]} (`{_snippet(node)}`), which is not run."
        elif refusal == "module":
            if cls is exp.NextValueFor:
                code, message = "FUNCTION_NOT_ALLOWED", "NEXT VALUE FOR advances a sequence."
            elif cls is exp.Summarize:
                seen.setdefault(
                    "INTROSPECTION_BLOCKED", violation("INTROSPECTION_BLOCKED", _SUMMARIZE, _SUMMARIZE_HINT)
                )
                continue
            else:
                code = "STATEMENT_NOT_ALLOWED"
                message = f"The query contains {cls.__name__.upper()} (`{_snippet(node)}`)."
        else:
            code = "UNSUPPORTED_SYNTAX"
            message = f"The query contains {cls.__name__} (`{_snippet(node)}`), which is not run."
        if code not in seen:
            seen[code] = violation(code, message)
    return list(seen.values()), inv


# DuckDB's SUMMARIZE is no metadata: it profiles every column it reads (min, max, distinct counts).
_SUMMARIZE = "SUMMARIZE profiles every column of what it reads; it is not run in Code Mode."
_SUMMARIZE_HINT = (
    "Compute the figures you need over the columns you name: SELECT min(x), max(x), avg(x), "
    "count(DISTINCT x), count(*) - count(x) AS nulls FROM t."
)

_UNIT_WORDS = """year month day hour minute second week quarter millisecond microsecond decade
century millennium millennia centuries mon min sec ms us h d y m w hr yr ns nanosecond epoch dow
doy isodow isoyear"""
_UNITS = frozenset(_UNIT_WORDS.split())


def _bad_interval_unit(node: exp.Expr) -> str | None:
    """A unit sqlglot kept from an interval string but no engine knows.

    sqlglot splits INTERVAL '90 da;ys' into '90' and the unit DA, silently dropping the
    rest: what would run is no longer what was written, so such units are refused.
    """
    unit = node.args.get("unit")
    if unit is None:
        return None
    parts = [unit.this, unit.expression] if isinstance(unit, exp.IntervalSpan) else [unit]
    for part in parts:
        if not isinstance(part, exp.Var):
            return None if part is None else generate(part)
        name = part.name.lower()
        if name not in _UNITS and name.rstrip("s") not in _UNITS:
            return part.name
    return None


def _snippet(node: exp.Expr, limit: int = 60) -> str:
    try:
        text = generate(node, comments=False)
    except Exception:
        text = ""
    text = text or type(node).__name__.upper()
    return text if len(text) <= limit else text[: limit - 3] + "..."
