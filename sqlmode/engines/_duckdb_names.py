"""DuckDB's names for the result columns of the text as written, where the rendering's differ.

DuckDB names an unaliased item after its parser's print of it: ``date_trunc('month', ts)`` and
sqlglot's rendering ``DATE_TRUNC('MONTH', ts)`` are two names, as are ``list(x)`` and
``ARRAY_AGG(x)``. DuckDB's lexer (microseconds) splits both texts' leftmost select lists; an item
whose tokens are the same in both (key words and function names compared without case, other
names without quotes) parses the same and keeps its name. An item spelled otherwise is named by
DuckDB's parser alone (``duckdb.SQLExpression(text).get_name()``, about 15 us, no connection and
nothing bound), and gets the written name where the rendering's differs."""

from __future__ import annotations

import re

__all__ = ["written_names"]

# Key words that end a select list at its own depth.
_LIST_ENDS = frozenset(
    {
        "from",
        "where",
        "group",
        "having",
        "qualify",
        "window",
        "order",
        "limit",
        "offset",
        "union",
        "except",
        "intersect",
        "using",
    }
)
_OPENS = frozenset("([{")
_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_CLOSES = frozenset(")]}")

Token = tuple[str, str, int]  # (kind, text as written, offset)


def _tokens(sql: str) -> list[Token] | None:
    import duckdb

    try:
        found = duckdb.tokenize(sql)
    except Exception:  # the lexer refuses it: no names
        return None
    out: list[Token] = []
    comment = duckdb.token_type.comment
    for i, (offset, kind) in enumerate(found):
        if kind == comment:
            continue
        end = found[i + 1][0] if i + 1 < len(found) else len(sql)
        out.append((str(kind).rsplit(".", 1)[-1], sql[offset:end].strip(), offset))
    return out


def select_items(sql: str) -> list[list[Token]] | None:
    """The leftmost select list's items at the statement's own depth, as tokens; None when that
    list is not at depth 0 (a parenthesized set operand) or the text has no SELECT there."""
    tokens = _tokens(sql)
    if tokens is None:
        return None
    depth = 0
    start = None
    for i, (kind, text, _) in enumerate(tokens):
        if kind == "operator" and text in _OPENS:
            depth += 1
        elif kind == "operator" and text in _CLOSES:
            depth -= 1
        elif depth == 0 and kind == "keyword" and text.lower() == "select":
            start = i + 1
            break
    if start is None:
        return None
    items: list[list[Token]] = [[]]
    depth = 0
    for token in tokens[start:]:
        kind, text, _ = token
        word = text.lower()
        if kind == "operator" and text in _OPENS:
            depth += 1
        elif kind == "operator" and text in _CLOSES:
            depth -= 1
        elif depth == 0 and ((word in _LIST_ENDS and kind == "keyword") or text == ";"):
            break
        elif depth == 0 and kind == "operator" and text == ",":
            items.append([])
            continue
        items[-1].append(token)
    first = items[0]
    # SELECT DISTINCT [ON (...)] / ALL: not part of the first item.
    if first and first[0][0] == "keyword" and first[0][1].lower() in ("distinct", "all"):
        rest = first[1:]
        if rest and rest[0][1].lower() == "on" and len(rest) > 1 and rest[1][1] == "(":
            depth = 0
            for j, (_, text, _) in enumerate(rest[1:], start=1):
                depth += text in _OPENS
                depth -= text in _CLOSES
                if depth == 0:
                    rest = rest[j + 1 :]
                    break
        items[0] = rest
    return items


def _keys(item: list[Token]) -> list[tuple[str, str]]:
    """What DuckDB's parse of the item depends on: key words and function names without case (its
    print spells them its own way), other names as written without quotes (a bare
    ``current_date`` is named as written), constants and operators exactly."""
    out = []
    for i, (kind, text, _) in enumerate(item):
        if kind == "identifier":
            text = text[1:-1].replace('""', '"') if text.startswith('"') else text
            if i + 1 < len(item) and item[i + 1][1] == "(":
                text = text.lower()
        elif kind == "keyword":
            text = text.lower()
        out.append((kind, text))
    return out


def _expands(item: list[Token]) -> bool:
    """An item that may stand for several columns (a star, COLUMNS(...), unnest of a struct):
    an alias could change what it is. A ``*`` after an operand is a multiplication, and
    ``count(*)`` one value."""
    for i, (kind, text, _) in enumerate(item):
        if text == "*":
            before = item[i - 1][1] if i else ""
            after = item[i + 1][1] if i + 1 < len(item) else ""
            if before in ("", ",", ".") or (before == "(" and after != ")"):
                return True
        if kind in ("identifier", "keyword") and text.lower() in ("columns", "unnest", "explode", "unpack"):
            return True
    return False


def _text(sql: str, item: list[Token]) -> str:
    last = item[-1]
    return sql[item[0][2] : last[2] + len(last[1])]


def written_names(code: str, rendered: str) -> list[str | None] | None:
    """For each item of ``rendered``'s leftmost select list: the name DuckDB gives the same item of
    ``code`` when it differs from the rendering's, else None. None when the lists cannot be paired."""
    written, now = select_items(code), select_items(rendered)
    if written is None or now is None or len(written) != len(now):
        return None
    out: list[str | None] = [None] * len(now)
    differ = [
        i
        for i, (w, r) in enumerate(zip(written, now, strict=True))
        if w and not _expands(w) and _keys(w) != _keys(r)
    ]
    if not differ:
        return out
    import duckdb

    for i in differ:
        try:
            # DuckDB's parser alone (no connection, nothing bound): the name it gives the item.
            name = duckdb.SQLExpression(_text(code, written[i])).get_name()
            if name == duckdb.SQLExpression(_text(rendered, now[i])).get_name():
                continue
        except Exception:  # a print it cannot make: the rendering's name stays
            continue
        # A bare word (``current_date`` written, ``CURRENT_DATE`` rendered) as an alias would be
        # a name the query's other words resolve to (DuckDB reads select aliases everywhere).
        if not _BARE_WORD.fullmatch(name):
            out[i] = name
    return out
