"""Other SQL dialects' spellings that models send, and what to write instead.

Models learned SQL from every dialect at once: they write SQL Server's ``TOP 10`` and ``GETDATE()``,
MySQL's backticks, ``LIMIT 10, 20`` and ``GROUP_CONCAT(x SEPARATOR ', ')``, Oracle's ``ROWNUM`` and
``DUAL``. Where such a spelling is refused anyway (a syntax error, a function off the allowlist, an
unknown name), the refusal says whose spelling it is and what to write instead; the analyzer then
appends the engine's own dialect notes. Only the words of a refusal change here: nothing in this
module decides whether a query passes.

- :func:`syntax_hint`: a text that did not parse (sqlglot's tokens, and the parser's message).
- :func:`function_refusal`: a call the allowlist refused, by its name.
- :func:`name_hint`: an unknown bare column or table name.

To teach it another spelling, add a row to ``FUNCTIONS`` or ``NAMES`` (or a token pattern to
:func:`syntax_hint`), with a test beside the others in tests/analyze/test_real_analytics.py;
tests/confirm/test_missing_functions.py checks that neither engine has a function named in
``FUNCTIONS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot.errors import ParseError, TokenError
from sqlglot.parser import Parser
from sqlglot.tokens import Token, TokenType

from .parse import sqlglot_dialect

__all__ = ["FUNCTIONS", "NAMES", "function_refusal", "name_hint", "syntax_hint"]

_NOW = "write now() or current_timestamp"
_DIFF = "take the difference of the two dates this database's way (below)"
_FORMAT = "format dates and times with this database's function (below)"
_ADD = "add an interval: ts + INTERVAL '7 days' (or subtract one)"
_CASE = "write CASE WHEN condition THEN a ELSE b END"
_DIVIDE = "write a / NULLIF(b, 0)"
_MONTH_END = "write date_trunc('month', d) + INTERVAL '1 month' - INTERVAL '1 day'"

# A refused function's name (lower case) -> (whose spelling it is, what to write instead). Consulted
# only for a call the allowlist refused: a name this engine allows never reaches it.
FUNCTIONS: dict[str, tuple[str, str]] = {
    "top": ("SQL Server", "end the query with LIMIT n instead of TOP n"),
    "getdate": ("SQL Server", _NOW),
    "getutcdate": ("SQL Server", _NOW),
    "sysdatetime": ("SQL Server", _NOW),
    "sysutcdatetime": ("SQL Server", _NOW),
    "sysdatetimeoffset": ("SQL Server", _NOW),
    "sysdate": ("MySQL and Oracle", _NOW),
    "systimestamp": ("Oracle", _NOW),
    "isnull": ("SQL Server", "write coalesce(value, fallback)"),
    "nvl2": ("Oracle", "write CASE WHEN value IS NOT NULL THEN a ELSE b END"),
    "iff": ("Snowflake", _CASE),
    "dateadd": ("SQL Server", _ADD),
    "timestampadd": ("MySQL", _ADD),
    "add_months": ("Oracle", "add an interval: d + INTERVAL '3 months'"),
    "datediff_big": ("SQL Server", _DIFF),
    "timestampdiff": ("MySQL", _DIFF),
    "timestamp_diff": ("BigQuery", _DIFF),
    "months_between": ("Oracle", _DIFF),
    "datename": ("SQL Server", _FORMAT),
    "datefromparts": ("SQL Server", "write make_date(year, month, day)"),
    "eomonth": ("SQL Server", _MONTH_END),
    "format_date": ("BigQuery", _FORMAT),
    "format_timestamp": ("BigQuery", _FORMAT),
    "str_to_date": ("MySQL", "write CAST(text AS DATE) for ISO dates (YYYY-MM-DD)"),
    "unix_timestamp": ("MySQL", "write extract(epoch FROM ts)"),
    "from_unixtime": ("MySQL", "write to_timestamp(seconds)"),
    "replicate": ("SQL Server", "write repeat(text, n)"),
    "space": ("SQL Server", "write repeat(' ', n)"),
    "stdevp": ("SQL Server", "write stddev_pop(x)"),
    "varp": ("SQL Server", "write var_pop(x)"),
    "safe_divide": ("BigQuery", _DIVIDE),
    "div0": ("Snowflake", _DIVIDE),
    "zeroifnull": ("Snowflake", "write coalesce(x, 0)"),
    "nullifzero": ("Snowflake", "write NULLIF(x, 0)"),
}

# An unknown bare name (lower case) -> the hint. Consulted only when no column or table of that name
# exists, and no suggestion is the same name in other case.
NAMES: dict[str, str] = {
    "rownum": (
        "ROWNUM is Oracle's: end the query with LIMIT n, or number the rows with "
        "row_number() OVER (ORDER BY ...)."
    ),
    "sysdate": f"SYSDATE is Oracle's: {_NOW}.",
    "systimestamp": f"SYSTIMESTAMP is Oracle's: {_NOW}.",
    "getdate": f"GETDATE() is SQL Server's: {_NOW}.",
    "dual": "DUAL is Oracle's: select the expressions with no FROM clause at all (SELECT now()).",
}


def function_refusal(name: str, engine: str) -> tuple[str, str] | None:
    """For a refused call named ``name`` (as written) that is another dialect's function: the
    refusal's message and hint; else None."""
    entry = FUNCTIONS.get(name.lower())
    if entry is None:
        return None
    whose, instead = entry
    what = "`TOP n`" if name.lower() == "top" else f"Function `{name}`"  # TOP (5) parses as a call
    return f"{what} is {whose}'s, not {engine}'s.", f"{instead[0].upper()}{instead[1:]}."


def name_hint(name: str) -> str | None:
    """The hint for an unknown bare name that is another dialect's pseudo-column or table."""
    return NAMES.get(name.lower())


# What a parser's message says it stopped at: sqlglot's (``at `x```) or libpg_query's (``at or near "x"``).
_NEAR = re.compile(r'at or near "([^"]*)"|at `([^`]*)`')
_TYPES = frozenset(Parser.TYPE_TOKENS)
# Texts the engine's parser reads when the construct is its own SQL.
_QUALIFY_PROBE = "SELECT 1 AS x QUALIFY x = 1"
_INTERVAL_PROBE = "SELECT INTERVAL 7 DAY"
_LIST_PROBE = "SELECT [1, 2]"
# Plain words in a row that no SQL statement has (`This query lists the orders`).
_PROSE_WORDS = 4


def syntax_hint(
    code: str,
    dialect: str,
    messages: list[str] | tuple[str, ...] = (),
    reads: Callable[[str], bool] | None = None,
) -> str | None:
    """What to write instead, for a text that did not parse and holds another dialect's syntax
    models often send; ``messages``: the parse errors (where a parser stopped); ``reads``: whether
    the engine's own parser reads a text (a construct it reads is its own SQL, never blamed). None
    if none."""
    try:
        tokens = sqlglot_dialect(dialect).tokenize(code)
    except (TokenError, ParseError):
        return None
    kinds = [t.token_type for t in tokens]
    run = 0
    for kind in kinds:
        run = run + 1 if kind is TokenType.VAR else 0
        if run >= _PROSE_WORDS:
            return (
                "The text holds prose beside the SQL (several plain words in a row): send only the "
                "one SQL statement, without explanation or a preamble."
            )
    if any(k is TokenType.UNKNOWN and t.text == "`" for k, t in zip(kinds, tokens, strict=True)):
        return 'Names go in double quotes ("order_date") or none, not in backticks (MySQL, BigQuery).'
    near = {(a or b).strip().lower() for m in messages for a, b in _NEAR.findall(m)}
    if any("without selection list" in m for m in messages):
        # PostgreSQL's `EXISTS (SELECT FROM t WHERE ...)`: this parser wants a select list.
        return "Give the SELECT a column: EXISTS (SELECT 1 FROM t WHERE ...)."
    if any("ordered aggregate" in m for m in messages):
        # string_agg(x, ',') WITHIN GROUP (ORDER BY x): SQL Server's and Oracle's LISTAGG form.
        return "Put the ORDER BY inside the call: string_agg(x, ', ' ORDER BY x), without WITHIN GROUP."

    def foreign(probe: str) -> bool:
        return reads is not None and not reads(probe)

    for i, token in enumerate(tokens):
        hint = _pattern(tokens, kinds, i, token.text.upper(), near, foreign)
        if hint is not None:
            return hint
    return None


def _pattern(
    tokens: list[Token],
    kinds: list[TokenType],
    i: int,
    word: str,
    near: set[str],
    foreign: Callable[[str], bool],
) -> str | None:
    """The hint for another dialect's syntax starting at token ``i``, if any; ``foreign(probe)``:
    whether the engine's parser refuses the probe (the construct is not its SQL)."""

    def kind(j: int) -> TokenType | None:
        return kinds[j] if j < len(kinds) else None

    if kinds[i] is TokenType.SELECT:
        j = i + 1 + (kind(i + 1) is TokenType.DISTINCT)
        top = j < len(tokens) and tokens[j].text.upper() == "TOP"
        if top and kind(j + 1) in (TokenType.NUMBER, TokenType.L_PAREN):
            return "TOP n is SQL Server's: end the query with LIMIT n instead."
    if (
        kinds[i] is TokenType.LIMIT
        and kind(i + 1) is TokenType.NUMBER
        and kind(i + 2) is TokenType.COMMA
        and kind(i + 3) is TokenType.NUMBER
    ):
        return "LIMIT offset, count is MySQL's: write LIMIT count OFFSET offset."
    what = tokens[i + 1].text.upper() if i + 1 < len(tokens) else ""
    if kinds[i] is TokenType.WITH and what in ("ROLLUP", "CUBE"):
        return f"GROUP BY a, b WITH {what} is MySQL's: write GROUP BY {what} (a, b)."
    if word == "SEPARATOR" and kind(i + 1) is TokenType.STRING:
        return "GROUP_CONCAT(x SEPARATOR ', ') is MySQL's: write string_agg(x, ', ')."
    if word == "CONVERT" and kind(i + 1) is TokenType.L_PAREN and kind(i + 2) in _TYPES:
        return "CONVERT(type, value) is SQL Server's: write CAST(value AS type)."
    after = tokens[i + 1].text.lower() if i + 1 < len(tokens) else ""
    # Where the parser stopped: at QUALIFY, or just after it (`FROM t QUALIFY`: QUALIFY is t's alias).
    if word == "QUALIFY" and ("qualify" in near or after in near) and foreign(_QUALIFY_PROBE):
        return (
            "This database has no QUALIFY: compute the window function in a subquery and filter on "
            "its result in the outer query's WHERE."
        )
    if kinds[i] is TokenType.L_BRACKET and "[" in near and foreign(_LIST_PROBE):
        return "Write a list as an array: ARRAY['a', 'b'] (and x = ANY(ARRAY[...]) to test membership)."
    if (
        kinds[i] is TokenType.INTERVAL
        and kind(i + 1) is TokenType.NUMBER
        and tokens[i + 1].text.lower() in near
        and foreign(_INTERVAL_PROBE)
    ):
        return "Write an interval with its amount and unit in one quoted string: INTERVAL '7 days'."
    return None
