"""The engine registry: URL schemes select engines; an unknown scheme is a clear ConfigError."""

from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize(
    ("path", "url"),
    [("w.duckdb", "duckdb:///w.duckdb"), ("/abs/w.duckdb", "duckdb:////abs/w.duckdb"), (":memory:", None)],
)
def test_a_bare_path_belongs_to_the_file_engine(path: str, url: str | None) -> None:
    from sqlmode.engines.base import file_engine, is_file_url, memory_url, path_of_url, url_for_path

    assert file_engine() is engine_named("duckdb")
    built = url_for_path(path)
    assert built == (url or memory_url()) and is_file_url(built)
    assert path_of_url(built) == path
    assert not is_file_url("postgresql://u@h/db") and not is_file_url("mysql://u@h/db")


def test_a_registered_file_engine_has_its_paths_resolved(tmp_path: Path) -> None:
    # The seam, not a DuckDB special case: any engine whose traits say file_based gets
    # config's relative-path resolution.
    import dataclasses

    from sqlmode.config import load_config
    from sqlmode.engines import register_engine, unregister_engine

    from .sqlite_engine import SQLiteEngine

    engine = SQLiteEngine()
    engine.traits = dataclasses.replace(engine.traits, file_based=True)
    register_engine(engine)
    try:
        cfg = tmp_path / "sqlmode.toml"
        cfg.write_text('[database]\nurl = "sqlite:///data/w.db"\n', encoding="utf-8")
        settings = load_config(cfg)
        assert settings.database.url == f"sqlite:///{tmp_path / 'data' / 'w.db'}"
    finally:
        unregister_engine(engine)
