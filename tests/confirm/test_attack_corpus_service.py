"""Every attack fixture through the whole service: refused, nothing blocked comes back, nothing changes.

tests/analyze/test_fixtures.py checks the analyzer's verdict on each attack; this runs each one
through ``validate`` (analyzer, engine check, policy) on DuckDB and on PostgreSQL connected as the
superuser and as the reader role. A case that validated would be executed and its rows searched:
no answer, valid or not, may carry a value of the blocked ``customers.ssn``. The row count of every
table is compared before and after. One service per login serves all cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import asyncpg
import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.service import CodeModeService
from tests.fixtures.cases import attack_cases

SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
TABLES = ("customers", "orders", "order_items", "products", "support_tickets", "contacts", "credentials")
COUNTS = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in TABLES)


async def _leaks_and_acceptances(settings: Settings, dialect: str, ssns: set[str]) -> list[str]:
    found: list[str] = []
    async with CodeModeService(settings) as svc:
        for case in attack_cases(dialect):
            result = await svc.validate(case.sql)
            shown = result.model_dump_json()
            if result.is_valid:
                assert result.approval_token
                ran = await svc.execute(result.normalized_code, result.approval_token)
                shown += ran.model_dump_json()
                found.append(f"{case.name}: validated and ran")
            leaked = ssns.intersection(SSN.findall(shown))
            if leaked:
                found.append(f"{case.name}: answered with {len(leaked)} SSN(s)")
    return found


def test_the_warehouse_holds_ssns_to_find(sample_duckdb_path: Path) -> None:
    # The search below can fail: the blocked column holds values of the searched shape.
    con = duckdb.connect(str(sample_duckdb_path), read_only=True)
    try:
        ssns = [r[0] for r in con.execute("SELECT ssn FROM customers").fetchall()]
    finally:
        con.close()
    assert len(ssns) > 100 and all(SSN.fullmatch(s) for s in ssns)


async def test_duckdb_refuses_every_attack_and_returns_no_ssn(
    sample_settings: Settings, sample_duckdb_path: Path
) -> None:
    def read() -> tuple[set[str], list[tuple[object, ...]]]:
        con = duckdb.connect(str(sample_duckdb_path), read_only=True)
        try:
            ssns = {r[0] for r in con.execute("SELECT ssn FROM customers").fetchall()}
            return ssns, con.execute(COUNTS).fetchall()
        finally:
            con.close()

    ssns, before = read()
    assert await _leaks_and_acceptances(sample_settings, "duckdb", ssns) == []
    assert read()[1] == before


@pytest.mark.postgres
@pytest.mark.parametrize("login", ["superuser", "reader"])
async def test_postgres_refuses_every_attack_and_returns_no_ssn(
    login: str,
    pg_sample_url: str,
    pg_reader_url: str,
    pg_settings_factory: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    conn = await asyncpg.connect(pg_sample_url)
    try:
        ssns = {r[0] for r in await conn.fetch("SELECT ssn FROM customers")}
        before = [tuple(r) for r in await conn.fetch(COUNTS)]
        url = pg_sample_url if login == "superuser" else pg_reader_url
        settings = pg_settings_factory(url, {"audit": {"path": str(tmp_path / "audit.jsonl")}})
        assert await _leaks_and_acceptances(settings, "postgres", ssns) == []
        assert [tuple(r) for r in await conn.fetch(COUNTS)] == before
    finally:
        await conn.close()
