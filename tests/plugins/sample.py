"""Fixtures for the sample warehouse.

- ``sample_duckdb_path`` (session): the sample DuckDB file, built once per test session. Open it
  read-only; tests that need to write must copy it first.
- ``sample_config_data`` (session): the bundled sample TOML, parsed, with ``${...}`` left as written.
- ``make_settings`` (function): ``make_settings(overrides=None, **settings_kwargs) -> Settings``;
  the sample config pointed at ``sample_duckdb_path`` with a test token secret, the audit log in
  ``tmp_path`` and ``build_sample`` off, then ``overrides`` deep-merged into the TOML data (dicts
  merge, anything else replaces), e.g. ``make_settings({"code_mode": {"max_rows": 5}})``.
- ``sample_settings`` (function): ``make_settings()``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sqlmode.config import Settings, deep_merge, sample_config_path, settings_from_dict
from sqlmode.sample import build_sample_duckdb

TEST_TOKEN_SECRET = "test-secret-" + "0123456789abcdef" * 2
TEST_AUDIT_KEY = "test-audit-key-" + "fedcba9876543210" * 2


@pytest.fixture(scope="session")
def sample_duckdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_duckdb(tmp_path_factory.mktemp("sample_db") / "sample.duckdb")


@pytest.fixture(scope="session")
def sample_config_data() -> dict[str, Any]:
    return tomllib.loads(sample_config_path().read_text(encoding="utf-8"))


@pytest.fixture
def make_settings(
    sample_config_data: dict[str, Any], sample_duckdb_path: Path, tmp_path: Path
) -> Callable[..., Settings]:
    base = deep_merge(
        sample_config_data,
        {
            "database": {"url": f"duckdb:///{sample_duckdb_path}", "build_sample": False},
            "code_mode": {"token_secret": TEST_TOKEN_SECRET},
            "audit": {"path": str(tmp_path / "audit.jsonl"), "key": TEST_AUDIT_KEY},
        },
    )

    def make(overrides: dict[str, Any] | None = None, **settings_kwargs: Any) -> Settings:
        data = deep_merge(base, overrides or {})
        return settings_from_dict(data, source=str(sample_config_path()), **settings_kwargs)

    return make


@pytest.fixture
def sample_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()
