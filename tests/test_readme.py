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
