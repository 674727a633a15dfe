"""Hand-built snapshots of the sample warehouse and analyzers per dialect."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from sqlmode.analyze import Analyzer
from sqlmode.config import Settings, settings_from_dict
from sqlmode.models import Analysis
from sqlmode.schema.snapshot import ColumnInfo, SchemaSnapshot, TableInfo
from tests.narrow import as_dialect

SAMPLE_TABLES = {
    "customers": ("id", "name", "email", "ssn", "region", "segment", "created_at"),
    "products": ("id", "name", "category", "price"),
    "orders": ("id", "customer_id", "status", "total", "created_at"),
    "order_items": ("order_id", "product_id", "quantity", "unit_price"),
    "support_tickets": ("id", "customer_id", "opened_at", "closed_at", "priority", "status", "subject"),
    "contacts": ("id", "customer_id", "contacted_at", "channel", "rep"),
    "credentials": ("id", "user_id", "secret"),
    "audit_log": ("id", "at", "actor", "action", "detail"),
}
# Not in the sample warehouse: columns named like SQL keywords that must not trip the analyzer.
EXTRA_TABLES = {"subscriptions": ("id", "customer_id", "plan", "deleted_at", "update_count", "created_at")}
BLOCKED_TABLES = ["credentials", "audit_log"]
BLOCKED_FIELDS = ["customers.ssn"]
URLS = {"duckdb": "duckdb:///unused.duckdb", "postgres": "postgresql://reader@localhost:5432/warehouse"}


def _type(column: str) -> str:
    return "INTEGER" if column.endswith("id") else "VARCHAR"


def sample_snapshot(dialect: str, extra: Mapping[str, tuple[str, ...]] | None = None) -> SchemaSnapshot:
    """The sample warehouse as the schema layer would reflect it (types do not matter here)."""
    tables = [
        TableInfo(name=name, columns=tuple(ColumnInfo(c, _type(c)) for c in cols))
        for name, cols in {**SAMPLE_TABLES, **(extra or {})}.items()
    ]
    return SchemaSnapshot.build(
        as_dialect(dialect), "warehouse", tables, blocked_tables=BLOCKED_TABLES, blocked_fields=BLOCKED_FIELDS
    )


def make_settings(dialect: str, **code_mode: Any) -> Settings:
    cm = {"blocked_tables": BLOCKED_TABLES, "blocked_fields": BLOCKED_FIELDS, "max_rows": 1000, **code_mode}
    return settings_from_dict({"database": {"url": URLS[dialect]}, "code_mode": cm})


@pytest.fixture(scope="session", params=["duckdb", "postgres"])
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def analyzers() -> dict[str, Analyzer]:
    return {d: Analyzer(make_settings(d)) for d in URLS}


@pytest.fixture(scope="session")
def snapshots() -> dict[str, SchemaSnapshot]:
    return {d: sample_snapshot(d) for d in URLS}


@pytest.fixture
def analyze(
    dialect: str, analyzers: dict[str, Analyzer], snapshots: dict[str, SchemaSnapshot]
) -> Callable[[str], Analysis]:
    """analyze(sql) in the current dialect."""
    return lambda sql: analyzers[dialect].analyze(sql, snapshots[dialect])


@pytest.fixture(scope="session")
async def analyze_pg_template(pg_admin_url: str) -> str:
    """Name of a database holding the sample warehouse (analyzed), to copy with TEMPLATE."""
    import asyncpg

    from sqlmode.sample import load_sample_postgres
    from tests.plugins.postgres import with_database

    name = f"sqlmode_analyze_tpl_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = with_database(pg_admin_url, name)
    await load_sample_postgres(url, scale=1)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE")  # fills pg_stats, as autovacuum would
    finally:
        await conn.close()
    return name
