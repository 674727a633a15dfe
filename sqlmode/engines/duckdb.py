"""DuckDB: the engine behind ``duckdb:///file.duckdb`` URLs.

The engine's own parser is DuckDB itself, on a private thread-local in-memory connection
that only parses (never the warehouse); queries run on a read-only instance of the file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..config import Settings
from ..errors import ConfigError, SqlmodeError
from ._duckdb_parse import QUERY_KEYWORDS, lexed_first_word, parser_connection
from .base import BoundAccess, EngineTraits, Executor, NativeSyntaxError, NativeView

__all__ = ["ENGINE", "DuckDBEngine", "parser_connection"]


def _fix_sqlglot() -> None:
    """sqlglot unqualifies a PIVOT statement's source query (_duckdb_sqlglot.py)."""
    from ._duckdb_sqlglot import install

    install()


# SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category IN ('reserved', 'type_function')
_RESERVED_WORDS = """
all analyse analyze and anti any array as asc asof asymmetric at authorization binary both by case
cast check collate collation column columns concurrently constraint create cross default deferrable
desc describe distinct do else end except false fetch for foreign freeze from full generated glob
group having ilike in initially inner intersect into is isnull join lambda lateral leading left like
limit map natural not notnull null offset on only or order outer overlaps pivot pivot_longer
pivot_wider placing positional primary qualify references returning right select semi show similar
some struct summarize symmetric table tablesample then to trailing true try_cast tuple union unique
unpack unpivot using variadic verbose when where window with"""

_JSON_TEXT = "Read a JSON field as text with json_extract_string(j, '$.a.b') or j->>'a'."

TRAITS = EngineTraits(
    name="duckdb",
    display_name="DuckDB",
    url_example="duckdb:///file.duckdb",
    sqlglot_dialect="duckdb",
    default_schema="main",
    system_schemas=frozenset({"information_schema", "pg_catalog"}),
    # DuckDB resolves built-ins in main and system of every catalog, then pg_catalog.
    system_function_schemas=frozenset({"main", "system", "pg_catalog"}),
    quoted_identifiers_case_sensitive=False,
    # DuckDB has named VALUES columns both col0.. and column1.. across versions.
    values_column_names=("column{n}", "col{i}"),
    operator_samples=(
        "a -> 'x'",
        "a ->> 'x'",
        "a ** 2",
        "a ^ 2",
        "a && b",
        "a @> b",
        "a <@ b",
        "a ~ 'x'",
        "a ^@ 'x'",
        "a GLOB 'x'",
        "a SIMILAR TO 'x'",
        "a || b",
        "a[1]",
        "a[1:2]",
        "[x + 1 FOR x IN a]",
        "{'k': 1}",
        "MAP {'k': 1}",
        "[1, 2]",
        "a IS DISTINCT FROM b",
    ),
    pivot_without_values=True,
    struct_star=True,
    materialized_ctes_read_whole=False,
    sqlglot_setup=_fix_sqlglot,
    volatile_wording="has side effects or is volatile",
    reserved_words=frozenset(_RESERVED_WORDS.split()),
    volatile_alternatives={
        "random": "For a random sample, sample the table instead: FROM orders USING SAMPLE 10 ROWS "
        "(or USING SAMPLE 1%).",
    },
    # PostgreSQL's (and MySQL's) functions DuckDB lacks, as its Catalog Error names them.
    missing_functions={
        "date_format": "Format dates with strftime(ts, '%Y-%m').",
        "to_char": "Format dates with strftime(ts, '%Y-%m'); numbers with printf('%.2f', x) or format().",
        "regexp_match": "Take a regular expression's group with regexp_extract(text, pattern, 1).",
        "json_build_object": "Build JSON objects with json_object('key', value, ...).",
        "jsonb_build_object": "Build JSON objects with json_object('key', value, ...).",
        "to_jsonb": "Write to_json(value).",
        "json_agg": "Aggregate to a JSON array with to_json(list(value)).",
        "jsonb_agg": "Aggregate to a JSON array with to_json(list(value)).",
        "jsonb_extract_path_text": _JSON_TEXT,
        "width_bucket": "Bucket values with floor((x - lo) / width) + 1, or equi_width_bins().",
        "btrim": "Write trim(text).",
        "every": "Write bool_and(condition).",
        "array_upper": "The length of a list is len(list).",
        "array_remove": "Drop a value from a list with list_filter(l, lambda x: x <> value).",
        "to_tsvector": "Match words with text ILIKE '%word%' or regexp_matches(text, 'pattern').",
    },
    error_hints=(
        (
            r'"\+"\(',
            "+ adds numbers, dates and intervals: join text with || (a || ' ' || b) or concat(a, ' ', b).",
        ),
        (
            r"date_(?:sub|add)\(part VARCHAR",
            "date_sub(part, start, end) and date_add count or add date parts here; to add or subtract an "
            "interval write ts - INTERVAL 7 DAY.",
        ),
        (
            r"Combining QUALIFY with GROUP BY ALL is not supported",
            "With QUALIFY, list the grouped columns (GROUP BY region, segment) instead of GROUP BY ALL.",
        ),
    ),
    # Names DuckDB's parser and plan give to calls the analyzer knows by another name.
    call_aliases={
        "count_star": "count",
        "main.count_star": "count",
        "list_value": "list_value",
        "struct_pack": "struct_pack",
        "array_value": "array",
        "main.struct_pack": "struct_pack",
    },
    # Its "cost" is rows moved by all steps, already in the row estimate.
    plan_cost_is_meaningful=False,
    # database.schemas exposes more than main; cursors have no search path, so the analyzer
    # writes `sales.orders` for a bare `orders` of schema sales.
    exposes_schemas=True,
    qualifies_other_schemas=True,
    builds_sample_file=True,
    file_based=True,
    driver_modules=("duckdb", "_duckdb"),
)

DIALECT_NOTES = (
    "DuckDB SQL: date_trunc('month', ts), ts - INTERVAL 14 DAY, date_diff('day', a, b), "
    "strftime(ts, '%Y-%m'), list/struct types, QUALIFY, "
    "GROUP BY ALL. No file reads (read_csv, 'file.parquet'), no PRAGMA, no extensions."
)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


class DuckDBEngine:
    traits: EngineTraits = TRAITS
    schemes: tuple[str, ...] = ("duckdb",)
    dialect_notes: str = DIALECT_NOTES

    def native_statements(self, code: str) -> NativeView:
        try:
            statements = parser_connection().extract_statements(code)
        except Exception as e:  # duckdb.ParserError and friends
            raise NativeSyntaxError(f"DuckDB rejects the syntax: {_first_line(e)}") from None
        return NativeView(tuple(str(s.type).rsplit(".", 1)[-1] for s in statements))

    def native_refusals(self, view: NativeView, root_is_write: bool = False) -> list[str]:
        # DuckDB's statement list carries no nested structure: the analyzer's own tree decides.
        return []

    def confirms_rendered(self, sql: str, expected: str) -> bool:
        # DuckDB's lexer: one statement, starting with a query keyword or a parenthesis.
        first = lexed_first_word(sql)
        if first is None:
            return False
        if expected == "SELECT":
            return first.startswith("(") or first in QUERY_KEYWORDS
        if first == "with":
            # WITH t AS (...) UPDATE ...: the statement's kind follows the CTEs; the parser says it.
            return self.native_statements(sql).types == (expected,)
        return first == expected.lower()

    def written_names(
        self, code: str, rendered: str, view: NativeView | None = None
    ) -> list[str | None] | None:
        """For each item of ``rendered``'s (leftmost) select list, the name DuckDB gives the same
        item of ``code`` where it names the rendering's otherwise, else None (_duckdb_names.py)."""
        from ._duckdb_names import written_names

        return written_names(code, rendered)

    def native_calls(self, sql: str) -> tuple[str | None, set[tuple[str, str]]]:
        from ._duckdb_check import engine_calls

        return engine_calls(sql)

    # -- reflection -------------------------------------------------------------------------

    async def reflect_tables(self, settings: Settings) -> tuple[list[Any], str]:
        from ._duckdb_reflect import database_name, reflect_duckdb

        tables = await asyncio.to_thread(reflect_duckdb, settings)
        return tables, database_name(settings)

    def connect_error(self, error: BaseException, url: str, doing: str) -> SqlmodeError:
        from ._duckdb_errors import explain_duckdb_error

        return explain_duckdb_error(error, url, doing)

    def describe_target(self, url: str) -> str:
        path = url.split("://", 1)[-1]
        return f"the DuckDB file {path[1:] if path.startswith('/') else path}"

    # -- execution --------------------------------------------------------------------------

    async def open_executor(self, settings: Settings, snapshot: Any = None) -> Executor:
        # No roles: the instance itself is the boundary (read-only, external access off,
        # configuration locked), so the snapshot is not needed to prove anything.
        from ._duckdb_exec import DuckDBExecutor

        executor = DuckDBExecutor(settings)
        await executor.start()
        return executor

    async def open_write_executor(self, settings: Settings) -> Any:
        from ._duckdb_writes import DuckDBWriteExecutor

        writer = DuckDBWriteExecutor(settings)
        await writer.start()
        return writer

    # -- the engine check -------------------------------------------------------------------

    async def function_catalog(self, executor: Executor) -> Any:
        from ..schema.functions import catalog_from_rows

        rows = await executor.catalog_query(_CATALOG_SQL)
        where = await executor.catalog_query(_SEARCH_PATH_SQL)
        path, database = (where[0][0] or [], str(where[0][1] or "")) if where else ([], "")
        # DuckDB resolves unqualified names in main of the temp, default and system catalogs, then
        # pg_catalog; every function it lists in those schemas is callable without a prefix.
        path = [*path, "main", "pg_catalog"]
        return catalog_from_rows(TRAITS.name, rows, path, database)

    async def bound_access(
        self,
        sql: str,
        executor: Executor,
        *,
        snapshot: Any,
        policy: Any,
        written_functions: Sequence[str],
        load_catalog: Callable[[], Awaitable[Any]],
        estimates: bool = True,
        early: Any = None,
    ) -> BoundAccess:
        from ._duckdb_check import bound_access

        return await bound_access(
            sql,
            executor,
            traits=self.traits,
            snapshot=snapshot,
            policy=policy,
            written_functions=written_functions,
            load_catalog=load_catalog,
            estimates=estimates,
            early=early,
        )

    # -- grants: none -------------------------------------------------------------------------

    def grant_script(self, settings: Settings, snapshot: Any, **options: Any) -> str:
        raise ConfigError(
            "grants apply to PostgreSQL only; DuckDB has no roles (sqlmode opens it read-only, "
            "without external access, with its configuration locked)",
            key="database.url",
        )

    def writer_script(self, settings: Settings, snapshot: Any, *, role: str) -> str:
        raise ConfigError("the writer role is for PostgreSQL only", key="database.url")

    async def apply_grants(self, admin_url: str, script: str) -> str:
        raise ConfigError("DuckDB has no roles to grant", key="database.url")

    async def role_exists(self, admin_url: str, role: str) -> bool:
        return False


# One row per function: schema, name, volatile?, built-in?, kind (``has_side_effects`` or
# ``stability = 'VOLATILE'``: may change state or differ within one statement; ``internal``:
# built-in, while a macro of the same name replaces the built-in).
_CATALOG_SQL = (
    "SELECT DISTINCT schema_name, function_name, "
    "coalesce(has_side_effects, false) OR coalesce(stability = 'VOLATILE', false), "
    "coalesce(internal, false), function_type FROM duckdb_functions()"
)
_SEARCH_PATH_SQL = "SELECT current_schemas(true), current_database()"

ENGINE = DuckDBEngine()
