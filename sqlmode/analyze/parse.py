"""Parsing: exactly one statement, confirmed by sqlglot and by the engine's own parser.

Two parsers must agree because either alone has been fooled before: sqlglot can read
``ABORT`` as a column, and an engine can see a second statement behind a comment or
dollar quote that a generic parser swallowed. The engine's own parser is asked through the
:class:`~sqlmode.engines.base.Engine` (``native_statements``, ``confirms_rendered``); each
engine module says which parser that is and how it is kept away from the warehouse.
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokens import TokenType

from ..engines.base import Engine, NativeSyntaxError, NativeView
from ..models import MAX_CODE_CHARS
from .codes import Refusal, violation


class _ExpectedNoise(logging.Filter):
    """Drop sqlglot warnings that are normal analyzer input (every refused command logs one)."""

    NOISE = (
        "contains unsupported syntax",
        "Cannot traverse scope",
        "are not supported",
        "cannot be transpiled",
        "is not supported for expression",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(n in msg for n in self.NOISE)


logging.getLogger("sqlglot").addFilter(_ExpectedNoise())
_log = logging.getLogger("sqlmode.analyze")

# A lone UTF-16 surrogate: JSON may carry "\ud800", but no database text holds one.
_SURROGATE = re.compile("[\ud800-\udfff]")

# A syntax error sqlglot's parser could not place (it broke instead of raising its ParseError).
UNPLACED_SYNTAX_ERROR = "SQL syntax error: the query could not be read."

# Deeper parenthesis nesting than this is never analyst SQL and risks recursion limits.
MAX_PAREN_DEPTH = 200


@lru_cache(maxsize=8)
def sqlglot_dialect(name: str) -> Dialect:
    """One shared Dialect instance per name: building one per call cost ~40 us each time."""
    return Dialect.get_or_raise(name)


_generators = threading.local()


def generate(node: exp.Expr, dialect: str = "", *, copy: bool = True, **opts: Any) -> str:
    """``node.sql(dialect, **opts)`` on a generator this thread keeps for those options.

    sqlglotc 30.30 keeps 56 bytes for every Generator it constructs (``Dialect.generate`` and
    ``Expr.sql`` build one per call), a leak of a few blocks per analysis that never ends in a
    long-running server. A generator's only state between calls is reset by ``generate``, except
    after a failure (``no_identify`` leaves ``identify`` off if its call raises): a generator that
    raised is dropped. One per thread: generators are not made to be shared.

    With ``copy`` (the default) the generator renders a :func:`copy_tree` of ``node``, since its
    transforms may rewrite the tree they are given; sqlglot's own deep copy takes twice as long.
    """
    cache: dict[tuple[Any, ...], Any] | None = getattr(_generators, "cache", None)
    if cache is None:
        cache = _generators.cache = {}
    key = (dialect, *sorted(opts.items()))
    gen = cache.get(key)
    if gen is None:
        gen = cache[key] = sqlglot_dialect(dialect).generator(**opts)
    try:
        text: str = gen.generate(copy_tree(node) if copy else node, copy=False)
    except BaseException:
        cache.pop(key, None)
        raise
    return text


def copy_tree(root: exp.Expr) -> exp.Expr:
    """A copy of ``root`` sharing nothing the generator may change, in half sqlglot's time.

    sqlglot's deep copy also deep-copies every node's position dict through Python's copy
    module (about 40% of a rendering). Its values are ints and strings that nothing changes,
    so a new dict with the same values is as independent; everything else is copied as
    sqlglot copies it (new nodes, new lists, the same immutable leaves).
    """
    Expr = exp.Expr
    new = root.__class__()
    stack = [(root, new)]
    pop, push = stack.pop, stack.append
    while stack:
        node, cp = pop()
        if node.comments is not None:
            cp.comments = list(node.comments)
        if node._type is not None:
            cp._type = node._type.copy()
        if node._meta is not None:
            cp._meta = dict(node._meta)
        args = cp.args
        for key, value in node.args.items():
            if isinstance(value, Expr):
                child = value.__class__()
                child.parent, child.arg_key = cp, key
                args[key] = child
                push((value, child))
            elif type(value) is list:
                items: list[object] = []
                for v in value:
                    if isinstance(v, Expr):
                        child = v.__class__()
                        child.parent, child.arg_key, child.index = cp, key, len(items)
                        push((v, child))
                        items.append(child)
                    else:
                        items.append(v)
                args[key] = items
            else:
                args[key] = value
    return new


# A whole text that is one markdown code block: ```sql ... ``` (models often send their SQL so).
_FENCE = re.compile(r"\A\s*```[ \t]*[A-Za-z0-9_+-]*[ \t]*\r?\n(?P<body>.*?)\r?\n[ \t]*```\s*\Z", re.DOTALL)


def unwrap(code: str) -> str:
    """``code`` without what is not SQL around it: a leading byte-order mark, and a markdown code
    fence around the whole text. Both parsers then read the same inner text; anything else is
    left as it is (a fence inside the text stays, and is a syntax error)."""
    if not isinstance(code, str):
        return code
    if code.startswith("\ufeff"):
        code = code[1:]
    m = _FENCE.match(code)
    if m is not None and "```" not in m.group("body"):
        return m.group("body")
    return code


def precheck(code: str) -> None:
    """Cheap refusals before any parser runs."""
    if not isinstance(code, str) or not code.strip():
        raise Refusal(violation("EMPTY_QUERY"))
    if len(code) > MAX_CODE_CHARS:
        raise Refusal(
            violation("QUERY_TOO_LARGE", f"The code is {len(code):,} characters; at most {MAX_CODE_CHARS:,}.")
        )
    if "\x00" in code:
        raise Refusal(violation("PARSE_ERROR", "The code contains a NUL character."))
    if (bad := _SURROGATE.search(code)) is not None:
        raise Refusal(
            violation(
                "PARSE_ERROR",
                f"The code contains U+{ord(bad.group()):04X}, half of a UTF-16 pair: not a character.",
                "Send the SQL as plain UTF-8 text.",
            )
        )
    depth = peak = 0
    for ch in code:
        if ch == "(":
            depth += 1
            if depth > peak:
                peak = depth
        elif ch == ")":
            depth -= 1
    if peak > MAX_PAREN_DEPTH:
        raise Refusal(
            violation(
                "QUERY_TOO_LARGE",
                f"Parentheses are nested {peak} levels deep; at most {MAX_PAREN_DEPTH}.",
            )
        )


def parse_one(code: str, dialect: str) -> exp.Expr:
    """Parse with sqlglot; exactly one statement or a Refusal."""
    try:
        statements = sqlglot_dialect(dialect).parse(code, error_level=ErrorLevel.RAISE)
    except (ParseError, TokenError) as e:
        ordered = _ordered_pivot_statement(code, dialect)
        if ordered is None:
            raise Refusal(violation("PARSE_ERROR", f"SQL syntax error{_near(e)}: {_first_line(e)}")) from None
        statements = ordered
    except RecursionError:
        raise Refusal(violation("QUERY_TOO_LARGE", "The query is nested too deeply to analyze.")) from None
    except (TypeError, AttributeError, ValueError, IndexError, KeyError) as e:
        # sqlglot's parser sometimes breaks on malformed text instead of raising its ParseError
        # (`b.(->`: a TypeError in its JSON-arrow builder). A syntax error like any other: the
        # analyzer then asks the engine's parser whether the text is its SQL after all.
        _log.debug("sqlglot's parser raised %s on %r", type(e).__name__, code[:500], exc_info=True)
        raise Refusal(violation("PARSE_ERROR", UNPLACED_SYNTAX_ERROR)) from None
    # After the one statement, LLMs often leave `; -- done` or `;;`: sqlglot reads a comment
    # after a semicolon as an argument-less Semicolon node and an empty one as None. Neither
    # is a statement (the engine's parser, asked separately, must also count exactly one).
    found = [s for s in statements if s is not None and not _is_empty_statement(s)]
    if not found:
        raise Refusal(violation("EMPTY_QUERY", "The code contains only comments or semicolons."))
    if len(found) > 1:
        raise Refusal(
            violation(
                "MULTIPLE_STATEMENTS",
                f"The code contains {len(found)} statements; exactly one is allowed.",
            )
        )
    return found[0]


_MODIFIERS = frozenset({TokenType.ORDER_BY, TokenType.LIMIT, TokenType.OFFSET, TokenType.FETCH})
_OPEN = frozenset({TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE})
_CLOSE = frozenset({TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE})
# What a WITH clause holds at its own depth: names, AS, commas, RECURSIVE and MATERIALIZED.
_CTE_LIST = frozenset(
    {
        TokenType.WITH,
        TokenType.VAR,
        TokenType.IDENTIFIER,
        TokenType.ALIAS,
        TokenType.COMMA,
        TokenType.RECURSIVE,
        TokenType.NOT,
    }
)


def _ordered_pivot_statement(code: str, dialect: str) -> list[exp.Expr | None] | None:
    """DuckDB's PIVOT / UNPIVOT statement (after a WITH clause or not) may end in ORDER BY / LIMIT /
    OFFSET, which sqlglot's statement parser stops before: read as ``SELECT * FROM (<the pivot>)
    <those clauses>``, the same query (they order and cut the pivot's result). Its statements as
    sqlglot parses them, counted by the caller; None when the text is not that shape."""
    try:
        tokens = sqlglot_dialect(dialect).tokenize(code)
    except (TokenError, ParseError):
        return None
    if not tokens or tokens[0].token_type not in (TokenType.PIVOT, TokenType.UNPIVOT, TokenType.WITH):
        return None
    depth = 0
    pivot = None
    for token in tokens:
        if token.token_type in _OPEN:
            depth += 1
        elif token.token_type in _CLOSE:
            depth -= 1
        elif depth == 0 and pivot is None and token.token_type in (TokenType.PIVOT, TokenType.UNPIVOT):
            pivot = token.start
        elif depth == 0 and pivot is None and token.token_type not in _CTE_LIST:
            return None  # a WITH clause followed by anything but the pivot statement
        elif depth == 0 and pivot is not None and token.token_type in _MODIFIERS:
            text = f"{code[:pivot]}SELECT * FROM ({code[pivot : token.start]}) {code[token.start :]}"
            try:
                return sqlglot_dialect(dialect).parse(text, error_level=ErrorLevel.RAISE)
            except (ParseError, TokenError):
                return None
    return None


def _is_empty_statement(node: exp.Expr) -> bool:
    """A statement slot holding only comments: an argument-less Semicolon, nothing else."""
    return type(node) is exp.Semicolon and not any(v not in (None, []) for v in node.args.values())


# -- the engine's own parser ---------------------------------------------------------------


@lru_cache(maxsize=1024)
def engine_view(code: str, engine: Engine) -> NativeView:
    """Statement kinds as the engine's own parser sees them; a Refusal if it cannot parse.

    Cached by text: the view is a pure function of it, and the same code is analyzed again
    at execute time (and often validated twice by a retrying client).
    """
    try:
        return engine.native_statements(code)
    except NativeSyntaxError as e:
        raise Refusal(violation("PARSE_ERROR", str(e))) from None


def confirm_rendered(sql: str, engine: Engine, expected: str) -> bool:
    """Whether the engine reads the rendered SQL as exactly one statement of the expected kind."""
    try:
        return engine.confirms_rendered(sql, expected)
    except NativeSyntaxError:
        return False


def _near(e: BaseException) -> str:
    """Where sqlglot stopped, as the words it stopped at (the line and column alone leave the model
    counting characters)."""
    errors = getattr(e, "errors", None) or [{}]
    highlight = str(errors[0].get("highlight") or "").strip()
    return f" at `{highlight[:60]}`" if highlight else ""


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    # sqlglot highlights the error position with ANSI underline codes; drop them.
    return line.replace("\x1b[4m", "").replace("\x1b[0m", "")[:300]
