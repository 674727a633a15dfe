"""Config: TOML + ${VAR} interpolation + SQLMODE_ environment overrides, and errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlmode.config import BlockedName, CodeModeConfig, load_config, sample_config_path
from sqlmode.engines import engine_for_url
from sqlmode.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sqlmode.toml"
    p.write_text(text)
    return p


def test_sample_config_loads_with_blocked_tables_and_fields() -> None:
    s = load_config(sample_config_path())
    assert engine_for_url(s.database.url).traits.name == "duckdb"
    assert set(s.code_mode.blocked_tables) == {"audit_log", "credentials"}
    assert s.code_mode.blocked_fields == ["customers.ssn"]
    assert s.database.build_sample is True


def test_env_reference_is_interpolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SECRET", "s" * 40)
    p = write(
        tmp_path, '[database]\nurl = "duckdb:///w.duckdb"\n[code_mode]\ntoken_secret = "${MY_SECRET}"\n'
    )
    assert load_config(p).code_mode.token_secret == "s" * 40


def test_env_reference_default_is_used_when_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    p = write(tmp_path, '[database]\nurl = "duckdb:///${NOT_SET_ANYWHERE:-fallback.duckdb}"\n')
    assert load_config(p).database.url == f"duckdb:///{tmp_path / 'fallback.duckdb'}"


def test_missing_env_reference_names_file_key_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    p = write(
        tmp_path,
        '[database]\nurl = "duckdb:///w.duckdb"\n[code_mode]\ntoken_secret = "${NOT_SET_ANYWHERE}"\n',
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "code_mode.token_secret" in msg and "NOT_SET_ANYWHERE" in msg


def test_sqlmode_env_overrides_nested_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path, '[database]\nurl = "duckdb:///w.duckdb"\n[code_mode]\nmax_rows = 500\n')
    monkeypatch.setenv("SQLMODE_CODE_MODE__MAX_ROWS", "25")
    assert load_config(p).code_mode.max_rows == 25


def test_keyword_override_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path, '[server]\nname = "fromfile"\n[database]\nurl = "duckdb:///w.duckdb"\n')
    monkeypatch.setenv("SQLMODE_SERVER__NAME", "fromenv")
    assert load_config(p).server.name == "fromenv"
    assert load_config(p, server={"name": "fromarg"}).server.name == "fromarg"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[database]\nurl = "mysql://x/y"\n', "database.url"),
        ('[database]\nurl = "duckdb:///w.duckdb"\n[code_mode]\nmax_rowz = 3\n', "code_mode.max_rowz"),
        ('[database]\nurl = "duckdb:///w.duckdb"\n[code_mode]\nmax_rows = -1\n', "code_mode.max_rows"),
        ('[database]\nurl = "duckdb:///w.duckdb"\n[code_mode]\nblocked_fields = ["ssn"]\n', "table.column"),
        ("[server]\nname = 'x'\n", "database"),
        ("[database\nurl = 1", "not valid TOML"),
    ],
)
def test_bad_config_error_names_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value)
    assert needle in str(e.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "nope.toml")
    assert e.value.code == "CONFIG_NOT_FOUND"
    assert "nope.toml" in str(e.value)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    p = write(tmp_path, '[database]\nurl = "duckdb:///data/w.duckdb"\n[audit]\npath = "logs/audit.jsonl"\n')
    s = load_config(p)
    assert s.database.duckdb_path == str(tmp_path / "data" / "w.duckdb")
    assert s.audit.path == str(tmp_path / "logs" / "audit.jsonl")


@pytest.mark.parametrize(
    ("tables", "fields", "expected"),
    [
        (["Credentials"], [], [BlockedName("Credentials", None, "credentials")]),
        (["Sales.Orders"], [], [BlockedName("Sales.Orders", "sales", "orders")]),
        (["wh.main.audit_log"], [], [BlockedName("wh.main.audit_log", "main", "audit_log")]),
        ([], ["customers.SSN"], [BlockedName("customers.SSN", None, "customers", "ssn")]),
        ([], ["crm.customers.ssn"], [BlockedName("crm.customers.ssn", "crm", "customers", "ssn")]),
        ([], ["db.crm.customers.ssn"], [BlockedName("db.crm.customers.ssn", "crm", "customers", "ssn")]),
    ],
)
def test_block_list_entries_are_parsed_in_one_place(
    tables: list[str], fields: list[str], expected: list[BlockedName]
) -> None:
    # The snapshot, the analyzer's rules, the generated policies, the name check and the write-role
    # check all read these; none splits an entry itself.
    cm = CodeModeConfig(blocked_tables=tables, blocked_fields=fields)
    assert [*cm.blocked_table_names, *cm.blocked_field_names] == expected
    assert [b.table_entry for b in expected] == [
        ".".join(p for p in (b.schema, b.table) if p) for b in expected
    ]
