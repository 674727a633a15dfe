"""Mechanism 4: a function runs only if the allowlist names it AND the catalog says it is safe.

The analyzer knows names; the catalog knows volatility and who defined the function. Cases the
analyzer alone passes: a VOLATILE user-defined function the config allowed by name (it writes),
a built-in that has side effects (random), a user function or macro shadowing a built-in name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService

from .conftest import PgWorld
from .util import codes, refused_by_engine

ALLOW = {"code_mode": {"functions": {"allow": ["touch_counter", "cents", "jitter"]}}}


@pytest.fixture(scope="module")
async def pg(pg_world: PgWorld) -> AsyncIterator[CodeModeService]:
    async with CodeModeService(pg_world.settings(overrides=ALLOW)) as svc:
        yield svc


async def test_postgres_volatile_user_function_allowed_by_name_is_refused(
    pg: CodeModeService, pg_world: PgWorld
) -> None:
    v = await refused_by_engine(pg, "SELECT touch_counter(id) AS x FROM orders LIMIT 3", "FUNCTION_VOLATILE")
    assert "user-defined function `touch_counter` is VOLATILE" in v.violations[0].message
    conn = await asyncpg.connect(pg_world.admin_url)
    try:  # nothing ran: the counter the function would bump is untouched
        assert await conn.fetchval("SELECT n FROM counters") == 0
    finally:
        await conn.close()


async def test_postgres_stable_user_function_allowed_by_name_runs(pg: CodeModeService) -> None:
    v = await pg.validate("SELECT id, cents(total) AS c FROM orders WHERE id = 7")
    assert v.is_valid, v.violations
    r = await pg.execute(v.normalized_code, v.approval_token or "")
    assert r.rows == [[7, 799]]


async def test_postgres_volatile_builtin_is_refused_unless_allowed(
    pg: CodeModeService, pg_world: PgWorld
) -> None:
    sql = "SELECT id FROM orders ORDER BY random() LIMIT 3"
    v = await refused_by_engine(pg, sql, "FUNCTION_VOLATILE")
    assert "built-in function `random`" in v.violations[0].message
    # The hint names what to write instead, and that runs.
    assert "TABLESAMPLE BERNOULLI" in v.violations[0].hint
    sampled = await pg.validate("SELECT id FROM orders TABLESAMPLE BERNOULLI (50) LIMIT 3")
    assert sampled.is_valid, sampled.violations
    assert len((await pg.execute(sampled.normalized_code, sampled.approval_token or "")).rows) <= 3
    allowed = pg_world.settings(overrides={"code_mode": {"functions": {"allow_volatile": ["random"]}}})
    async with CodeModeService(allowed) as svc:
        assert (await svc.validate(sql)).is_valid


async def test_postgres_user_function_shadowing_a_builtin_is_refused(pg_world: PgWorld) -> None:
    """staging.lower(integer) comes first on this role's search_path and wins for lower(<int>)."""
    async with CodeModeService(pg_world.settings(pg_world.shadow_url)) as svc:
        v = await refused_by_engine(svc, "SELECT lower(id) AS x FROM customers", "FUNCTION_SHADOWED")
        assert "staging.lower" in v.violations[0].message and "FUNCTION_VOLATILE" in codes(v)


@pytest.fixture
def duck_with(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> Callable[..., CodeModeService]:
    def make(*extra_sql: str, overrides: dict | None = None) -> CodeModeService:
        return CodeModeService(duck_settings(make_duck(extra_sql), overrides or ALLOW))

    return make


async def test_duckdb_macro_shadowing_a_builtin_is_refused(duck_with: Callable[..., CodeModeService]) -> None:
    async with duck_with("CREATE MACRO lower(x) AS 'shadowed'") as svc:
        v = await refused_by_engine(svc, "SELECT lower(name) AS x FROM customers", "FUNCTION_SHADOWED")
        assert "main.lower" in v.violations[0].message


async def test_duckdb_allowed_macro_hiding_a_side_effect_is_refused(
    duck_with: Callable[..., CodeModeService],
) -> None:
    async with duck_with("CREATE MACRO jitter(x) AS x + random()") as svc:
        v = await refused_by_engine(svc, "SELECT jitter(total) AS x FROM orders", "FUNCTION_VOLATILE")
        assert "`random`" in v.violations[0].message
        assert "SAMPLE" not in v.violations[0].hint  # the query wrote no random(): no sampling advice


async def test_duckdb_side_effect_builtins_are_refused_unless_allowed(
    duck_with: Callable[..., CodeModeService],
) -> None:
    async with duck_with() as svc:
        v = await refused_by_engine(
            svc, "SELECT id FROM orders ORDER BY random() LIMIT 3", "FUNCTION_VOLATILE"
        )
        assert "USING SAMPLE" in v.violations[0].hint
        sampled = await svc.validate("SELECT id FROM orders USING SAMPLE 3 ROWS")
        assert sampled.is_valid, sampled.violations
        assert len((await svc.execute(sampled.normalized_code, sampled.approval_token or "")).rows) == 3
        assert (await svc.validate("SELECT lower(name) AS x, now() AS t FROM customers")).is_valid
    allow = {"code_mode": {"functions": {"allow_volatile": ["random"]}}}
    async with duck_with(overrides=allow) as svc:
        assert (await svc.validate("SELECT id FROM orders ORDER BY random() LIMIT 3")).is_valid
