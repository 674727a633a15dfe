"""Executors on the sample warehouse: DuckDB (a private copy) and PostgreSQL (as the reader role)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sqlmode.config import Settings
from sqlmode.engines._duckdb_exec import DuckDBExecutor
from sqlmode.engines._postgres_exec import PostgresExecutor
from sqlmode.execute import open_executor


@pytest.fixture
def duck_copy(sample_duckdb_path: Path, tmp_path: Path) -> Path:
    """A private copy of the sample DuckDB file (tests may open it read-write)."""
    dest = tmp_path / "warehouse.duckdb"
    shutil.copyfile(sample_duckdb_path, dest)
    return dest


@pytest.fixture
def duck_settings(make_settings: Callable[..., Settings], duck_copy: Path) -> Callable[..., Settings]:
    def make(overrides: dict[str, Any] | None = None) -> Settings:
        from tests.plugins.sample import deep_merge

        return make_settings(deep_merge({"database": {"url": f"duckdb:///{duck_copy}"}}, overrides or {}))

    return make


@pytest.fixture
async def duck(duck_settings: Callable[..., Settings]) -> AsyncIterator[DuckDBExecutor]:
    async with open_executor(duck_settings()) as ex:
        assert isinstance(ex, DuckDBExecutor)
        yield ex


@pytest.fixture
def reader_settings(pg_reader_url: str, pg_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(overrides: dict[str, Any] | None = None) -> Settings:
        return pg_settings(pg_reader_url, overrides)

    return make


@pytest.fixture
async def pg(reader_settings: Callable[..., Settings]) -> AsyncIterator[PostgresExecutor]:
    async with open_executor(reader_settings()) as ex:
        assert isinstance(ex, PostgresExecutor)
        yield ex


@pytest.fixture(params=["duckdb", "postgres"])
def executor(request: pytest.FixtureRequest) -> Any:
    """Each executor in turn, for behaviour both must share."""
    return request.getfixturevalue("duck" if request.param == "duckdb" else "pg")
