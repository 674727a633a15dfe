"""The seam holds: a third engine (SQLite, tests/engines/sqlite_engine.py) written as one module
and registered by URL scheme runs through CodeModeService, validate -> execute, on a real file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlmode.config import Settings, settings_from_dict
from sqlmode.engines import engine_for_url, register_engine, unregister_engine
from sqlmode.errors import ConfigError
from sqlmode.service import CodeModeService
from tests.engines.sqlite_engine import SQLiteEngine
from tests.plugins.sample import TEST_AUDIT_KEY, TEST_TOKEN_SECRET

ROWS = [(1, "Ana", "111-22-3333", "EMEA"), (2, "Bo", "444-55-6666", "NA"), (3, "Cy", "777-88-9999", "EMEA")]


@pytest.fixture
def sqlite_engine() -> Iterator[SQLiteEngine]:
    engine = SQLiteEngine()
    register_engine(engine)
    yield engine
    unregister_engine(engine)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, ssn TEXT, region TEXT)")
    con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", ROWS)
    con.commit()
    con.close()
    return path


def settings(path: Path, tmp_path: Path) -> Settings:
    return settings_from_dict(
        {
            "database": {"url": f"sqlite:///{path}"},
            "code_mode": {
                "token_secret": TEST_TOKEN_SECRET,
                "blocked_fields": ["customers.ssn"],
                # SQLite cannot describe a query's binding without running it: its check refuses.
                "engine_confirmation": False,
            },
            "audit": {"path": str(tmp_path / "audit.jsonl"), "key": TEST_AUDIT_KEY},
        }
    )


def snapshot_rows(path: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT * FROM customers ORDER BY id").fetchall()
    finally:
        con.close()


def test_the_scheme_is_unknown_until_registered(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sqlite:// URLs \(known: duckdb://, postgres://, postgresql://\)"):
        engine_for_url("sqlite:///x.db")
    with pytest.raises(ConfigError, match=r"write duckdb:///file\.duckdb or postgresql://user@host:5432/db"):
        settings(tmp_path / "x.db", tmp_path)


async def test_validate_then_execute_on_sqlite(
    sqlite_engine: SQLiteEngine, warehouse: Path, tmp_path: Path
) -> None:
    s = settings(warehouse, tmp_path)
    async with CodeModeService(s) as svc:
        assert svc.engine is sqlite_engine
        assert "customers" in await svc.schema_text()
        v = await svc.validate("SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region")
        assert v.is_valid, v.violations
        assert v.dialect == "sqlite" and v.approval_token
        result = await svc.execute(v.normalized_code, v.approval_token)
        assert result.rows == [["EMEA", 2], ["NA", 1]]
        assert [c.name for c in result.columns] == ["region", "n"]

        refused = await svc.validate("SELECT name, ssn FROM customers")
        assert not refused.is_valid and "COLUMN_BLOCKED" in [x.code for x in refused.violations]
        assert refused.approval_token is None
    assert snapshot_rows(warehouse) == ROWS


async def test_engine_given_by_injection(
    sqlite_engine: SQLiteEngine, warehouse: Path, tmp_path: Path
) -> None:
    async with CodeModeService(settings(warehouse, tmp_path), engine=sqlite_engine) as svc:
        v = await svc.validate("SELECT name FROM customers WHERE id = 2")
        assert v.is_valid, v.violations
        assert (await svc.execute(v.normalized_code, v.approval_token or "")).rows == [["Bo"]]


async def test_the_session_is_read_only_whatever_the_analyzer_says(
    sqlite_engine: SQLiteEngine, warehouse: Path, tmp_path: Path
) -> None:
    executor = await sqlite_engine.open_executor(settings(warehouse, tmp_path))
    try:
        # A read-looking statement that writes: the database itself refuses it.
        with pytest.raises(Exception, match=r"readonly|read-only|query_only|attempt to write"):
            await executor.run("WITH x AS (SELECT 1) DELETE FROM customers")
    finally:
        await executor.close()
    assert snapshot_rows(warehouse) == ROWS


async def test_no_grants_and_no_writes(sqlite_engine: SQLiteEngine, warehouse: Path, tmp_path: Path) -> None:
    s = settings(warehouse, tmp_path)
    with pytest.raises(ConfigError, match="no roles"):
        sqlite_engine.grant_script(s, None, role="r")
    with pytest.raises(ConfigError, match="read-only"):
        await sqlite_engine.open_write_executor(s)
