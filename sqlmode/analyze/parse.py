"""Parsing: exactly one statement, confirmed by sqlglot and by the engine's own parser.

Two parsers must agree because either alone has been fooled before: sqlglot can read
``ABORT`` as a column, and an engine can see a second statement behind a comment or
dollar quote that a generic parser swallowed. The engine parsers only parse: pglast is
PostgreSQL's own parser compiled as a library; for DuckDB we call ``extract_statements``
on a private, thread-local in-memory connection that never touches the warehouse.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, TokenError

from .codes import Refusal, violation


class _ExpectedNoise(logging.Filter):
    """Drop sqlglot warnings that are normal analyzer input (every refused command logs one)."""

    NOISE = ("contains unsupported syntax", "Cannot traverse scope", "are not supported")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(n in msg for n in self.NOISE)


logging.getLogger("sqlglot").addFilter(_ExpectedNoise())

MAX_CODE_CHARS = 100_000
# Deeper parenthesis nesting than this is never analyst SQL and risks recursion limits.
MAX_PAREN_DEPTH = 200


@dataclass(frozen=True, slots=True)
class EngineView:
    """What the engine's parser saw: how many statements and of which kind."""

    types: tuple[str, ...]
    # Postgres only: the raw parse tree as JSON, searched for nested writes and clauses.
    tree_json: str = ""


@lru_cache(maxsize=8)
def sqlglot_dialect(name: str) -> Dialect:
    """One shared Dialect instance per name: building one per call cost ~40 us each time."""
    return Dialect.get_or_raise(name)


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
        raise Refusal(violation("PARSE_ERROR", f"SQL syntax error: {_first_line(e)}")) from None
    except RecursionError:
        raise Refusal(violation("QUERY_TOO_LARGE", "The query is nested too deeply to analyze.")) from None
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


def _is_empty_statement(node: exp.Expr) -> bool:
    """A statement slot holding only comments: an argument-less Semicolon, nothing else."""
    return type(node) is exp.Semicolon and not any(v not in (None, []) for v in node.args.values())


# -- the engines' own parsers -------------------------------------------------------------

_local = threading.local()


def duckdb_parser() -> Any:
    """A per-thread in-memory DuckDB used only to parse (and serialize) SQL, never the warehouse."""
    con = getattr(_local, "duckdb", None)
    if con is None:
        import duckdb

        # Parsing only; external access and extension loading are off anyway so that
        # nothing this connection could ever be asked to do reaches files or network.
        con = duckdb.connect(
            ":memory:",
            config={
                "enable_external_access": False,
                "autoload_known_extensions": False,
                "autoinstall_known_extensions": False,
            },
        )
        con.execute("SET lock_configuration = true")
        _local.duckdb = con
    return con


_PG_TYPES = {
    "SelectStmt": "SELECT",
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
}


@lru_cache(maxsize=1024)
def engine_view(code: str, dialect: str) -> EngineView:
    """Statement kinds as the engine's own parser sees them; a Refusal if it cannot parse.

    Cached by text: the view is a pure function of it, and the same code is analyzed again
    at execute time (and often validated twice by a retrying client).
    """
    if dialect == "postgres":
        from pglast import parser as pg

        try:
            tree = pg.parse_sql_json(code)
        except pg.ParseError as e:
            msg = f"PostgreSQL rejects the syntax: {_first_line(e)}"
            raise Refusal(violation("PARSE_ERROR", msg)) from None
        stmts = json.loads(tree).get("stmts", [])
        types = tuple(_PG_TYPES.get(next(iter(s.get("stmt", {"?": 0}))), "OTHER") for s in stmts)
        return EngineView(types, tree)
    try:
        statements = duckdb_parser().extract_statements(code)
    except Exception as e:  # duckdb.ParserError and friends
        raise Refusal(violation("PARSE_ERROR", f"DuckDB rejects the syntax: {_first_line(e)}")) from None
    return EngineView(tuple(str(s.type).rsplit(".", 1)[-1] for s in statements))


_QUERY_KEYWORDS = frozenset({"select", "with", "from", "values", "pivot", "unpivot", "table"})


def confirm_rendered(sql: str, dialect: str, expected: str) -> bool:
    """Whether the engine reads the rendered SQL as exactly one statement of the expected kind.

    Postgres: pglast's full parse (microseconds). DuckDB: its own lexer (``duckdb.tokenize``,
    about 4 us against about 100 us for ``extract_statements``): one statement means no
    ``;`` operator token, and a query starts with a query keyword or a parenthesis.
    """
    if dialect == "postgres":
        try:
            return engine_view(sql, dialect).types == (expected,)
        except Refusal:
            return False
    import duckdb

    tokens = duckdb.tokenize(sql)
    if not tokens:
        return False
    operator = duckdb.token_type.operator
    for offset, kind in tokens:
        if kind == operator and sql[offset] == ";":
            return False
    offset, kind = tokens[0]
    first = sql[offset:].split(None, 1)[0].lower()
    if expected == "SELECT":
        return first.startswith("(") or first in _QUERY_KEYWORDS
    return first == expected.lower()


# Keys in pglast's JSON tree that mean a query does more than read. A key appears as
# `"Name":` only as a node key: inside string values quotes are escaped.
PG_REFUSED_KEYS = {
    '"InsertStmt":': "NESTED_WRITE",
    '"UpdateStmt":': "NESTED_WRITE",
    '"DeleteStmt":': "NESTED_WRITE",
    '"MergeStmt":': "NESTED_WRITE",
    '"intoClause":': "SELECT_INTO",
    '"lockingClause":': "LOCKING_CLAUSE",
}


def engine_refusals(view: EngineView, root_is_write: bool = False) -> list[str]:
    """Violation codes the engine's own tree shows (Postgres); empty for DuckDB."""
    if not view.tree_json:
        return []
    found = set()
    writes = 0
    for key, code in PG_REFUSED_KEYS.items():
        n = view.tree_json.count(key)
        if code == "NESTED_WRITE":
            writes += n
        elif n:
            found.add(code)
    if writes > (1 if root_is_write else 0):
        found.add("NESTED_WRITE")
    return sorted(found)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    # sqlglot highlights the error position with ANSI underline codes; drop them.
    return line.replace("\x1b[4m", "").replace("\x1b[0m", "")[:300]
