"""PostgreSQL: the engine behind ``postgresql://`` (and ``postgres://``) URLs.

The engine's own parser is pglast (PostgreSQL's parser compiled as a library); queries run
through asyncpg on a read-only session as the reader role.
"""

from __future__ import annotations

import json

from .base import EngineTraits, NativeSyntaxError, NativeView

__all__ = ["ENGINE", "PostgresEngine"]

TRAITS = EngineTraits(
    name="postgres",
    display_name="PostgreSQL",
    sqlglot_dialect="postgres",
    default_schema="public",
    system_schemas=frozenset({"information_schema", "pg_catalog", "pg_toast", "pg_temp"}),
    system_function_schemas=frozenset({"pg_catalog"}),
    quoted_identifiers_case_sensitive=True,
    values_column_names=("column{n}",),
    operator_samples=(
        "a -> 'x'",
        "a ->> 'x'",
        "a #> '{x}'",
        "a #>> '{x}'",
        "a ? 'k'",
        "a ?| ARRAY['k']",
        "a ?& ARRAY['k']",
        "a @> b",
        "a <@ b",
        "a && b",
        "a @@ b",
        "a ~ 'x'",
        "a ~* 'x'",
        "a !~ 'x'",
        "a !~* 'x'",
        "a || b",
        "a ^ 2",
        "a IS DISTINCT FROM b",
        "a SIMILAR TO 'x'",
        "a = ANY(b)",
        "a[1]",
        "a[1:2]",
        "ARRAY[1, 2]",
    ),
    pivot_without_values=False,
    volatile_wording="is VOLATILE",
)

DIALECT_NOTES = (
    "PostgreSQL SQL: date_trunc('month', ts), now() - interval '14 days', FILTER (WHERE ...), "
    "DISTINCT ON, ->/->> for JSON. No catalogs (pg_catalog, information_schema), no set_config, "
    "no server file functions."
)

_STATEMENT_KINDS = {
    "SelectStmt": "SELECT",
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
}

# Keys in pglast's JSON tree that mean a query does more than read. A key appears as
# `"Name":` only as a node key: inside string values quotes are escaped.
_REFUSED_KEYS = {
    '"InsertStmt":': "NESTED_WRITE",
    '"UpdateStmt":': "NESTED_WRITE",
    '"DeleteStmt":': "NESTED_WRITE",
    '"MergeStmt":': "NESTED_WRITE",
    '"intoClause":': "SELECT_INTO",
    '"lockingClause":': "LOCKING_CLAUSE",
}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


class PostgresEngine:
    traits: EngineTraits = TRAITS
    schemes: tuple[str, ...] = ("postgresql", "postgres")
    dialect_notes: str = DIALECT_NOTES

    def native_statements(self, code: str) -> NativeView:
        from pglast import parser as pg

        try:
            tree = pg.parse_sql_json(code)
        except pg.ParseError as e:
            raise NativeSyntaxError(f"PostgreSQL rejects the syntax: {_first_line(e)}") from None
        stmts = json.loads(tree).get("stmts", [])
        types = tuple(_STATEMENT_KINDS.get(next(iter(s.get("stmt", {"?": 0}))), "OTHER") for s in stmts)
        return NativeView(types, tree)

    def native_refusals(self, view: NativeView, root_is_write: bool = False) -> list[str]:
        if not view.tree_json:
            return []
        found = set()
        writes = 0
        for key, code in _REFUSED_KEYS.items():
            n = view.tree_json.count(key)
            if code == "NESTED_WRITE":
                writes += n
            elif n:
                found.add(code)
        if writes > (1 if root_is_write else 0):
            found.add("NESTED_WRITE")
        return sorted(found)

    def confirms_rendered(self, sql: str, expected: str) -> bool:
        # pglast's full parse costs microseconds: the same check as the original text gets.
        try:
            return self.native_statements(sql).types == (expected,)
        except NativeSyntaxError:
            return False


ENGINE = PostgresEngine()
