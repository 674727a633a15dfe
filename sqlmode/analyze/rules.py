"""Policy rules over a resolved statement: tables, columns, functions, introspection, limits.

Each check returns violations; none raises. The rules are derived once per Analyzer
(:class:`RuleSet`) so that analyzing a query does no config work.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from ..config import Settings
from ..models import Complexity, Violation
from ..schema.snapshot import SchemaSnapshot
from .codes import violation
from .complexity import Block, block_label, points
from .functions import FunctionPolicy, argument_problem, compile_policy, generated_rows, refusal_code
from .parse import sqlglot_dialect
from .references import References, clause_label
from .sizes import size_problem

# Schemas that are catalogs, not data.
CATALOG_SCHEMAS = frozenset({"information_schema", "pg_catalog", "pg_toast", "pg_temp"})
CATALOG_TABLE_PREFIXES = ("pg_", "duckdb_", "sqlite_", "pragma_")
# Catalog relations that leak data or secrets even when introspection is allowed:
# pg_stats holds most-common values and histograms of every column, blocked ones included.
ALWAYS_BLOCKED_CATALOG = frozenset(
    {
        "pg_stats",
        "pg_statistic",
        "pg_stats_ext",
        "pg_authid",
        "pg_shadow",
        "pg_user_mapping",
        "duckdb_secrets",
    }
)
DEFAULT_SCHEMA = {"postgres": "public", "duckdb": "main"}
# Function-name prefixes that only a schema of system functions may carry.
SYSTEM_FUNCTION_SCHEMAS = {
    "postgres": frozenset({"pg_catalog"}),
    "duckdb": frozenset({"main", "system", "pg_catalog"}),
}
SMALL_SOURCE_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Everything derived from Settings once: limits, switches, the function policy."""

    dialect: str
    functions: FunctionPolicy
    block_introspection: bool
    max_depth: int
    max_joins: int
    max_fields: int
    max_complexity: int
    max_rows: int
    allow_writes: bool
    allow_deletes: bool
    extra_blocked_tables: frozenset[str]
    extra_blocked_columns: frozenset[tuple[str, str]]

    @classmethod
    def from_settings(cls, settings: Settings) -> RuleSet:
        cm = settings.code_mode
        # Bare names too: a reference the snapshot cannot key (ambiguous, unknown) still matches.
        cols = {(b.table, b.column) for b in cm.blocked_field_names}
        return cls(
            dialect=settings.dialect,
            functions=compile_policy(settings.dialect, tuple(cm.functions.allow), tuple(cm.functions.deny)),
            block_introspection=cm.cedar_policies.block_introspection,
            max_depth=cm.cedar_policies.max_depth,
            max_joins=cm.max_joins,
            max_fields=cm.cedar_policies.max_fields,
            max_complexity=cm.max_complexity,
            max_rows=cm.max_rows,
            allow_writes=cm.allow_writes,
            allow_deletes=cm.allow_deletes,
            extra_blocked_tables=frozenset(b.table for b in cm.blocked_table_names),
            extra_blocked_columns=frozenset(cols),
        )

    def table_blocked(self, snapshot: SchemaSnapshot, name: str) -> bool:
        return snapshot.is_table_blocked(name) or name in self.extra_blocked_tables

    def column_blocked(self, snapshot: SchemaSnapshot, table: str, column: str) -> bool:
        return (
            snapshot.is_column_blocked(table, column)
            or (table, column) in self.extra_blocked_columns
            or table in self.extra_blocked_tables
        )


# -- tables -----------------------------------------------------------------------------


def check_tables(
    refs: References, snapshot: SchemaSnapshot, rules: RuleSet, code: str
) -> tuple[list[Violation], set[str]]:
    """Violations for table references, and the set of known base tables read."""
    out: list[Violation] = []
    seen: set[tuple[str, str]] = set()
    known: set[str] = set()
    for table in refs.tables:
        name = table.name.lower()
        db = table.text("db").lower()
        catalog = table.text("catalog").lower()
        shown = ".".join(p for p in (catalog, db, name) if p)
        ident = table.this
        if (
            isinstance(ident, exp.Identifier)
            and ident.quoted
            and (f"'{table.name}'" in code or any(ch in table.name for ch in "/:\\") or "." in table.name)
        ):
            _add(out, seen, "FILE_ACCESS", shown, f"`{table.name}` is a file or URL, not a table.")
            continue
        is_catalog = db in CATALOG_SCHEMAS or name.startswith(CATALOG_TABLE_PREFIXES)
        if is_catalog and (rules.table_blocked(snapshot, name) or snapshot.table(name) is None):
            if rules.block_introspection or name in ALWAYS_BLOCKED_CATALOG or db == "pg_toast":
                _add(out, seen, "INTROSPECTION_BLOCKED", shown, f"`{shown}` is a system catalog.")
            continue
        # The snapshot's key: `sales.orders` when several schemas have an `orders` (see snapshot.py).
        key = snapshot.key_of(name, db)
        if rules.table_blocked(snapshot, key):
            msg = f"Table `{key}` is blocked by policy (named as `{shown}`)."
            _add(out, seen, "TABLE_BLOCKED", key, msg)
            continue
        info = snapshot.table(key)
        if info is None and not db and (same := snapshot.ambiguous(name)):
            exposed = [k for k in same if snapshot.is_table_exposed(k)] or same
            msg = f"Table `{name}` exists in several schemas; the query must say which."
            _add(out, seen, "AMBIGUOUS_TABLE", name, msg, f"Write {' or '.join(exposed)}.")
            continue
        if info is None:
            exposed = sorted(
                t
                for t in snapshot.tables
                if snapshot.is_table_exposed(t) and not rules.table_blocked(snapshot, t)
            )
            close = difflib.get_close_matches(name, exposed, n=3, cutoff=0.5)
            hint = f"Did you mean {', '.join(close)}? " if close else ""
            hint += f"Exposed tables: {', '.join(exposed[:30])}."
            _add(out, seen, "UNKNOWN_TABLE", shown, f"Table `{shown}` does not exist.", hint)
            continue
        if not snapshot.is_table_exposed(key):
            _add(out, seen, "TABLE_NOT_ALLOWED", key, f"Table `{key}` is not exposed to Code Mode.")
            continue
        expected_schema = (info.schema or DEFAULT_SCHEMA.get(rules.dialect, "")).lower()
        if db and db != expected_schema:
            _add(
                out,
                seen,
                "TABLE_NOT_ALLOWED",
                shown,
                f"`{shown}` names `{name}` through schema `{db}`; "
                f"the exposed table lives in `{expected_schema}`.",
            )
            continue
        if catalog and catalog != snapshot.database.lower():
            _add(out, seen, "TABLE_NOT_ALLOWED", shown, f"`{shown}` names another catalog (`{catalog}`).")
            continue
        known.add(key)
    return out, known


# -- columns ----------------------------------------------------------------------------


def check_columns(
    refs: References, snapshot: SchemaSnapshot, rules: RuleSet, known_tables: set[str]
) -> tuple[list[Violation], list[str]]:
    """Blocked and unknown columns; and the sorted "table.column" list of allowed reads."""
    out: list[Violation] = []
    columns: list[str] = []
    blocked: dict[str, str] = {}
    for (table, column), where in sorted(refs.reads.items()):
        if rules.table_blocked(snapshot, table):
            continue  # the table violation already says everything
        if rules.column_blocked(snapshot, table, column):
            blocked.setdefault(f"{table}.{column}", clause_label(where))
            continue
        if table in known_tables:
            columns.append(f"{table}.{column}")
    for name, where in blocked.items():
        how = {
            "*": "read through *",
            "SELECT": "read in the SELECT list",
            "INSERT": "written by the INSERT",
        }.get(where, f"read in {where}" if not where.startswith("a ") else f"read through {where}")
        table, _, column = name.rpartition(".")  # the table may be qualified: sales.orders.note
        if column in refs.named:
            out.append(violation("COLUMN_BLOCKED", f"Column `{name}` is blocked by policy and is {how}."))
        else:
            # The query never named it: say that much, not which column.
            out.append(
                violation(
                    "COLUMN_BLOCKED",
                    f"`{table}` has a column that is blocked by policy, and it is {how}.",
                    "Name the columns you need; the schema resource lists the visible ones.",
                )
            )
    reported: set[tuple[str, str]] = set()
    for unk in refs.unknown_columns:
        key = (unk.qualifier, unk.name)
        if key in reported:
            continue
        reported.add(key)
        suggestions = _suggestions(unk.name, unk.candidates, snapshot, rules, refs.named)
        shown = f"{unk.qualifier}.{unk.name}" if unk.qualifier else unk.name
        hint = (
            f"Did you mean {', '.join(suggestions)}?"
            if suggestions
            else "Check the column names in the schema resource."
        )
        if unk.name == "*" or (unk.qualifier and not unk.candidates and unk.name != "*"):
            msg = f"`{shown}`: no table or alias named `{unk.qualifier}` is in scope."
        else:
            msg = f"Column `{shown}` does not exist in the tables this query reads."
        out.append(violation("UNKNOWN_COLUMN", msg, hint))
    return out, columns


def _suggestions(
    name: str,
    candidates: list[tuple[str, str, str]],
    snapshot: SchemaSnapshot,
    rules: RuleSet,
    named: frozenset[str],
) -> list[str]:
    """Close visible names for a "did you mean": never a blocked column, whether its table
    is read directly or through a CTE or subquery star, unless the query named it."""
    visible = set()
    for shown, table, column in candidates:
        hidden = bool(table) and rules.column_blocked(snapshot, table, column)
        hidden = hidden or (not table and _is_blocked_name(shown, snapshot, rules))
        if not hidden or shown in named:
            visible.add(shown)
    ordered = sorted(visible)
    return difflib.get_close_matches(name, ordered, n=3, cutoff=0.5) or ordered[:8]


def _is_blocked_name(name: str, snapshot: SchemaSnapshot, rules: RuleSet) -> bool:
    """A computed output spelled like a blocked column or table (e.g. passed on by VALUES)."""
    return any(c == name for _, c in snapshot.blocked_columns) or any(
        c == name for _, c in rules.extra_blocked_columns
    )


# -- functions --------------------------------------------------------------------------


def check_functions(
    funcs: list[exp.Func], datatypes: list[exp.DataType], rules: RuleSet
) -> tuple[list[Violation], list[str]]:
    """The allowlist over every call, plus bounds on generators; returns the names used."""
    out: list[Violation] = []
    names: set[str] = set()
    refused: dict[str, str] = {}
    policy = rules.functions
    for node in funcs:
        if isinstance(node, (exp.And, exp.Or, exp.Xor)):
            continue
        name = policy.name_of(node)
        parent = node.parent
        if isinstance(parent, exp.Dot) and node.arg_key == "expression":
            prefix = parent.this.sql().lower() if parent.this is not None else ""
            if prefix not in SYSTEM_FUNCTION_SCHEMAS.get(rules.dialect, frozenset()):
                refused.setdefault(f"{prefix}.{name}", "FUNCTION_NOT_ALLOWED")
                continue
        table = node.parent if isinstance(node.parent, exp.Table) else None
        if table is not None and table.text("db"):
            prefix = table.text("db").lower()
            if prefix not in SYSTEM_FUNCTION_SCHEMAS.get(rules.dialect, frozenset()):
                refused.setdefault(f"{prefix}.{name}", "FUNCTION_NOT_ALLOWED")
                continue
        if not policy.allows(node):
            refused.setdefault(name, refusal_code(name))
            continue
        names.add(name)
        problem = argument_problem(node)
        if problem:
            out.append(violation("FUNCTION_ARGUMENT_LIMIT", f"{problem}."))
    if not out and not refused:
        # Nested builders multiply: bounded before the engine folds them.
        problem = size_problem(funcs)
        if problem:
            out.append(violation("FUNCTION_ARGUMENT_LIMIT", f"{problem[0].upper()}{problem[1:]}."))
    for name, code in refused.items():
        if code == "FUNCTION_NOT_ALLOWED":
            out.append(
                violation(
                    code,
                    f"Function `{name}` is not on the allowlist (side effects, files, network, "
                    "secrets, or SQL inside strings are never allowed).",
                )
            )
        elif code == "FILE_ACCESS":
            out.append(violation(code, f"Function `{name}` reads files or URLs."))
        else:
            out.append(violation(code, f"Function `{name}` reads database metadata."))
    if rules.block_introspection:
        for dtype in datatypes:
            text = dtype.sql(sqlglot_dialect(rules.dialect)).lower()
            if text.startswith("reg"):
                out.append(
                    violation("INTROSPECTION_BLOCKED", f"A cast to `{text}` looks up system catalogs.")
                )
                break
    return out, sorted(names)


# -- limits -----------------------------------------------------------------------------


def check_limits(refs: References, rules: RuleSet, blocks: list[Block], depth: int) -> list[Violation]:
    out = []
    if depth > rules.max_depth:
        msg = f"Queries are nested {depth} levels deep; at most {rules.max_depth}."
        out.append(violation("TOO_DEEP", msg, _too_deep_hint(refs)))
    out += [_too_many_joins(b, rules.max_joins) for b in blocks if b.joins > rules.max_joins][:3]
    if refs.output_fields > rules.max_fields:
        out.append(
            violation(
                "TOO_MANY_FIELDS",
                f"The query returns {refs.output_fields} columns; at most {rules.max_fields}.",
            )
        )
    return out


def check_complexity(root: exp.Expr, complexity: Complexity, rules: RuleSet) -> list[Violation]:
    """The whole-query bound: the score, what it is made of and the part that weighs most."""
    if complexity.score <= rules.max_complexity:
        return []
    top = points(complexity)[:4]
    parts = ", ".join(f"{k.replace('_', ' ')} {getattr(complexity, k)} ({p})" for k, p in top)
    msg = (
        f"The complexity score is {complexity.score}; at most {rules.max_complexity} "
        f"(code_mode.max_complexity): {parts}."
    )
    heavy = _heaviest_part(root)
    if heavy is not None:
        label, tables, joins = heavy
        hint = (
            f"The heaviest part is {label} ({tables} table reads, {joins} joins). Answer in "
            "steps: run it as a query of its own first, then ask the rest with its result in "
            "mind; or drop CTEs, subqueries and windows the answer does not need."
        )
    else:
        hint = "Answer in steps, or drop subqueries, set operations and windows the answer does not need."
    return [violation("TOO_COMPLEX", msg, hint)]


def _heaviest_part(root: exp.Expr) -> tuple[str, int, int] | None:
    """The CTE or subquery with the most table reads and joins below it (only on refusal)."""
    best: tuple[int, str, int, int] | None = None
    for node in root.find_all(exp.CTE, exp.Subquery):
        body = node.this
        if not isinstance(body, exp.Query):
            continue
        tables = sum(1 for _ in body.find_all(exp.Table))
        joins = sum(1 for _ in body.find_all(exp.Join))
        if best is None or tables + joins > best[0]:
            select = body if isinstance(body, exp.Select) else body.find(exp.Select)
            if select is None:
                continue
            best = (tables + joins, block_label(select).removeprefix("a branch of "), tables, joins)
    return None if best is None else best[1:]


def _too_deep_hint(refs: References) -> str | None:
    """Name the most deeply nested block and how to lift it out (None: the default hint)."""
    deepest, level = None, -1
    for scope in refs.scopes:
        d, s = 0, scope.parent
        while s is not None:
            d, s = d + 1, s.parent
        if d > level:
            deepest, level = scope, d
    if deepest is None:
        return None
    node = deepest.expression
    select = node if isinstance(node, exp.Select) else node.find(exp.Select)
    if select is None:
        return None
    return (
        f"The most deeply nested part is {block_label(select)}. Define the inner "
        "subqueries as CTEs (WITH name AS (...)) and read them by name, or join instead of "
        "nesting: a CTE read by another CTE adds no nesting."
    )


def _too_many_joins(block: Block, limit: int) -> Violation:
    """The block, its joins and a concrete split: which sources to join in a CTE of their own."""
    name = block.label[0].upper() + block.label[1:]
    msg = (
        f"{name} joins {block.joins + 1} tables ({block.joins} joins); "
        f"at most {limit} joins per query block (code_mode.max_joins)."
    )
    # The smallest first CTE that leaves the block itself within the limit.
    sources = block.sources
    take = min(limit + 1, max(2, len(sources) - limit))
    first, rest = sources[:take], sources[take:]
    hint = (
        f"Split {block.label}: join {', '.join(first)} in a CTE of its own (pre-aggregate there "
        f"if the answer allows), then join that CTE with {', '.join(rest)}"
    )
    hint += "." if len(rest) <= limit else " (split again the same way: it is still too many)."
    hint += f" The limit counts the joins of each SELECT: a CTE or subquery may join {limit + 1} tables."
    return violation("TOO_MANY_JOINS", msg, hint)


def check_recursion(root: exp.Expr) -> list[Violation]:
    """Recursive CTEs must be bounded: a WHERE, a join to a table, or a LIMIT in the recursive part.

    Without one, ``WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)`` runs until
    a limit kills it (DuckDB materializes the whole recursion before any outer LIMIT applies).
    """
    out = []
    for with_ in root.find_all(exp.With):
        if not with_.args.get("recursive"):
            continue
        for cte in with_.expressions:
            body = cte.this
            if not isinstance(body, exp.SetOperation) or body.args.get("limit") is not None:
                continue
            name = cte.alias_or_name.lower()
            step = body.expression.unnest() if isinstance(body.expression, exp.Subquery) else body.expression
            if not isinstance(step, exp.Select):
                continue
            refs = [t for t in step.find_all(exp.Table) if t.name.lower() == name and not t.args.get("db")]
            if not refs:
                continue  # not actually recursive
            others = [t for t in step.find_all(exp.Table) if t.name.lower() != name]
            if step.args.get("where") is None and step.args.get("limit") is None and not others:
                out.append(
                    violation(
                        "UNBOUNDED_RECURSION",
                        f"The recursive CTE `{cte.alias_or_name}` has no condition that ends the recursion.",
                    )
                )
    return out


class _Groups:
    """Union-find over source keys."""

    def __init__(self, keys: list[str]):
        self.parent = {k: k for k in keys}

    def find(self, k: str) -> str:
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, items: set[str]) -> None:
        items = {i for i in items if i in self.parent}
        if len(items) < 2:
            return
        first, *rest = items
        for r in rest:
            self.parent[self.find(r)] = self.find(first)

    def groups(self) -> list[list[str]]:
        out: dict[str, list[str]] = {}
        for k in self.parent:
            out.setdefault(self.find(k), []).append(k)
        return list(out.values())


def check_cartesian(refs: References) -> list[Violation]:
    """Sources in one FROM that no join condition or WHERE predicate connects."""
    out = []

    def keys_in(node: exp.Expr | None) -> set[str]:
        found: set[str] = set()
        if node is not None:
            for col in node.find_all(exp.Column):
                found |= refs.column_sources.get(id(col), set())
        return found

    for scope in refs.scopes:
        expr = scope.expression
        if not isinstance(expr, exp.Select) or not expr.args.get("joins"):
            continue
        try:
            selected = scope.selected_sources
        except Exception:
            continue
        keys = [k.lower() for k in selected]
        if len(keys) < 2:
            continue
        groups = _Groups(keys)
        from_ = expr.args.get("from_")
        previous = (from_.this.alias_or_name or "").lower() if from_ is not None else ""
        for join in expr.args.get("joins") or []:
            target = join.this
            name = (target.alias_or_name or "").lower()
            left, previous = previous, name
            if str(join.args.get("kind") or "").upper() == "CROSS":
                # An explicit CROSS JOIN states the intent; it binds to the source just before
                # it, so `FROM a, b CROSS JOIN c` still leaves the comma join a, b unconnected.
                groups.union({left, name})
                continue
            if (
                isinstance(target, exp.Lateral)
                or join.args.get("using")
                or str(join.args.get("method") or "").upper() in ("NATURAL", "POSITIONAL")
            ):
                # lateral / USING / NATURAL joins connect; POSITIONAL pairs rows one to one
                groups.union(set(keys))
                continue
            linked = keys_in(join.args.get("on"))
            if isinstance(target, exp.Table) and not isinstance(target.this, exp.Identifier):
                linked |= keys_in(target.this)  # a table function correlated to earlier sources
            if isinstance(target, exp.Unnest):
                linked |= keys_in(target)
            groups.union(linked | {name})
        where = expr.args.get("where")
        if where is not None:
            for conj in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
                groups.union(keys_in(conj))
        parts = groups.groups()
        if len(parts) < 2:
            continue
        lookup = {k.lower(): (k, v[1]) for k, v in selected.items()}
        big = [g for g in parts if not all(_is_small(lookup[k][1]) for k in g)]
        if len(big) > 1:
            shown = " and ".join(", ".join(_shown(lookup[k][1], k) for k in g) for g in big[:3])
            out.append(
                violation(
                    "CARTESIAN_PRODUCT",
                    f"{shown} are combined without a join condition: every row meets every row.",
                )
            )
    return out


def _shown(source: object, key: str) -> str:
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
        return source.name if source.name.lower() == key else f"{source.name} ({key})"
    return key


def _is_small(source: object) -> bool:
    """A source that yields few rows: one aggregate row, a small VALUES, a bounded generator."""
    if isinstance(source, Scope):
        expr = source.expression
        if isinstance(expr, exp.Select):
            limit = expr.args.get("limit")
            if isinstance(limit, exp.Limit) and isinstance(limit.expression, exp.Literal):
                try:
                    return int(limit.expression.this) <= SMALL_SOURCE_ROWS
                except ValueError:
                    return False
            has_agg = any(p.find(exp.AggFunc) for p in expr.expressions)
            return has_agg and not expr.args.get("group")
        if isinstance(expr, exp.Values):
            return len(expr.expressions) <= SMALL_SOURCE_ROWS
        return False
    if isinstance(source, exp.Table) and not isinstance(source.this, exp.Identifier):
        fn = source.this
        if isinstance(fn, exp.Func):
            rows = generated_rows(fn) if fn.args.get("end") is not None else None
            if rows is not None:
                return rows <= SMALL_SOURCE_ROWS
            return isinstance(fn, (exp.Unnest, exp.Explode))
    return False


def _add(
    out: list[Violation],
    seen: set[tuple[str, str]],
    code: str,
    key: str,
    msg: str,
    hint: str | None = None,
) -> None:
    if (code, key) in seen:
        return
    seen.add((code, key))
    out.append(violation(code, msg, hint))
