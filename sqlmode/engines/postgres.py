"""PostgreSQL: the engine behind ``postgresql://`` (and ``postgres://``) URLs.

The engine's own parser is pglast (PostgreSQL's parser compiled as a library); queries run
through asyncpg on a read-only session as the reader role.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..config import Settings
from ..errors import SqlmodeError
from .base import BoundAccess, EngineTraits, Executor, NativeSyntaxError, NativeView

__all__ = ["ENGINE", "PostgresEngine", "check_url"]

# SELECT word FROM pg_get_keywords() WHERE catcode IN ('R', 'T')  (PostgreSQL 18)
_RESERVED_WORDS = """
all analyse analyze and any array as asc asymmetric authorization binary both case cast check
collate collation column concurrently constraint create cross current_catalog current_date
current_role current_schema current_time current_timestamp current_user default deferrable desc
distinct do else end except false fetch for foreign freeze from full grant group having ilike in
initially inner intersect into is isnull join lateral leading left like limit localtime
localtimestamp natural not notnull null offset on only or order outer overlaps placing primary
references returning right select session_user similar some symmetric system_user table tablesample
then to trailing true union unique user using variadic verbose when where window with"""


def _fix_sqlglot() -> None:
    """sqlglot renders date_part as EXTRACT, which returns another type (_postgres_sqlglot.py)."""
    from ._postgres_sqlglot import install

    install()


TRAITS = EngineTraits(
    name="postgres",
    display_name="PostgreSQL",
    url_example="postgresql://user@host:5432/db",
    sqlglot_dialect="postgres",
    default_schema="public",
    system_schemas=frozenset({"information_schema", "pg_catalog", "pg_toast", "pg_temp"}),
    system_function_schemas=frozenset({"pg_catalog"}),
    quoted_identifiers_case_sensitive=True,
    executor_reflects=True,
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
    sqlglot_setup=_fix_sqlglot,
    volatile_wording="is VOLATILE",
    reserved_words=frozenset(_RESERVED_WORDS.split()),
    folds_unquoted_names=True,
    spells_out_stars=True,
    volatile_alternatives={
        "random": "For a random sample, sample the table instead: FROM orders TABLESAMPLE BERNOULLI (1) "
        "(about 1% of its rows), with LIMIT for a fixed count.",
        "clock_timestamp": "Use now() or current_timestamp (the time the query started).",
        "timeofday": "Use now() or current_timestamp (the time the query started).",
    },
    # DuckDB's (and others') functions PostgreSQL lacks, as its "function ... does not exist" names
    # them (sqlglot renders approx_count_distinct as approx_distinct, max_by as arg_max).
    missing_functions={
        "approx_distinct": "Count distinct values exactly with count(DISTINCT x).",
        "arg_max": "Take x at the largest y with (array_agg(x ORDER BY y DESC))[1].",
        "arg_min": "Take x at the smallest y with (array_agg(x ORDER BY y))[1].",
        "list": "Aggregate to an array with array_agg(x).",
        "first": "Take the first value with (array_agg(x ORDER BY y))[1], or any value with any_value(x).",
        "last": "Take the last value with (array_agg(x ORDER BY y DESC))[1].",
        "arbitrary": "Take any value with any_value(x).",
        "strftime": "Format dates with to_char(ts, 'YYYY-MM').",
        "strptime": "Parse text to a timestamp with to_timestamp(text, 'YYYY-MM-DD').",
        "epoch": "Write extract(epoch FROM ts).",
        "epoch_ms": "Write extract(epoch FROM ts) * 1000.",
        "today": "Write current_date.",
        "dayname": "Write to_char(ts, 'Day').",
        "monthname": "Write to_char(ts, 'Month').",
        "regexp_full_match": "Match a whole text with text ~ '^pattern$'.",
        "regexp_extract": "Take a regular expression's group with (regexp_match(text, pattern))[1].",
        "string_split": "Split text with string_to_array(text, ',').",
        "contains": "Test for a substring with strpos(text, 'x') > 0.",
        "histogram": "Count each value with count(*) and GROUP BY.",
        "approx_top_k": "Take the k most common values with GROUP BY x ORDER BY count(*) DESC LIMIT k.",
        "try": "PostgreSQL has no try(): test the value first (CASE WHEN x ~ '^[0-9]+$' THEN x::int END).",
        "quantile_cont": "Write percentile_cont(0.5) WITHIN GROUP (ORDER BY x).",
        "quantile_disc": "Write percentile_disc(0.5) WITHIN GROUP (ORDER BY x).",
        "struct_pack": "Build a record with jsonb_build_object('key', value, ...).",
    },
    error_hints=(
        (
            r"operator does not exist: (?:character varying|text|unknown) \+|operator does not exist: \w+ \+ "
            r"(?:character varying|text|unknown)",
            "+ adds numbers, dates and intervals: join text with || (a || ' ' || b) or concat(a, ' ', b).",
        ),
        (
            r"for SELECT DISTINCT, ORDER BY expressions must appear in select list",
            "With SELECT DISTINCT, ORDER BY only what is selected: add the expression to the SELECT "
            "list, or GROUP BY the selected columns and ORDER BY an aggregate of it (min(x)).",
        ),
        (
            r"must appear in the GROUP BY clause or be used in an aggregate function",
            "Every selected column is grouped or aggregated: add it to GROUP BY, or aggregate it "
            "(min(x), max(x), any_value(x)).",
        ),
    ),
    # The functions PostgreSQL's grammar turns SQL syntax into (always qualified pg_catalog.*).
    call_aliases={
        "pg_catalog.extract": "extract",
        "pg_catalog.date_part": "date_part",
        "pg_catalog.overlay": "overlay",
        "pg_catalog.position": "position",
        "pg_catalog.substring": "substring",
        "pg_catalog.btrim": "trim",
        "pg_catalog.ltrim": "ltrim",
        "pg_catalog.rtrim": "rtrim",
        "pg_catalog.timezone": "timezone",
        "pg_catalog.like_escape": "like_escape",
        "pg_catalog.similar_to_escape": "similar_to_escape",
        "pg_catalog.char_length": "char_length",
        "pg_catalog.normalize": "normalize",
        "pg_catalog.overlaps": "overlaps",
    },
    plan_cost_is_meaningful=True,
    exposes_schemas=True,
    driver_modules=("asyncpg",),
)

DIALECT_NOTES = (
    "PostgreSQL SQL: date_trunc('month', ts), now() - interval '14 days', date2 - date1 (days), "
    "to_char(ts, 'YYYY-MM'), FILTER (WHERE ...), "
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

    def output_names(self, code: str, view: NativeView | None = None) -> list[str | None] | None:
        """The name PostgreSQL gives each item of ``code``'s (leftmost) select list (None: a star);
        None when it cannot tell. ``view``: ``code``'s parse, reused (analyze/names.py)."""
        from ._postgres_names import output_names

        return output_names(code, view.tree_json if view is not None else None)

    def written_names(
        self, code: str, rendered: str, view: NativeView | None = None
    ) -> list[str | None] | None:
        """For each item of ``rendered``'s (leftmost) select list, the name PostgreSQL gives the
        same item of ``code`` where it names the rendering's otherwise, else None; None when the
        lists cannot be paired. Read from its own parser (``view``: ``code``'s parse, reused);
        analyze/names.py aliases those items."""
        from ._postgres_names import output_names

        before = self.output_names(code, view)
        now = output_names(rendered)
        if before is None or now is None or len(before) != len(now):
            return None
        return [
            b if b is not None and n is not None and b != n else None
            for b, n in zip(before, now, strict=True)
        ]

    def native_calls(self, sql: str) -> tuple[str | None, set[tuple[str, str]]]:
        from ._postgres_check import engine_calls

        return engine_calls(sql)

    # -- reflection -------------------------------------------------------------------------

    async def reflect_tables(self, settings: Settings) -> tuple[list[Any], str]:
        from ._postgres_reflect import database_name, reflect_postgres

        tables = await reflect_postgres(settings)
        return tables, database_name(settings.database.url)

    def connect_error(self, error: BaseException, url: str, doing: str) -> SqlmodeError:
        from ._postgres_errors import explain_postgres_error

        return explain_postgres_error(error, url, doing)

    def describe_target(self, url: str) -> str:
        from ._postgres_errors import describe_target

        return describe_target(url)

    # -- execution --------------------------------------------------------------------------

    async def open_executor(self, settings: Settings, snapshot: Any = None) -> Executor:
        from ._postgres_exec import PostgresExecutor

        executor = PostgresExecutor(settings)
        await executor.start(snapshot)
        return executor

    async def open_write_executor(self, settings: Settings) -> Any:
        from ._postgres_writes import PostgresWriteExecutor

        writer = PostgresWriteExecutor(settings)
        await writer.start()
        return writer

    # -- the engine check -------------------------------------------------------------------

    async def function_catalog(self, executor: Executor) -> Any:
        from ..schema.functions import catalog_from_rows

        rows = await executor.catalog_query(_CATALOG_SQL)
        where = await executor.catalog_query(_SEARCH_PATH_SQL)
        path, database = (where[0][0] or [], str(where[0][1] or "")) if where else ([], "")
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
    ) -> BoundAccess:
        from ._postgres_check import bound_access

        return await bound_access(
            sql,
            executor,
            traits=self.traits,
            snapshot=snapshot,
            policy=policy,
            written_functions=written_functions,
            load_catalog=load_catalog,
            estimates=estimates,
        )

    # -- grants -----------------------------------------------------------------------------

    def grant_script(self, settings: Settings, snapshot: Any, **options: Any) -> str:
        from ._postgres_grants import grant_script

        return grant_script(settings, snapshot, **options)

    def writer_script(self, settings: Settings, snapshot: Any, *, role: str) -> str:
        from ._postgres_writer_role import writer_script

        return writer_script(settings, snapshot, role=role)

    async def apply_grants(self, admin_url: str, script: str) -> str:
        from ._postgres_grants import apply_grants

        return await apply_grants(admin_url, script)

    async def role_exists(self, admin_url: str, role: str) -> bool:
        from ._postgres_grants import role_exists

        return await role_exists(admin_url, role)


# One row per function: schema, name, volatile?, built-in?, kind. ``provolatile = 'v'``: may
# change the database or return different results within one statement; a built-in lives in
# pg_catalog, and a user function elsewhere can shadow it (``public.lower(integer)`` is chosen
# over ``pg_catalog.lower(text)`` for ``lower(5)``).
_CATALOG_SQL = (
    "SELECT n.nspname, p.proname, p.provolatile = 'v', n.nspname = 'pg_catalog', p.prokind::text "
    "FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
    "WHERE n.nspname <> 'information_schema'"
)
# The schemas an unqualified function name is looked up in, in order.
_SEARCH_PATH_SQL = "SELECT current_schemas(true), current_database()"

ENGINE = PostgresEngine()


def check_url(url: str) -> None:
    """Raise DATABASE_URL_INVALID, saying what is wrong, for a PostgreSQL URL that cannot work
    (for callers outside engines/ that need a PostgreSQL database by name, like the sample loader)."""
    from ._postgres_errors import check_postgres_url

    check_postgres_url(url)
