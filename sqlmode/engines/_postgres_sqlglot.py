"""Fixes to sqlglot's PostgreSQL dialect, applied once when the PostgreSQL analyzer is built.

**date_part is not EXTRACT.** sqlglot 30 reads ``date_part('year', ts)`` as the same node as
``EXTRACT(YEAR FROM ts)`` and renders both as EXTRACT. Since PostgreSQL 14 they differ in type:
``date_part`` returns double precision, ``EXTRACT`` numeric. What runs is the rendering, so a
query written with ``date_part`` answered with numerics (text in the JSON answer: ``"2024"``
where the database's own reading of the query gives the number 2024). The round-trip check
cannot see it: both texts read back as the same tree.

Here ``date_part`` with a literal field is read as that same EXTRACT node, marked in its meta,
and the generator renders a marked node as the ``DATE_PART`` call it was written as; everything
that analyzes EXTRACT (function lists, explanations, the engine check) is unchanged. A field
that is not a string literal (``date_part(unit_column, ts)``), which sqlglot turned into a
keyword (the column's name as the unit), stays the call it was: ``date_part(unit_column, ts)``.

**log10 is not log(10, x).** sqlglot reads ``log10(x)`` as ``LOG(10, x)``; PostgreSQL's two-argument
``log`` exists only for numeric, so ``log10(100)`` (double precision, 2) came back as the numeric
2.0000000000000000. ``log10`` is read as that same node, marked, and rendered as written.

sqlglot compiles its parser and generator (sqlglotc), so their tables' entries are replaced, for
the process, as for DuckDB (_duckdb_sqlglot.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp
from sqlglot.generators.postgres import PostgresGenerator
from sqlglot.parsers.postgres import PostgresParser
from sqlglot.tokens import TokenType

__all__ = ["DATE_PART_META", "LOG10_META", "install"]

#: The meta key marking an EXTRACT node written as ``date_part``.
DATE_PART_META = "sqlmode_date_part"
#: The meta key marking a LOG node written as ``log10``.
LOG10_META = "sqlmode_log10"


def _parse_date_part(parser: Any) -> exp.Expr:
    """``date_part(field, source)``: the EXTRACT node, marked, when the field is a string literal."""
    part = parser._parse_type()
    parser._match(TokenType.COMMA)
    value = parser._parse_bitwise()
    if isinstance(part, exp.Literal) and part.is_string:
        node = parser.expression(exp.Extract(this=exp.var(part.name.upper()), expression=value))
        node.meta[DATE_PART_META] = True
        return node
    args = [a for a in (part, value) if a is not None]
    return parser.expression(exp.Anonymous(this="date_part", expressions=args))


# sqlglot's own, taken when this module loads (before install() can replace it): its TRANSFORMS
# entry if it has one, else the generator's method.
_SQLGLOT_EXTRACT: Callable[[Any, exp.Extract], str] = (
    PostgresGenerator.TRANSFORMS.get(exp.Extract) or PostgresGenerator.extract_sql
)


def _extract(gen: Any, node: exp.Extract) -> str:
    """A marked node as ``DATE_PART('field', source)``; any other EXTRACT as sqlglot renders it."""
    if node.meta.get(DATE_PART_META) and isinstance(node.this, exp.Var):
        return gen.func("DATE_PART", exp.Literal.string(node.this.name.lower()), node.expression)
    return str(_SQLGLOT_EXTRACT(gen, node))


def _build_log10(args: list[Any]) -> exp.Expr:
    """``log10(x)``: sqlglot's LOG(10, x) node, marked. Any other argument count stays the call
    written (sqlglot's builder kept the first argument only: ``log10()`` ran as ``LOG(10)``)."""
    if len(args) != 1:
        return exp.Anonymous(this="log10", expressions=list(args))
    node = exp.Log(this=exp.Literal.number(10), expression=args[0])
    node.meta[LOG10_META] = True
    return node


_SQLGLOT_LOG: Callable[[Any, exp.Log], str] = (
    PostgresGenerator.TRANSFORMS.get(exp.Log) or PostgresGenerator.log_sql
)


def _log(gen: Any, node: exp.Log) -> str:
    """A marked node as ``LOG10(x)``; any other LOG as sqlglot renders it."""
    if node.meta.get(LOG10_META) and node.expression is not None:
        return gen.func("LOG10", node.expression)
    return str(_SQLGLOT_LOG(gen, node))


def install() -> None:
    """Read and render ``date_part`` and ``log10`` as written (idempotent)."""
    PostgresParser.FUNCTION_PARSERS["DATE_PART"] = _parse_date_part
    PostgresGenerator.TRANSFORMS[exp.Extract] = _extract
    PostgresParser.FUNCTIONS["LOG10"] = _build_log10
    PostgresGenerator.TRANSFORMS[exp.Log] = _log
