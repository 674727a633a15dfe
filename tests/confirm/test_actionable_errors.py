"""Refusals a model can act on: the column it got wrong, the engine's own spelling of a function.

- The scrubbing of error text (sqlmode/execute/errtext.py) hides every quoted token the query did
  not write. PostgreSQL qualifies the column of a GROUP BY mistake (``"orders.status"``) though the
  query wrote ``status`` from ``orders``; hiding it left the model an error it could not act on. A
  qualified name is kept when the query names each part; anything else stays hidden.
- A function from another SQL dialect is refused by the allowlist (FUNCTION_NOT_ALLOWED), by the
  database (ENGINE_REFUSED) or, when sqlglot translates it into something else, by the round trip
  (ROUND_TRIP_MISMATCH). Each hint carries the engine's dialect notes, and the spelling they give
  passes and runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sqlmode.config import Settings
from sqlmode.execute.errtext import HIDDEN, scrub
from sqlmode.service import CodeModeService

GROUPING_MISTAKE = "SELECT upper(status) AS s, count(*) AS n FROM orders GROUP BY 1 ORDER BY lower(status)"


@pytest.fixture
async def svc(login_settings: Settings) -> AsyncIterator[CodeModeService]:
    async with CodeModeService(login_settings) as service:
        yield service


async def test_a_grouping_mistake_names_the_column(svc: CodeModeService) -> None:
    v = await svc.validate(GROUPING_MISTAKE)
    assert not v.is_valid and v.approval_token is None
    text = " ".join(x.message for x in v.violations)
    assert "GROUP BY" in text, text
    assert '"orders.status"' in text or '"status"' in text, text  # PostgreSQL qualifies it


# (another dialect's spelling, the code it gets, what the hint offers instead, that spelling, its answer)
FOREIGN = {
    "postgres": [
        (
            "SELECT datediff('day', DATE '2024-01-01', DATE '2024-03-01') AS days",
            "ROUND_TRIP_MISMATCH",
            "date2 - date1 (days)",
            "SELECT DATE '2024-03-01' - DATE '2024-01-01' AS days",
            60,
        ),
        (
            "SELECT strftime('%Y-%m', DATE '2024-01-01') AS ym",
            "ENGINE_REFUSED",
            "to_char(ts, 'YYYY-MM')",
            "SELECT to_char(DATE '2024-01-01', 'YYYY-MM') AS ym",
            "2024-01",
        ),
    ],
    "duckdb": [
        (
            "SELECT date_format(DATE '2024-01-01', '%Y-%m') AS ym",
            "ENGINE_REFUSED",
            "strftime(ts, '%Y-%m')",
            "SELECT strftime(DATE '2024-01-01', '%Y-%m') AS ym",
            "2024-01",
        ),
        (  # DuckDB's own limit: QUALIFY with GROUP BY ALL (EngineTraits.error_hints)
            "SELECT v FROM (VALUES (1), (1), (2)) t(v) GROUP BY ALL "
            "QUALIFY rank() OVER (ORDER BY count(*) DESC) < 2",
            "ENGINE_REFUSED",
            "list the grouped columns",
            "SELECT v FROM (VALUES (1), (1), (2)) t(v) GROUP BY v "
            "QUALIFY rank() OVER (ORDER BY count(*) DESC) < 2",
            1,
        ),
        (  # sqlglot has no DuckDB rendering of to_char: the analyzer's refusal names strftime too
            "SELECT to_char(DATE '2024-01-01', 'YYYY-MM') AS ym",
            "ANALYSIS_FAILED",
            "strftime(ts, '%Y-%m')",
            "SELECT strftime(DATE '2024-01-01', '%Y-%m') AS ym",
            "2024-01",
        ),
        (
            "SELECT timestampdiff(DAY, DATE '2024-01-01', DATE '2024-03-01') AS days",
            "FUNCTION_NOT_ALLOWED",
            "date_diff('day', a, b)",
            "SELECT date_diff('day', DATE '2024-01-01', DATE '2024-03-01') AS days",
            60,
        ),
    ],
}


# Refusals that say whose spelling it was (analyze/foreign.py): the same on both engines.
FOREIGN_ANY: list[tuple[str, str, str, str, object]] = [
    (
        "SELECT getdate() IS NOT NULL AS ok",
        "FUNCTION_NOT_ALLOWED",
        "now()",
        "SELECT now() IS NOT NULL AS ok",
        True,
    ),
    (
        "SELECT isnull(NULL, 5) AS v",
        "FUNCTION_NOT_ALLOWED",
        "coalesce(value, fallback)",
        "SELECT coalesce(NULL, 5) AS v",
        5,
    ),
    (
        "SELECT safe_divide(7, 0) AS v",
        "FUNCTION_NOT_ALLOWED",
        "a / NULLIF(b, 0)",
        "SELECT 7 / NULLIF(0, 0) AS v",
        None,
    ),
]
FOREIGN["duckdb"].append(
    (
        "SELECT string_agg(s, ',') WITHIN GROUP (ORDER BY s) AS v FROM (VALUES ('b'), ('a')) t(s)",
        "PARSE_ERROR",
        "string_agg(x, ', ' ORDER BY x)",
        "SELECT string_agg(s, ',' ORDER BY s) AS v FROM (VALUES ('b'), ('a')) t(s)",
        "a,b",
    )
)
# A planning error that is mostly another dialect's habit (EngineTraits.error_hints).
FOREIGN_ANY.append(
    (
        "SELECT v + ' ' + w AS t FROM (VALUES ('a', 'b')) x(v, w)",
        "ENGINE_REFUSED",
        "join text with ||",
        "SELECT v || ' ' || w AS t FROM (VALUES ('a', 'b')) x(v, w)",
        "a b",
    )
)
FOREIGN["duckdb"].append(
    (
        "SELECT DATE_SUB(DATE '2024-01-08', INTERVAL 7 DAY) AS d",
        "ENGINE_REFUSED",
        "ts - INTERVAL 7 DAY",
        "SELECT CAST(DATE '2024-01-08' - INTERVAL 7 DAY AS DATE) = DATE '2024-01-01' AS ok",
        True,
    )
)


async def test_a_binder_error_lists_a_few_candidates_not_every_overload(svc: CodeModeService) -> None:
    """DuckDB lists every overload it tried (56 for `+`, about 3 KB); the model reads the first few."""
    v = await svc.validate("SELECT v + ' ' + w AS t FROM (VALUES ('a', 'b')) x(v, w)")
    (refusal,) = v.violations
    assert refusal.code == "ENGINE_REFUSED" and len(refusal.message) < 700, refusal.message
    if "Candidate functions:" in refusal.message:  # DuckDB's wording; PostgreSQL names the operator
        assert refusal.message.count("\n\t") <= 6 and "more" in refusal.message.splitlines()[-1]


# An output alias in WHERE or HAVING: DuckDB binds it, PostgreSQL refuses a column it cannot find.
FOREIGN["postgres"] += [
    (
        "SELECT count(*) AS n FROM (VALUES (1), (2), (3)) t(v) GROUP BY v % 2 HAVING n > 1",
        "ENGINE_REFUSED",
        "`n` is the alias of an output column (COUNT(*)), and PostgreSQL does not let WHERE or HAVING",
        "SELECT count(*) AS n FROM (VALUES (1), (2), (3)) t(v) GROUP BY v % 2 HAVING count(*) > 1",
        2,
    ),
    (
        "SELECT v * 10 AS big FROM (VALUES (1), (2)) t(v) WHERE big > 10",
        "ENGINE_REFUSED",
        "`big` is the alias of an output column (v * 10)",
        "SELECT v * 10 AS big FROM (VALUES (1), (2)) t(v) WHERE v * 10 > 10",
        20,
    ),
    (  # DuckDB's try(): sqlglot cannot render it for PostgreSQL (the analyzer's ANALYSIS_FAILED)
        "SELECT try(CAST('5' AS INTEGER)) AS r",
        "ANALYSIS_FAILED",
        "PostgreSQL has no try()",
        "SELECT CASE WHEN '5' ~ '^[0-9]+$' THEN '5'::int END AS r",
        5,
    ),
    (  # PostgreSQL's own rules of DISTINCT and GROUP BY (EngineTraits.error_hints)
        "SELECT DISTINCT w FROM (VALUES (1, 'a'), (2, 'a')) t(v, w) ORDER BY v",
        "ENGINE_REFUSED",
        "With SELECT DISTINCT, ORDER BY only what is selected",
        "SELECT w FROM (VALUES (1, 'a'), (2, 'a')) t(v, w) GROUP BY w ORDER BY min(v)",
        "a",
    ),
    (
        "SELECT v FROM (VALUES (1, 'a'), (2, 'a')) t(v, w) GROUP BY w",
        "ENGINE_REFUSED",
        "add it to GROUP BY, or aggregate it (min(x)",
        "SELECT min(v) FROM (VALUES (1, 'a'), (2, 'a')) t(v, w) GROUP BY w",
        1,
    ),
]


def test_a_column_the_database_misses_that_no_alias_names_keeps_the_general_hint() -> None:
    from sqlmode.engines.postgres import TRAITS
    from sqlmode.execute.confirm import output_alias_hint

    code = 'SELECT v * 10 AS "Big" FROM (VALUES (1)) t(v) WHERE big > 10'
    assert output_alias_hint('column "big" does not exist', code, TRAITS) is None  # quoted: another name
    assert output_alias_hint('column "zz" does not exist', code, TRAITS) is None
    assert output_alias_hint("syntax error", code, TRAITS) is None


# Functions of the other engine (EngineTraits.missing_functions): the database refuses them.
FOREIGN["postgres"] += [
    (
        "SELECT arg_max(v, w) AS x FROM (VALUES (1, 10), (2, 20)) t(v, w)",
        "ENGINE_REFUSED",
        "(array_agg(x ORDER BY y DESC))[1]",
        "SELECT (array_agg(v ORDER BY w DESC))[1] AS x FROM (VALUES (1, 10), (2, 20)) t(v, w)",
        2,
    ),
    (
        "SELECT approx_count_distinct(v) AS n FROM (VALUES (1), (1), (2)) t(v)",
        "ENGINE_REFUSED",
        "count(DISTINCT x)",
        "SELECT count(DISTINCT v) AS n FROM (VALUES (1), (1), (2)) t(v)",
        2,
    ),
    (
        "SELECT array_length([1, 2], 1) AS n",
        "PARSE_ERROR",
        "ARRAY['a', 'b']",
        "SELECT array_length(ARRAY[1, 2], 1) AS n",
        2,
    ),
]
FOREIGN["duckdb"] += [
    ("SELECT btrim('  x ') AS t", "ENGINE_REFUSED", "trim(text)", "SELECT trim('  x ') AS t", "x"),
    (
        "SELECT json_build_object('a', 1)::VARCHAR AS j",
        "ENGINE_REFUSED",
        "json_object('key', value, ...)",
        "SELECT json_object('a', 1)::VARCHAR AS j",
        '{"a":1}',
    ),
]
FOREIGN["duckdb"] += [
    (  # DuckDB names count(*) "count_star()": the database misses `t.count`, the hint names the fix
        "SELECT t.count FROM (SELECT count(*) FROM (VALUES (1), (2)) v(x)) t",
        "ENGINE_REFUSED",
        "write COUNT(*) AS count and use that name",
        "SELECT t.count FROM (SELECT count(*) AS count FROM (VALUES (1), (2)) v(x)) t",
        2,
    ),
    (  # ... and the analyzer misses `count` in ORDER BY (PostgreSQL's ORDER BY would find it)
        "SELECT count(*) FROM (VALUES (1), (1), (2)) v(x) GROUP BY x ORDER BY count DESC LIMIT 1",
        "UNKNOWN_COLUMN",
        "write COUNT(*) AS count and use that name",
        "SELECT count(*) AS count FROM (VALUES (1), (1), (2)) v(x) GROUP BY x ORDER BY count DESC LIMIT 1",
        2,
    ),
]
FOREIGN["postgres"].append(
    (
        "SELECT DATE '2024-01-01' + INTERVAL 7 DAY = DATE '2024-01-08' AS ok",
        "PARSE_ERROR",
        "INTERVAL '7 days'",
        "SELECT DATE '2024-01-01' + INTERVAL '7 days' = DATE '2024-01-08' AS ok",
        True,
    )
)


async def test_another_dialects_function_gets_the_engines_own_spelling(svc: CodeModeService) -> None:
    for foreign, code, offered, spelling, answer in FOREIGN[svc.engine.traits.sqlglot_dialect] + FOREIGN_ANY:
        v = await svc.validate(foreign)
        assert code in [x.code for x in v.violations] and v.approval_token is None, (foreign, v.violations)
        hints = " ".join(x.hint for x in v.violations)
        assert offered in hints, (foreign, hints)
        ok = await svc.validate(spelling)
        assert ok.is_valid, (spelling, ok.violations)
        result = await svc.execute(ok.normalized_code, ok.approval_token or "")
        assert result.rows == [[answer]], (spelling, result.rows)


def test_a_qualified_name_shows_only_when_the_query_names_every_part() -> None:
    sql = "SELECT created_at FROM orders"
    assert scrub('column "orders.created_at" x', sql) == 'column "orders.created_at" x'
    for hidden in ('"customers.ssn"', '"orders.ssn"', '"public.orders.secret"', '"12.50"', '"orders."'):
        assert scrub(f"column {hidden} x", sql) == f'column "{HIDDEN}" x', hidden


async def test_a_refused_function_is_named_as_the_query_wrote_it(svc: CodeModeService) -> None:
    # sqlglot reads gen_random_uuid() as its `uuid` node; the refusal named `uuid`, a call never written.
    v = await svc.validate("SELECT GEN_RANDOM_UUID() AS u, id FROM orders")
    assert [x.code for x in v.violations] == ["FUNCTION_NOT_ALLOWED"], v.violations
    assert "`gen_random_uuid`" in v.violations[0].message and "`uuid`" not in v.violations[0].message


async def test_an_outer_query_may_name_what_the_database_names_an_item_without_as(
    svc: CodeModeService,
) -> None:
    """PostgreSQL names `count(*)` "count" and `max(total)` "max": an outer query may use those
    names. The analyzer leaves such a name to the database (what the item holds is checked where
    it is written); DuckDB names them otherwise and refuses, and the hint says to add AS."""
    code = (
        "SELECT s.status, s.count, s.max FROM (SELECT status, count(*), max(total) FROM orders "
        "GROUP BY status) s WHERE count > 0 ORDER BY s.count DESC, s.status"
    )
    aliased = (
        "SELECT status, count(*) AS count, max(total) AS max FROM orders GROUP BY status "
        "ORDER BY count DESC, status"
    )
    v = await svc.validate(code)
    if svc.engine.traits.sqlglot_dialect == "duckdb":
        assert [x.code for x in v.violations] == ["ENGINE_REFUSED"] and v.approval_token is None
        assert "AS count and use that name" in (v.violations[0].hint or ""), v.violations
        return
    assert v.is_valid, v.violations
    got = await svc.execute(v.normalized_code, v.approval_token or "")
    ok = await svc.validate(aliased)
    want = await svc.execute(ok.normalized_code, ok.approval_token or "")
    assert [c.name for c in got.columns] == ["status", "count", "max"]
    assert got.rows == want.rows and len(got.rows) > 1


def test_the_hint_for_an_item_without_as_names_a_fix_only_where_one_fits() -> None:
    from sqlglot import parse_one

    from sqlmode.analyze.names import unnamed_item_hint

    root = parse_one("SELECT t.n FROM (SELECT count(*), total + 1 FROM orders) t", read="duckdb")
    hint = unnamed_item_hint(root, "count", "duckdb", by_call=True)
    assert hint is not None and "COUNT(*) AS count" in hint
    assert unnamed_item_hint(root, "n", "duckdb", by_call=True) is None  # no item calls n()
    generic = unnamed_item_hint(root, "n", "duckdb", by_call=False)  # two candidates: no guess
    assert generic is not None and " AS n" not in generic and "with AS" in generic
    one = parse_one("SELECT t.x FROM (SELECT total + 1 FROM orders) t", read="duckdb")
    assert "total + 1 AS x" in (unnamed_item_hint(one, "x", "duckdb", by_call=False) or "")
    assert " AS ?column?" not in (unnamed_item_hint(one, "?column?", "duckdb", by_call=False) or "")
    assert unnamed_item_hint(parse_one("SELECT a AS b FROM t"), "c", "duckdb", by_call=False) is None
