"""Refusals that name a function as another dialect's must be true of the engine.

Two tables say so: analyze/foreign.py's FUNCTIONS (calls off the allowlist that are SQL Server's,
MySQL's, ...: "not DuckDB's" / "not PostgreSQL's") and each engine's
EngineTraits.missing_functions (the ENGINE_REFUSED hint for a function the database says does not
exist). No name in them may be a function the engine has: the hint would send the model away from
a query that only had another mistake. test_actionable_errors.py follows some of the advice to a
query that runs.
"""

from __future__ import annotations

import asyncpg
import duckdb
import pytest

from sqlmode.analyze.foreign import FUNCTIONS as FOREIGN
from sqlmode.engines import engine_named
from sqlmode.execute.confirm import missing_function_hint

PG = dict(engine_named("postgres").traits.missing_functions)
DUCK = dict(engine_named("duckdb").traits.missing_functions)


@pytest.mark.parametrize(
    ("message", "found"),
    [
        (
            "The database rejected the query: function approx_distinct(integer) does not exist",
            "approx_distinct",
        ),
        (
            "DuckDB rejected the query: Catalog Error: Scalar Function with name btrim does not exist!",
            "btrim",
        ),
        (
            "DuckDB rejected the query: Catalog Error: Aggregate Function with name json_agg does not exist!",
            "json_agg",
        ),
    ],
)
def test_the_missing_function_is_read_from_either_engines_words(message: str, found: str) -> None:
    assert missing_function_hint(message, {found: "write this"}) == "write this"
    assert missing_function_hint(message, {"other": "no"}) is None
    # any other refusal keeps the generic hint
    assert missing_function_hint('column "x" does not exist', {"x": "no"}) is None


def test_duckdb_has_none_of_the_functions_named_as_others() -> None:
    con = duckdb.connect()
    names = {r[0] for r in con.execute("SELECT DISTINCT function_name FROM duckdb_functions()").fetchall()}
    assert DUCK and FOREIGN
    assert not names & (set(DUCK) | set(FOREIGN))


async def test_postgres_has_none_of_the_functions_named_as_others(pg_admin_url: str) -> None:
    con = await asyncpg.connect(pg_admin_url)
    try:
        rows = await con.fetch(
            "SELECT DISTINCT proname FROM pg_proc WHERE proname = ANY($1::text[])", [*PG, *FOREIGN]
        )
    finally:
        await con.close()
    assert PG and [r[0] for r in rows] == []
