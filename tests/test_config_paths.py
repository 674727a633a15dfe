"""DuckDB paths (URL rule, database.path) and CODE_MODE_SECRET as the token secret's default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sqlmode.config import settings_from_dict
from sqlmode.errors import ConfigError, TokenSignatureError
from sqlmode.token import TokenService
from tests.newcomer import assert_clean_error, sqlmode

SECRET = "env-secret-" + "abcdef0123456789" * 2


@pytest.fixture
def own_db(tmp_path: Path, sample_duckdb_path: Path) -> Path:
    """A copy of the sample file in tmp_path/data/ (no marker needed: we only read it)."""
    (tmp_path / "data").mkdir()
    return Path(shutil.copy(sample_duckdb_path, tmp_path / "data" / "wh.duckdb"))


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "conf" / "sqlmode.toml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(body)
    return p


@pytest.mark.parametrize(
    "database",
    [
        'url = "duckdb:///../data/wh.duckdb"',  # three slashes: relative to the config's folder
        'url = "duckdb:////{abs}"',  # four slashes: absolute
        'path = "../data/wh.duckdb"',
        'path = "{abs}"',
    ],
)
def test_every_way_to_name_a_duckdb_file_reaches_it(tmp_path: Path, own_db: Path, database: str) -> None:
    absolute = str(own_db).lstrip("/") if database.startswith("url") else str(own_db)
    cfg = _write(tmp_path, "[database]\n" + database.replace("{abs}", absolute) + "\n")
    r = sqlmode(
        "query", "--config", str(cfg), "--yes", "--format", "json", "SELECT count(*) AS n FROM customers"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rows"] == [[2000]]


def test_three_slashes_with_an_absolute_looking_path_names_the_resolved_path(
    tmp_path: Path, own_db: Path
) -> None:
    written = str(own_db).lstrip("/")
    cfg = _write(tmp_path, f'[database]\nurl = "duckdb:///{written}"\n')
    r = sqlmode("schema", "--config", str(cfg))
    resolved = cfg.parent / written
    assert_clean_error(
        r,
        f"DuckDB file {resolved} does not exist",
        f"Did you mean the absolute path /{written}? Then write duckdb:////{written}",
        "three slashes",
        'database.path = "/abs/path.duckdb"',
    )


def test_url_and_path_together_or_neither_are_errors(tmp_path: Path) -> None:
    for body, needle in [
        ('[database]\nurl = "duckdb:///a.duckdb"\npath = "a.duckdb"\n', "not both"),
        ("[database]\n", "database.url is required"),
        ('[database]\npath = ""\n', "database.path is empty"),
    ]:
        assert_clean_error(sqlmode("schema", "--config", str(_write(tmp_path, body))), needle)


def test_code_mode_secret_is_the_default_token_secret(tmp_path: Path, own_db: Path) -> None:
    cfg = _write(tmp_path, f'[database]\npath = "{own_db}"\n[audit]\nenabled = false\n')
    r = sqlmode(
        "validate",
        "--json",
        "--config",
        str(cfg),
        "SELECT id FROM customers",
        env={"CODE_MODE_SECRET": SECRET},
    )
    assert r.returncode == 0, r.stderr
    token = json.loads(r.stdout)["approval_token"]
    # Signed with the environment's secret: another service holding it accepts the signature.
    TokenService(SECRET)._authentic(token)
    with pytest.raises(TokenSignatureError):
        TokenService("another-secret-" + "x" * 32)._authentic(token)
    settings = settings_from_dict({"database": {"path": str(own_db)}})
    assert settings.code_mode.token_secret is None  # not in the environment of this test process
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CODE_MODE_SECRET", SECRET)
        s = settings_from_dict({"database": {"path": str(own_db)}})
        assert s.code_mode.token_secret == SECRET and s.secret_source.startswith("CODE_MODE_SECRET")
        explicit = settings_from_dict(
            {"database": {"path": str(own_db)}, "code_mode": {"token_secret": "t" * 40}}
        )
        assert explicit.code_mode.token_secret == "t" * 40  # the file wins over the default


def test_short_code_mode_secret_is_named_as_such(tmp_path: Path, own_db: Path) -> None:
    cfg = _write(tmp_path, f'[database]\npath = "{own_db}"\n')
    r = sqlmode(
        "serve",
        "--transport",
        "http",
        "--port",
        "0",
        "--allow-unauthenticated",  # loopback: the secret is what this checks
        "--config",
        str(cfg),
        env={"CODE_MODE_SECRET": "short"},
    )
    assert_clean_error(r, "CODE_MODE_SECRET is 5 characters")
    assert "code_mode.token_secret is 5" not in r.stderr


def test_settings_reject_an_unknown_url_scheme() -> None:
    with pytest.raises(ConfigError, match=r"database\.path instead"):
        settings_from_dict({"database": {"url": "sqlite:///x.db"}})
