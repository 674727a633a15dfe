"""Every database failure of every command: one clear error with a specific hint, exit 2, no traceback.

Real bad targets: a closed loopback port, a database that does not exist, a wrong password on the
test PostgreSQL (a role that must authenticate with scram), malformed URLs, a missing DuckDB file.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from tests.newcomer import assert_clean_error, closed_port, scram_roles, sql, sqlmode

PW_ROLE = "sqlmode_pw_probe"
COMMANDS = [
    ("schema",),
    ("validate", "SELECT 1"),
    ("query", "--yes", "SELECT 1"),
    ("db", "grants"),
    ("serve",),
]


def _with_user(url: str, user: str, password: str, database: str | None = None) -> str:
    p = urlsplit(url)
    host = p.netloc.rpartition("@")[2]
    path = f"/{database}" if database else p.path
    return urlunsplit(p._replace(netloc=f"{user}:{quote(password, safe='')}@{host}", path=path))


@pytest.fixture(scope="module")
async def password_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A URL for a role that must give its password (scram), so a wrong one is really refused."""
    password = secrets.token_urlsafe(16)
    await sql(
        pg_admin_url,
        f"DROP ROLE IF EXISTS {PW_ROLE}",
        f"CREATE ROLE {PW_ROLE} LOGIN PASSWORD '{password}'",
    )
    async with scram_roles(pg_admin_url, PW_ROLE):
        yield _with_user(pg_admin_url, PW_ROLE, password, "postgres")
    await sql(pg_admin_url, f"DROP ROLE IF EXISTS {PW_ROLE}")


def _config(tmp_path: Path, url: str) -> Path:
    p = tmp_path / "own.toml"
    p.write_text(f"[database]\nurl = {url!r}\n".replace("'", '"'))
    return p


def _bad_targets(admin_url: str, password_url: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (url, what stderr must say)."""
    port = closed_port()
    wrong = _with_user(password_url, PW_ROLE, "not-the-password", "postgres")
    return {
        "closed port": (
            f"postgresql://someone@127.0.0.1:{port}/db",
            [f"nothing listens at 127.0.0.1:{port}"],
        ),
        "missing database": (
            urlunsplit(urlsplit(admin_url)._replace(path="/no_such_db_here")),
            ["'no_such_db_here' does not exist", "CREATE DATABASE no_such_db_here"],
        ),
        "wrong password": (wrong, ["password was refused", PW_ROLE, "Check the user name and password"]),
        "bad port": ("postgresql://u@localhost:54x2/db", ["port '54x2' is not a number"]),
        "unencoded #": ("postgresql://u:pa#ss@localhost/db", ["'#'", "%23"]),
        "two @": ("postgresql://u:p@ss@localhost/db", ["more than one '@'", "%40"]),
        "unresolvable host": (
            "postgresql://u@no-such-host.invalid/db",
            ["'no-such-host.invalid' cannot be resolved"],
        ),
    }


@pytest.mark.parametrize(
    "target",
    [
        "closed port",
        "missing database",
        "wrong password",
        "bad port",
        "unencoded #",
        "two @",
        "unresolvable host",
    ],
)
async def test_sample_db_postgres_bad_target(pg_admin_url: str, password_url: str, target: str) -> None:
    url, needles = _bad_targets(pg_admin_url, password_url)[target]
    r = sqlmode("sample-db", "--postgres", url)
    assert_clean_error(r, *needles)
    if "not-the-password" in url:
        assert "not-the-password" not in r.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
@pytest.mark.parametrize("target", ["closed port", "missing database", "wrong password", "bad port"])
async def test_every_command_with_a_bad_database(
    pg_admin_url: str, password_url: str, tmp_path: Path, command: tuple[str, ...], target: str
) -> None:
    url, needles = _bad_targets(pg_admin_url, password_url)[target]
    r = sqlmode(*command, "--config", str(_config(tmp_path, url)))
    assert_clean_error(r, *needles)
    assert "not-the-password" not in r.stderr


async def test_the_right_password_works(password_url: str, tmp_path: Path) -> None:
    """The probe role is real: with its password the same command reaches the database."""
    # A fresh role may still call set_config (no `db grants` ran): the development opt-out.
    dev = {"SQLMODE_DATABASE__ALLOW_PRIVILEGED_ROLE": "true", "SQLMODE_DATABASE__READER_ROLE": "no_reader_x"}
    r = sqlmode("schema", "--config", str(_config(tmp_path, password_url)), env=dev)
    assert r.returncode == 0, r.stderr
    assert "no tables to show" in r.stderr and "database.schemas" in r.stderr


@pytest.mark.parametrize("url", ["mysql://u@h/db", "duckdb:/x.duckdb", "localhost:5432/db"])
def test_unknown_scheme_in_config_says_what_is_accepted(tmp_path: Path, url: str) -> None:
    r = sqlmode("schema", "--config", str(_config(tmp_path, url)))
    assert_clean_error(r, "database.url", "duckdb:///", "postgresql://")


def test_missing_config_file(tmp_path: Path) -> None:
    r = sqlmode("schema", "--config", str(tmp_path / "nope.toml"))
    assert_clean_error(r, "config file not found")
