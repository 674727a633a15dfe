"""A small warehouse with traps the analyzer cannot see, in DuckDB and in PostgreSQL.

Tables customers, orders, credentials (blocked), support_tickets (one planted prompt injection),
and views an administrator might create without thinking twice:

- ``recent_logins``: a plain projection of the blocked ``credentials`` table;
- ``customer_cards``: exposes the blocked ``customers.ssn`` renamed to ``tax_id``;
- ``order_totals``: a harmless aggregate over ``orders`` (must keep working).

PostgreSQL adds user-defined functions (a VOLATILE one that writes, a STABLE one, an inlinable
set-returning one over ``credentials``) and a ``staging`` schema holding another ``orders`` and a
``lower(integer)``, put first on the search_path of a second reader role (``pg_world.shadow_url``).

- ``make_duck(extra_sql=()) -> Path``: a fresh DuckDB file of the warehouse, plus ``extra_sql``.
- ``duck_settings(path, overrides=None) -> Settings`` and ``pg_world.settings(url, overrides)``.
- ``pg_world`` (session): the PostgreSQL database, its reader URL and shadowed reader URL.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.sample import generator
from tests.plugins.postgres import create_database
from tests.plugins.sample import deep_merge

INJECTION_SUBJECT: str = generator().INJECTION_SUBJECT
EXPOSED = ["customers", "orders", "support_tickets", "recent_logins", "customer_cards", "order_totals"]

# Portable SQL (DuckDB and PostgreSQL).
BASE_SQL = f"""
CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR(100), ssn VARCHAR(20), region VARCHAR(20));
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, status VARCHAR(20), total NUMERIC(10, 2));
CREATE TABLE credentials (id INTEGER PRIMARY KEY, user_id INTEGER, secret VARCHAR(100));
CREATE TABLE support_tickets (id INTEGER PRIMARY KEY, customer_id INTEGER, subject VARCHAR(300));
INSERT INTO customers
  SELECT i, 'customer ' || CAST(i AS VARCHAR), lpad(CAST(i AS VARCHAR), 9, '0'),
         CASE i % 4 WHEN 0 THEN 'EMEA' WHEN 1 THEN 'APAC' WHEN 2 THEN 'AMER' ELSE 'LATAM' END
  FROM generate_series(1, 2000) AS g(i);
INSERT INTO orders
  SELECT i, 1 + i % 2000, CASE WHEN i % 10 = 0 THEN 'cancelled' ELSE 'completed' END, (i % 500) + 0.99
  FROM generate_series(1, 50000) AS g(i);
INSERT INTO credentials SELECT i, i, 'secret-' || CAST(i AS VARCHAR) FROM generate_series(1, 20) AS g(i);
INSERT INTO support_tickets VALUES (1, 7, '{INJECTION_SUBJECT.replace("'", "''")}');
INSERT INTO support_tickets
  SELECT i, 1 + i % 2000, 'Invoice question ' || CAST(i AS VARCHAR) FROM generate_series(2, 300) AS g(i);
CREATE VIEW recent_logins AS SELECT id, user_id FROM credentials;
CREATE VIEW customer_cards AS SELECT id, name, ssn AS tax_id FROM customers;
CREATE VIEW order_totals AS SELECT customer_id, sum(total) AS spend FROM orders GROUP BY customer_id;
"""

PG_EXTRA_SQL = """
CREATE TABLE counters (n INTEGER);
INSERT INTO counters VALUES (0);
CREATE FUNCTION public.touch_counter(x integer) RETURNS integer LANGUAGE sql VOLATILE
  AS $$ UPDATE counters SET n = n + 1 RETURNING x $$;
CREATE FUNCTION public.cents(x numeric) RETURNS bigint LANGUAGE sql STABLE
  AS $$ SELECT (x * 100)::bigint $$;
CREATE FUNCTION public.all_logins() RETURNS SETOF credentials LANGUAGE sql STABLE
  AS $$ SELECT * FROM credentials $$;
CREATE SCHEMA staging;
CREATE TABLE staging.orders (id INTEGER, customer_id INTEGER, status VARCHAR(20), total NUMERIC(10, 2));
INSERT INTO staging.orders SELECT * FROM public.orders WHERE id <= 100;
CREATE FUNCTION staging.lower(x integer) RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT 'shadowed' $$;
ANALYZE;
"""


def world_overrides(url: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    base = {
        "database": {
            "url": url,
            "build_sample": False,
            "descriptions": None,
            "tables": [{"name": t} for t in EXPOSED],
            # The world exposes definer-rights views over blocked data on purpose (engine
            # confirmation must catch them); Postgres start-up refuses such a deployment
            # (engines/_postgres_role.py), so the world runs under the development opt-out.
            "allow_privileged_role": True,
        },
        "code_mode": {"blocked_tables": ["credentials"], "blocked_fields": ["customers.ssn"]},
    }
    return deep_merge(base, overrides or {})


@pytest.fixture
def make_duck(tmp_path: Path) -> Callable[..., Path]:
    def make(extra_sql: tuple[str, ...] | list[str] = (), name: str = "world") -> Path:
        path = tmp_path / f"{name}-{secrets.token_hex(3)}.duckdb"
        con = duckdb.connect(str(path))
        try:
            con.execute(BASE_SQL)
            for stmt in extra_sql:
                con.execute(stmt)
        finally:
            con.close()
        return path

    return make


@pytest.fixture
def duck_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(path: Path, overrides: dict[str, Any] | None = None) -> Settings:
        return make_settings(world_overrides(f"duckdb:///{path}", overrides))

    return make


@dataclass
class PgWorld:
    admin_url: str
    reader_url: str
    shadow_url: str
    factory: Callable[..., Settings]

    def settings(self, url: str | None = None, overrides: dict[str, Any] | None = None) -> Settings:
        """The world's config as the reader (default) or the given URL."""
        url = url or self.reader_url
        return self.factory(url, world_overrides(url, overrides))


@pytest.fixture(scope="session")
async def pg_world(pg_admin_url: str, pg_settings_factory: Callable[..., Settings]) -> PgWorld:
    from sqlmode.engines._postgres_grants import apply_grants, grant_script
    from sqlmode.schema.reflect import reflect_schema

    url = await create_database(pg_admin_url, "sqlmode_confirm")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(BASE_SQL + PG_EXTRA_SQL)
    finally:
        await conn.close()
    settings = pg_settings_factory(url, world_overrides(url))
    snapshot = await reflect_schema(settings)
    suffix = secrets.token_hex(3)
    reader = await apply_grants(url, grant_script(settings, snapshot, role=f"sqlmode_cf_{suffix}"))
    shadow_role = f"sqlmode_cfs_{suffix}"
    shadow = await apply_grants(url, grant_script(settings, snapshot, role=shadow_role))
    conn = await asyncpg.connect(url)
    try:
        # A DBA's staging schema, first on one role's path: `orders` and `lower(int)` now mean other things.
        dbname = await conn.fetchval("SELECT current_database()")
        await conn.execute(
            f"GRANT USAGE ON SCHEMA staging TO {shadow_role};"
            f"GRANT SELECT ON staging.orders TO {shadow_role};"
            f'ALTER ROLE {shadow_role} IN DATABASE "{dbname}" SET search_path = staging, public;'
        )
    finally:
        await conn.close()
    return PgWorld(url, reader, shadow, pg_settings_factory)


@pytest.fixture(params=["duckdb", "superuser", "reader"])
def login_settings(
    request: pytest.FixtureRequest,
    make_duck: Callable[..., Path],
    duck_settings: Callable[..., Settings],
    tmp_path: Path,
) -> Settings:
    """The world on DuckDB, and on PostgreSQL logged in as the superuser and as the reader."""
    if request.param == "duckdb":
        return duck_settings(make_duck())
    world: PgWorld = request.getfixturevalue("pg_world")  # resolved at setup, outside the test's loop
    url = world.admin_url if request.param == "superuser" else world.reader_url
    return world.settings(url, {"audit": {"path": str(tmp_path / "audit.jsonl")}})
