"""The names PostgreSQL gives a query's result columns, read from its own parse (pglast).

A result column without ``AS`` is named by the parser (``FigureColname`` in parse_target.c): a
column by its last name, a call by its function's name, ``CAST(x AS t)`` by ``x`` or else ``t``,
``CASE`` by its ELSE branch or ``case``, a few constructs by a keyword, anything else
``?column?``. The name depends on the spelling: ``strpos(email, '.')`` is "strpos", the same call
rendered as ``POSITION('.' IN email)`` is "position". This module reproduces that rule on
pglast's parse tree (libpg_query: the server's grammar), so that the analyzer can keep the
names of the text as written (analyze/names.py).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

__all__ = ["output_names"]

# SQLValueFunction ops as PostgreSQL names them (parse_target.c).
_SVF = {
    "SVFOP_CURRENT_DATE": "current_date",
    "SVFOP_CURRENT_TIME": "current_time",
    "SVFOP_CURRENT_TIME_N": "current_time",
    "SVFOP_CURRENT_TIMESTAMP": "current_timestamp",
    "SVFOP_CURRENT_TIMESTAMP_N": "current_timestamp",
    "SVFOP_LOCALTIME": "localtime",
    "SVFOP_LOCALTIME_N": "localtime",
    "SVFOP_LOCALTIMESTAMP": "localtimestamp",
    "SVFOP_LOCALTIMESTAMP_N": "localtimestamp",
    "SVFOP_CURRENT_ROLE": "current_role",
    "SVFOP_CURRENT_USER": "current_user",
    "SVFOP_USER": "user",
    "SVFOP_SESSION_USER": "session_user",
    "SVFOP_CURRENT_CATALOG": "current_catalog",
    "SVFOP_CURRENT_SCHEMA": "current_schema",
}
_FIXED = {
    "GroupingFunc": "grouping",
    "CoalesceExpr": "coalesce",
    "XmlSerialize": "xmlserialize",
    "JsonParseExpr": "json",
    "JsonScalarExpr": "json_scalar",
    "JsonSerializeExpr": "json_serialize",
    "JsonObjectConstructor": "json_object",
    "JsonArrayConstructor": "json_array",
    "JsonArrayQueryConstructor": "json_array",
    "JsonObjectAgg": "json_objectagg",
    "JsonArrayAgg": "json_arrayagg",
    "MergeSupportFunc": "merge_action",
}
_WEAK = {"A_ArrayExpr": "array", "RowExpr": "row"}
_XML = {
    "IS_XMLCONCAT": "xmlconcat",
    "IS_XMLELEMENT": "xmlelement",
    "IS_XMLFOREST": "xmlforest",
    "IS_XMLPARSE": "xmlparse",
    "IS_XMLPI": "xmlpi",
    "IS_XMLROOT": "xmlroot",
    "IS_XMLSERIALIZE": "xmlserialize",
}
_JSON_FUNC = {
    "JSON_EXISTS_OP": "json_exists",
    "JSON_QUERY_OP": "json_query",
    "JSON_VALUE_OP": "json_value",
}


def _strings(items: Any) -> list[str]:
    return [i["String"]["sval"] for i in items or () if isinstance(i, dict) and "String" in i]


def _figure(node: Any) -> tuple[str | None, int]:
    """(name, strength) as FigureColnameInternal: 2 a real name, 1 a fallback, 0 none."""
    if not isinstance(node, dict) or len(node) != 1:
        return None, 0
    ((kind, body),) = node.items()
    if kind == "ColumnRef":
        names = _strings(body.get("fields"))
        return (names[-1], 2) if names else (None, 0)
    if kind == "A_Indirection":
        names = _strings(body.get("indirection"))
        return (names[-1], 2) if names else _figure(body.get("arg"))
    if kind == "FuncCall":
        names = _strings(body.get("funcname"))
        return (names[-1], 2) if names else (None, 0)
    if kind == "A_Expr":
        return ("nullif", 2) if body.get("kind") == "AEXPR_NULLIF" else (None, 0)
    if kind == "TypeCast":
        name, strength = _figure(body.get("arg"))
        if strength <= 1:
            types = _strings((body.get("typeName") or {}).get("names"))
            if types:
                return types[-1], 1
        return name, strength
    if kind == "CollateClause":
        return _figure(body.get("arg"))
    if kind == "SubLink":
        link = body.get("subLinkType")
        if link == "EXISTS_SUBLINK":
            return "exists", 2
        if link == "ARRAY_SUBLINK":
            return "array", 2
        if link == "EXPR_SUBLINK":
            inner = _select_names(body.get("subselect"))
            if inner:
                return (inner[0], 2) if inner[0] is not None else (None, 0)
        return None, 0
    if kind == "CaseExpr":
        name, strength = _figure(body.get("defresult"))
        return (name, strength) if strength > 1 else ("case", 1)
    if kind in _WEAK:
        return _WEAK[kind], 1
    if kind in _FIXED:
        return _FIXED[kind], 2
    if kind == "MinMaxExpr":
        op = body.get("op")
        return {"IS_GREATEST": ("greatest", 2), "IS_LEAST": ("least", 2)}.get(op, (None, 0))
    if kind == "SQLValueFunction":
        name = _SVF.get(body.get("op"))
        return (name, 2) if name else (None, 0)
    if kind == "XmlExpr":
        name = _XML.get(body.get("op"))
        return (name, 2) if name else (None, 0)
    if kind == "JsonFuncExpr":
        name = _JSON_FUNC.get(body.get("op"))
        return (name, 2) if name else (None, 0)
    return None, 0


def _select_names(stmt: Any) -> list[str | None] | None:
    """The result names of a SelectStmt (its leftmost SELECT's); None for a star or an unknown shape."""
    if not isinstance(stmt, dict) or "SelectStmt" not in stmt:
        return None
    body = stmt["SelectStmt"]
    while body.get("op", "SETOP_NONE") != "SETOP_NONE":
        larg = body.get("larg") or {}
        body = larg.get("SelectStmt", larg)  # pglast gives a set operation's operands unwrapped
    targets = body.get("targetList")
    if not targets:
        return None  # VALUES, or a shape this module does not name
    names: list[str | None] = []
    for t in targets:
        res = t.get("ResTarget") if isinstance(t, dict) else None
        if res is None:
            return None
        if res.get("name"):
            names.append(res["name"])
            continue
        val = res.get("val") or {}
        fields = (val.get("ColumnRef") or {}).get("fields") or []
        if any(isinstance(f, dict) and "A_Star" in f for f in fields):
            names.append(None)  # a star: the tables' own names
            continue
        name, strength = _figure(val)
        names.append(name if strength else "?column?")
    return names


def output_names(sql: str, tree_json: str | None = None) -> list[str | None] | None:
    """The name of each item of the query's (leftmost) select list, as PostgreSQL names it.

    None for a star; None for the whole list when ``sql`` is not one SELECT pglast can read.
    ``tree_json``: pglast's parse of ``sql`` when the caller has it. One analysis may ask twice for
    the same text (ORDER BY's result names, then the written names): the second is a cache hit.
    """
    names = _output_names(sql, tree_json)
    return None if names is None else list(names)


@lru_cache(maxsize=256)
def _output_names(sql: str, tree_json: str | None) -> tuple[str | None, ...] | None:
    from pglast import parser as pg

    try:
        doc = json.loads(tree_json or pg.parse_sql_json(sql))
    except Exception:  # pglast.parser.ParseError, or anything unexpected: no names
        return None
    stmts = doc.get("stmts") or []
    if len(stmts) != 1:
        return None
    names = _select_names(stmts[0].get("stmt"))
    return None if names is None else tuple(names)
