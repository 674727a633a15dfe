"""The engine registry: URL schemes select engines; an unknown scheme is a clear ConfigError."""

from __future__ import annotations

import pytest

from sqlmode.engines import Engine, engine_for_url, engine_named, known_schemes
from sqlmode.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("duckdb:///warehouse.duckdb", "duckdb"),
        ("duckdb:////abs/w.duckdb", "duckdb"),
        ("postgresql://reader@db:5432/shop", "postgres"),
        ("postgres://reader@db/shop", "postgres"),
        ("postgresql+asyncpg://reader@db/shop", "postgres"),
        ("PostgreSQL://reader@db/shop", "postgres"),
    ],
)
def test_scheme_selects_engine(url: str, name: str) -> None:
    engine = engine_for_url(url)
    assert isinstance(engine, Engine)
    assert engine.traits.name == name
    assert engine_named(name) is engine


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite:///x.db", "warehouse.duckdb", ""])
def test_unknown_scheme_names_the_known_ones(url: str) -> None:
    with pytest.raises(ConfigError) as e:
        engine_for_url(url)
    message = str(e.value)
    assert "database.url" in message
    for scheme in (
        "duckdb://",
        "postgresql://",
        "postgres://",
        "duckdb:///file.duckdb",
        "postgresql://user@host",
    ):
        assert scheme in message
    assert set(known_schemes()) >= {"duckdb", "postgres", "postgresql"}


@pytest.mark.parametrize(
    ("url", "code", "kinds"),
    [
        ("duckdb:///w.duckdb", "SELECT 1; DELETE FROM t", ("SELECT", "DELETE")),
        ("postgresql://h/db", "SELECT 1; DELETE FROM t", ("SELECT", "DELETE")),
        ("postgresql://h/db", "WITH d AS (DELETE FROM t RETURNING 1) SELECT 1", ("SELECT",)),
    ],
)
def test_native_parser_counts_statements(url: str, code: str, kinds: tuple[str, ...]) -> None:
    assert engine_for_url(url).native_statements(code).types == kinds


def test_native_refusals_see_nested_writes_on_postgres() -> None:
    pg = engine_for_url("postgresql://h/db")
    view = pg.native_statements("WITH d AS (DELETE FROM t RETURNING 1) SELECT 1")
    assert pg.native_refusals(view) == ["NESTED_WRITE"]
    assert pg.native_refusals(pg.native_statements("SELECT 1 FOR UPDATE")) == ["LOCKING_CLAUSE"]
