"""Columns: blocked ones (named or reached through a star) and unknown ones, with suggestions
that never reveal a hidden column."""

from __future__ import annotations

import difflib

from sqlglot import exp

from ...models import Violation
from ...schema.snapshot import SchemaSnapshot
from ..codes import violation
from ..foreign import name_hint
from ..names import unnamed_item_hint
from ..references import clause_label
from .base import RuleContext, RuleSet


def blocked_columns(ctx: RuleContext) -> list[Violation]:
    """Blocked and unknown columns; records ``ctx.columns``, the sorted "table.column" allowed reads.

    Reads ``ctx.tables`` (blocked_tables): only columns of known tables are listed.
    """
    refs, snapshot, rules, known_tables = ctx.refs, ctx.snapshot, ctx.rules, ctx.tables
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
            "SET": "written or read in the UPDATE's SET",
            "ON CONFLICT": "written or read in ON CONFLICT",
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
                    _visible_hint(table, snapshot, rules, where),
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
        if any(q in shown for q in _TYPOGRAPHIC_QUOTES):
            # A curly-quoted word is read as a name: the model meant a string in straight quotes.
            text = unk.name.strip("".join(_TYPOGRAPHIC_QUOTES)).replace("'", "''")
            hint = (
                "This looks like text in typographic (curly) quotes: write string literals "
                f"with straight single quotes ('{text}') and names plain or in straight double quotes."
            )
        elif (
            not unk.qualifier
            and not _suggestions_match(unk.name, suggestions)
            and _quoted_value(ctx.root, unk.name)
        ):
            # status = "completed": a string in double quotes (MySQL, BigQuery) is a name here.
            written = _as_written(ctx.code, unk.name)
            text = written.replace("'", "''")
            hint = (
                f'"{written}" in double quotes is a name, and no column is called so: write text '
                f"in single quotes ('{text}')."
            )
        elif (
            not unk.qualifier
            and not _suggestions_match(unk.name, suggestions)
            and (foreign := name_hint(unk.name)) is not None
        ):
            hint = foreign  # ROWNUM, SYSDATE: another dialect's pseudo-column
        elif not _suggestions_match(unk.name, suggestions) and (
            named := unnamed_item_hint(ctx.root, shown, ctx.rules.traits.sqlglot_dialect, by_call=True)
        ):
            hint = named  # ORDER BY count over count(*): DuckDB names it "count_star()"
        elif not unk.qualifier and _date_part_argument(ctx.root, unk.name):
            # DATEDIFF(day, a, b), DATEADD(day, 7, d): another dialect's date part, read as a column.
            hint = (
                f"{DATE_PART_HINT} `{unk.name}` is read as a column name here; write the date "
                "arithmetic the way this database does."
            )
        elif unk.name == "*" and unk.qualifier and unk.qualifier in suggestions:
            # `s.*` where `s` is a column (a struct or a row value), not a table: "Did you mean s?"
            # would only repeat it.
            q = unk.qualifier
            hint = (
                f"`{q}` is a column here, not a table or alias: select its fields by name "
                f"(`{q}.field`) instead of `{q}.*`."
            )
        if unk.name == "*" or (unk.qualifier and not unk.candidates and unk.name != "*"):
            msg = f"`{shown}`: no table or alias named `{unk.qualifier}` is in scope."
        else:
            msg = f"Column `{shown}` does not exist in the tables this query reads."
        out.append(violation("UNKNOWN_COLUMN", msg, hint))
    ctx.columns = columns
    return out


_TYPOGRAPHIC_QUOTES = ("\u2018", "\u2019", "\u201c", "\u201d")

# The start of the hint for another dialect's date part read as a column; the analyzer appends the
# engine's dialect notes to it.
DATE_PART_HINT = "DATEDIFF(day, ...), DATEADD(day, ...) and DATEPART(day, ...) belong to other SQL dialects:"
_DATE_PARTS = frozenset(
    [
        "year",
        "years",
        "yy",
        "yyyy",
        "quarter",
        "qq",
        "q",
        "month",
        "months",
        "mm",
        "m",
        "week",
        "weeks",
        "wk",
        "ww",
        "isoweek",
        "iso_week",
        "day",
        "days",
        "dd",
        "d",
        "dayofyear",
        "dy",
        "y",
        "weekday",
        "dw",
        "hour",
        "hours",
        "hh",
        "minute",
        "minutes",
        "mi",
        "n",
        "second",
        "seconds",
        "ss",
        "s",
        "millisecond",
        "ms",
        "microsecond",
        "mcs",
        "nanosecond",
        "ns",
        "epoch",
    ]
)


def _suggestions_match(name: str, suggestions: list[str]) -> bool:
    """Whether a suggestion differs from ``name`` only in case (then it is a misspelt name)."""
    return any(s.lower() == name.lower() for s in suggestions)


def _quoted_value(root: exp.Expr, name: str) -> bool:
    """Whether ``name`` is written in double quotes where a value is compared (``= "x"``, ``IN
    ("x", ...)``, ``LIKE "x%"``): most likely text in another dialect's quotes."""
    for c in root.find_all(exp.Column):
        if c.name.lower() != name.lower() or c.table or not c.this.quoted:
            continue
        parent = c.parent
        if isinstance(parent, exp.In) or (
            isinstance(parent, (exp.Binary, exp.Like, exp.ILike)) and parent.expression is c
        ):
            return True
    return False


def _as_written(code: str, name: str) -> str:
    """``name`` in the case the text writes it in double quotes (the tree may hold it folded)."""
    at = code.lower().find(f'"{name.lower()}"')
    return code[at + 1 : at + 1 + len(name)] if at >= 0 and len(code) == len(code.lower()) else name


def _date_part_argument(root: exp.Expr, name: str) -> bool:
    """Whether ``name`` is a date part's word and some call of the query takes it as an argument."""
    if name.lower() not in _DATE_PARTS:
        return False
    return any(
        c.name.lower() == name.lower() and not c.table and isinstance(c.parent, exp.Func)
        for c in root.find_all(exp.Column)
    )


# The hint of a star over a table with a blocked column lists at most this many visible columns.
HINT_COLUMNS = 40


def _visible_hint(table: str, snapshot: SchemaSnapshot, rules: RuleSet, where: str = "*") -> str:
    """What to write instead of the construct that reached a blocked column without naming it
    (``where``: a star, a whole row, a NATURAL join, a PIVOT, a name an alias list gives it), and
    the visible columns of ``table`` (the schema resource shows them too), never a blocked one."""
    if where == "*":
        lead = "Name the columns you need instead of the star"
    elif where == "PIVOT":
        lead = "Pivot a subquery of the columns you need, or name the columns to group by (GROUP BY ...)"
    elif where.startswith("a "):
        lead = f"Name the columns you need instead of {where}"
    else:  # a name a column list gives it by position, or a join's merged columns
        lead = "Name the columns you need by their own names"
    info = snapshot.table(table)
    columns = info.columns if info is not None else ()
    visible = [c.name for c in columns if not rules.column_blocked(snapshot, table, c.name)]
    if not visible:
        return f"{lead}; the schema resource lists the visible ones."
    shown = ", ".join(visible[:HINT_COLUMNS])
    extra = len(visible) - HINT_COLUMNS
    more = f" and {extra} more (see the schema resource)" if extra > 0 else ""
    return f"{lead}; the visible ones: {shown}{more}."


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
