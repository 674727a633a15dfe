"""`sqlmode sample-db` writes only into an empty target or one it built itself (through the CLI)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from tests.newcomer import assert_clean_error, sql, sqlmode
from tests.plugins.postgres import create_database


def _own_duckdb(path: Path) -> str:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE events(id INTEGER, kind VARCHAR)")
        con.execute("INSERT INTO events VALUES (1, 'signup'), (2, 'login')")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tables(path: Path) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return sorted(
            r[0]
            for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name='main'").fetchall()
        )


def test_own_duckdb_file_is_refused_and_left_byte_identical(tmp_path: Path) -> None:
    own = tmp_path / "warehouse.duckdb"
    before = _own_duckdb(own)
    r = sqlmode("sample-db", "--path", str(own))
    assert_clean_error(r, "did not build", "events", "--force")
    assert hashlib.sha256(own.read_bytes()).hexdigest() == before
    assert _tables(own) == ["events"]


def test_own_duckdb_named_by_the_config_is_refused(tmp_path: Path) -> None:
    own = tmp_path / "warehouse.duckdb"
    before = _own_duckdb(own)
    cfg = tmp_path / "own.toml"
    cfg.write_text('[database]\npath = "warehouse.duckdb"\n')
    r = sqlmode("sample-db", "--config", str(cfg))
    assert_clean_error(r, str(own), "events")
    assert hashlib.sha256(own.read_bytes()).hexdigest() == before


def test_new_file_builds_and_rebuilds_then_force_replaces_own(tmp_path: Path) -> None:
    new = tmp_path / "sample.duckdb"
    for _ in range(2):  # the second run replaces its own earlier build (the marker)
        r = sqlmode("sample-db", "--path", str(new))
        assert r.returncode == 0, r.stderr
        assert f"at {new}" in r.stdout
    assert "customers" in _tables(new) and "events" not in _tables(new)
    own = tmp_path / "own.duckdb"
    _own_duckdb(own)
    r = sqlmode("sample-db", "--path", str(own), "--force")
    assert r.returncode == 0, r.stderr
    assert "events" not in _tables(own) and "customers" in _tables(own)


@pytest.mark.parametrize("content", [b"id,kind\n1,a\n", b"\x00" * 4096])
def test_a_file_that_is_not_duckdb_is_refused(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "data.duckdb"
    f.write_bytes(content)
    r = sqlmode("sample-db", "--path", str(f))
    assert_clean_error(r, "not a DuckDB database")
    assert f.read_bytes() == content


def test_a_folder_is_refused(tmp_path: Path) -> None:
    r = sqlmode("sample-db", "--path", str(tmp_path))
    assert_clean_error(r, "is a folder")


def test_empty_duckdb_file_is_used(tmp_path: Path) -> None:
    f = tmp_path / "empty.duckdb"
    duckdb.connect(str(f)).close()
    r = sqlmode("sample-db", "--path", str(f))
    assert r.returncode == 0, r.stderr
    assert "orders" in _tables(f)


def test_missing_duckdb_hint_runs_sample_db_only_for_the_sample(tmp_path: Path) -> None:
    cfg = tmp_path / "own.toml"
    cfg.write_text('[database]\nurl = "duckdb:///tmp/nope-sqlmode.duckdb"\n')
    r = sqlmode("schema", "--config", str(cfg))
    resolved = tmp_path / "tmp" / "nope-sqlmode.duckdb"
    assert_clean_error(r, str(resolved), "duckdb:////", "database.path")
    assert "sample-db" not in r.stderr
    sample = sqlmode(
        "schema",
        env={"SQLMODE_SAMPLE_DB": str(tmp_path / "gone.duckdb"), "SQLMODE_DATABASE__BUILD_SAMPLE": "false"},
    )
    assert_clean_error(sample, "gone.duckdb", "sqlmode sample-db")


# -- PostgreSQL ------------------------------------------------------------------------------


async def _own_pg(admin_url: str) -> str:
    url = await create_database(admin_url, "own")
    await sql(
        url,
        "CREATE TABLE events(id int primary key, kind text)",
        "INSERT INTO events VALUES (1, 'signup')",
        "CREATE TABLE customers(id int primary key, name text)",
        "INSERT INTO customers VALUES (42, 'their customer')",
    )
    return url


async def _state(url: str) -> tuple[list[str], list[tuple]]:
    tables, rows = await sql(
        url,
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' "
        "ORDER BY 1",
        "SELECT * FROM customers ORDER BY 1 LIMIT 3",
    )
    return [r[0] for r in tables], [tuple(r) for r in rows]


async def test_postgres_own_database_is_refused_and_untouched(pg_admin_url: str) -> None:
    url = await _own_pg(pg_admin_url)
    before = await _state(url)
    r = sqlmode("sample-db", "--postgres", url)
    assert_clean_error(r, "did not create", "customers", "events", "--force")
    assert await _state(url) == before == (["customers", "events"], [(42, "their customer")])


async def test_postgres_force_replaces_only_the_sample_tables(pg_admin_url: str) -> None:
    url = await _own_pg(pg_admin_url)
    r = sqlmode("sample-db", "--postgres", url, "--force")
    assert r.returncode == 0, r.stderr
    tables, _ = await _state(url)
    assert "events" in tables and "orders" in tables
    (events,) = await sql(url, "SELECT * FROM events")
    assert [tuple(x) for x in events] == [(1, "signup")]
    # Not marked as the sample's own: a later run without --force is refused again.
    assert_clean_error(sqlmode("sample-db", "--postgres", url), "events")


async def test_postgres_dependent_object_stops_force_and_nothing_changes(pg_admin_url: str) -> None:
    url = await _own_pg(pg_admin_url)
    await sql(url, "CREATE VIEW their_view AS SELECT name FROM customers")
    before = await _state(url)
    r = sqlmode("sample-db", "--postgres", url, "--force")
    assert_clean_error(r, "their_view", "Nothing was changed")
    assert "CASCADE" not in r.stderr
    assert await _state(url) == before
    (view,) = await sql(url, "SELECT * FROM their_view")
    assert [tuple(x) for x in view] == [("their customer",)]


async def test_postgres_empty_database_loads_and_reloads(pg_admin_url: str) -> None:
    url = await create_database(pg_admin_url, "empty")
    for _ in range(2):
        r = sqlmode("sample-db", "--postgres", url)
        assert r.returncode == 0, r.stderr
    (n,) = await sql(url, "SELECT count(*) FROM customers")
    assert n[0][0] == 2000
