"""A table or column named in the config must exist: a typo never silently loosens a limit."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.newcomer import assert_clean_error, sql, sqlmode
from tests.plugins.postgres import create_database


@pytest.fixture(scope="module")
def events_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("own") / "events.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE events(id INTEGER, kind VARCHAR, secret_note VARCHAR)")
        con.execute("INSERT INTO events VALUES (1, 'signup', 's1')")
        con.execute("CREATE TABLE users(id INTEGER, email VARCHAR)")
    return path


def _cfg(tmp_path: Path, db: Path, extra: str) -> Path:
    p = tmp_path / "own.toml"
    p.write_text(f'[database]\npath = "{db}"\n{extra}\n')
    return p


CASES = {
    "blocked column typo": (
        '[code_mode]\nblocked_fields = ["events.kidn"]',
        ["code_mode.blocked_fields[0] = 'events.kidn'", "no column 'kidn'", "did you mean 'kind'"],
    ),
    "blocked table typo": (
        '[code_mode]\nblocked_tables = ["evnts"]',
        ["code_mode.blocked_tables[0] = 'evnts'", "did you mean 'events'"],
    ),
    "blocked column on a missing table": (
        '[code_mode]\nblocked_fields = ["user.email"]',
        ["code_mode.blocked_fields[0] = 'user.email'", "did you mean 'users'"],
    ),
    "allowlist entry naming no table": (
        '[[database.tables]]\nname = "event"\n[[database.tables]]\nname = "users"',
        ["database.tables[0].name = 'event'", "did you mean 'events'"],
    ),
}


@pytest.mark.parametrize("command", [("schema",), ("validate", "SELECT kind FROM events"), ("serve",)])
@pytest.mark.parametrize("case", list(CASES))
def test_typo_stops_start_up_naming_the_entry(
    events_db: Path, tmp_path: Path, case: str, command: tuple[str, ...]
) -> None:
    extra, needles = CASES[case]
    r = sqlmode(*command, "--config", str(_cfg(tmp_path, events_db, extra)))
    assert_clean_error(r, *needles)
    assert r.stdout == ""


def test_every_problem_is_reported_at_once(events_db: Path, tmp_path: Path) -> None:
    extra = '[code_mode]\nblocked_tables = ["evnts"]\nblocked_fields = ["events.kidn", "users.emial"]'
    r = sqlmode("schema", "--config", str(_cfg(tmp_path, events_db, extra)))
    assert_clean_error(r, "'evnts'", "'kidn'", "'emial'", "did you mean 'email'")


def test_correct_names_block_what_they_name(events_db: Path, tmp_path: Path) -> None:
    extra = '[code_mode]\nblocked_tables = ["USERS"]\nblocked_fields = ["events.secret_note"]'
    cfg = _cfg(tmp_path, events_db, extra)
    r = sqlmode("schema", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "events" in r.stdout and "kind" in r.stdout
    assert "secret_note" not in r.stdout and "users" not in r.stdout
    v = sqlmode("validate", "--config", str(cfg), "SELECT secret_note FROM events")
    assert v.returncode == 1 and "COLUMN_BLOCKED" in v.stdout


def test_schema_with_zero_tables_says_why(tmp_path: Path, events_db: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    r = sqlmode("schema", "--config", str(_cfg(tmp_path, empty, "")))
    assert r.returncode == 0, r.stderr
    assert "no tables or views in schema(s) main" in r.stderr
    assert "Set database.schemas to the schemas holding your tables" in r.stderr
    r = sqlmode(
        "schema",
        "--config",
        str(_cfg(tmp_path, events_db, '[code_mode]\nblocked_tables = ["events", "users"]')),
    )
    assert r.returncode == 0, r.stderr
    assert "all 2 tables" in r.stderr and "blocked" in r.stderr


async def test_postgres_typo_and_missing_schema(pg_admin_url: str, tmp_path: Path) -> None:
    url = await create_database(pg_admin_url, "names")
    await sql(url, "CREATE TABLE events(id int, kind text)")
    for extra, needles in [
        ('[code_mode]\nblocked_fields = ["events.kidn"]', ["did you mean 'kind'"]),
        ('schemas = ["public", "sales"]', ["database.schemas[1] = 'sales'"]),
    ]:
        p = tmp_path / "pg.toml"
        db_extra, rest = (extra, "") if extra.startswith("schemas") else ("", extra)
        p.write_text(f'[database]\nurl = "{url}"\n{db_extra}\n{rest}\n')
        assert_clean_error(sqlmode("schema", "--config", str(p)), *needles)
