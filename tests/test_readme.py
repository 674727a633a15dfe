"""The README is the front door: every code a user or LLM can see is documented there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sqlmode import errors
from sqlmode.analyze import VIOLATION_CODES
from sqlmode.config import load_config, sample_config_path
from sqlmode.policy import server_policies

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _error_codes() -> set[str]:
    out: set[str] = set()
    stack: list[type[errors.SqlmodeError]] = [errors.SqlmodeError]
    while stack:
        cls = stack.pop()
        out.add(cls.code)
        stack.extend(cls.__subclasses__())
    return out - {"SQLMODE_ERROR"}


def _literal_codes() -> set[str]:
    text = "\n".join(p.read_text() for p in (ROOT / "sqlmode").rglob("*.py"))
    return set(re.findall(r'\bcode\s*=\s*"([A-Z][A-Z0-9_]+)"', text))


def _policy_codes() -> set[str]:
    text = "\n".join(p.read_text() for p in (ROOT / "policies").rglob("*.cedar"))
    text += str(server_policies(load_config(sample_config_path())))
    return set(re.findall(r'@code\("([A-Z_]+)"\)', text))


ALL_CODES = sorted(set(VIOLATION_CODES) | _error_codes() | _literal_codes() | _policy_codes())


def test_codes_were_found() -> None:
    assert len(ALL_CODES) > 50


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_code_is_documented_in_the_readme(code: str) -> None:
    assert f"`{code}`" in README, f"{code} is used by sqlmode but not documented in README.md"


def test_readme_states_the_two_setup_commands() -> None:
    assert "pip install -e . && sqlmode demo" in README
    assert 'pip install -e ".[test]" && python -m pytest -q' in README


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install --quiet -e ".[test]"' in ci and "python -m pytest -q" in ci


# -- the configuration table and the Settings model, both ways ----------------------------------


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def _model_keys() -> set[str]:
    from pydantic import BaseModel

    from sqlmode.config import Settings

    def walk(model: type[BaseModel], prefix: str) -> set[str]:
        out: set[str] = set()
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                out |= walk(ann, f"{prefix}{name}.")
            else:
                out.add(prefix + name)
        return out

    return walk(Settings, "") - {"source_path"}  # where the file came from: not a setting


def _documented_keys() -> set[str]:
    keys: set[str] = set()
    for line in _section("Configuration").splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        names = re.findall(r"`([^`]+)`", first_cell)
        prefix = names[0].rpartition(".")[0]
        for name in names:
            keys.add(name if "." in name else f"{prefix}.{name}")
    return keys


def test_config_table_documents_every_setting() -> None:
    missing = _model_keys() - _documented_keys()
    assert not missing, f"settings missing from the README configuration table: {sorted(missing)}"


def test_config_table_documents_only_real_settings() -> None:
    unknown = _documented_keys() - _model_keys()
    assert not unknown, f"README documents settings that do not exist: {sorted(unknown)}"


# -- codes, the other way: every documented code exists ------------------------------------------


def test_every_documented_code_exists() -> None:
    block = README[README.index("<!-- codes:start -->") : README.index("<!-- codes:end -->")]
    documented = set()
    for line in block.splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    # Codes are also produced as plain literals (a deny helper's first argument, a default).
    sources = "\n".join(p.read_text() for p in (ROOT / "sqlmode").rglob("*.py"))
    literals = set(re.findall(r"[\"']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)[\"']", sources))
    stale = documented - set(ALL_CODES) - literals
    assert not stale, f"README documents codes sqlmode never produces: {sorted(stale)}"


# -- every command and option of the CLI is in the command table -------------------------------


def _commands() -> list[tuple[str, list[str]]]:
    import click

    from sqlmode.cli import main

    out: list[tuple[str, list[str]]] = []

    def walk(cmd: click.Command, path: str) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}")
            return
        opts = [
            max(p.opts, key=len)
            for p in cmd.params
            if isinstance(p, click.Option) and p.name != "config_path" and not p.hidden
        ]
        out.append((path, opts))

    walk(main, "sqlmode")
    return out


@pytest.mark.parametrize("command", _commands(), ids=lambda c: c[0])
def test_every_cli_option_is_in_the_command_table(command: tuple[str, list[str]]) -> None:
    path, opts = command
    table = _section("Command line")
    rows = [line for line in table.splitlines() if line.startswith(f"| `{path}")]
    assert rows, f"`{path}` has no row in the README command table"
    text = "\n".join(rows)
    missing = [o for o in opts if f"{o}" not in text]
    assert not missing, f"`{path}` options missing from its README row: {missing}"


def test_global_options_are_documented() -> None:
    assert "--config PATH" in _section("Command line") and "sqlmode -v" in _section("Command line")


# -- the snippets work -----------------------------------------------------------------------------


def test_client_json_snippets_are_valid() -> None:
    import json

    blocks = re.findall(r"```json\n(.*?)```", _section("Connect a client"), re.S)
    assert len(blocks) == 2
    for block in blocks:
        servers = json.loads(block).get("mcpServers") or json.loads(block)["servers"]
        assert servers["analytics"]["args"][0] == "serve"
    assert "claude mcp add analytics -- " in _section("Connect a client")


def test_python_client_session_snippet_runs(tmp_path: Path, sample_duckdb_path: Path) -> None:
    """The README's two-step script, run as written against a config for the sample warehouse."""
    import os
    import subprocess
    import sys

    code = re.findall(r"```python\n(.*?)```", _section("Try the two-step flow from a script"), re.S)[0]
    (tmp_path / "sqlmode.toml").write_text(
        f'[database]\npath = "{sample_duckdb_path}"\n[code_mode]\nblocked_fields = ["customers.ssn"]\n'
    )
    written = 'StdioServerParameters(command="sqlmode", args=["serve", "--config", "sqlmode.toml"])'
    assert written in code
    # `sqlmode` as the reader's installation would start it: this interpreter, this checkout.
    code = code.replace(
        written,
        f'StdioServerParameters(command={sys.executable!r}, args=["-m", "sqlmode", "serve", "--config", '
        f'"sqlmode.toml"], env={{"PYTHONPATH": {str(ROOT)!r}}})',
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQLMODE_", "CODE_MODE_"))}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr
    explanation, rows = r.stdout.strip().splitlines()
    assert explanation.endswith(" []")  # no violations
    assert sorted(x[0] for x in __import__("ast").literal_eval(rows)) == ["APAC", "EMEA", "LATAM", "NA"]


def test_minimal_config_is_two_lines_and_works(tmp_path: Path, sample_duckdb_path: Path) -> None:
    from sqlmode.config import load_config

    block = re.findall(r"```toml\n(.*?)```", _section("Your own database"), re.S)[0]
    assert len(block.strip().splitlines()) == 2
    (tmp_path / "warehouse.duckdb").symlink_to(sample_duckdb_path)
    (tmp_path / "sqlmode.toml").write_text(block)
    settings = load_config(tmp_path / "sqlmode.toml")
    assert settings.database.duckdb_path == str(tmp_path / "warehouse.duckdb")


# -- the repository describes itself ---------------------------------------------------------------


def test_no_references_to_issue_numbers_or_absent_documents() -> None:
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "sqlmode").rglob("*.py")]
    for path in files:
        text = path.read_text()
        assert not re.search(r"\b[Ii]ssues? #?\d+", text), f"{path} refers to an issue number"
        assert "DESIGN.md" not in text, f"{path} cites DESIGN.md, which the repository does not have"
    assert (ROOT / "docs" / "architecture.md").exists() and "docs/architecture.md" in README


def test_license_file_matches_pyproject() -> None:
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
