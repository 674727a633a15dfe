"""`db grants --apply` run again keeps the reader's password; --rotate-password changes it (CLI)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from sqlmode.config import sample_config_path
from tests.newcomer import scram_roles, sql, sqlmode
from tests.plugins.postgres import create_database

ROLE = "sqlmode_rerun_probe"


async def _connects(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidPasswordError:
        return False
    try:
        return await conn.fetchval("SELECT current_user") == ROLE
    finally:
        await conn.close()


def _config(tmp_path: Path, url: str) -> Path:
    text = sample_config_path().read_text()
    text = text.replace(
        'url = "duckdb:///${SQLMODE_SAMPLE_DB:-~/.cache/sqlmode/sample-v1.duckdb}"', f'url = "{url}"'
    )
    text = text.replace("build_sample = true", "build_sample = false")
    p = tmp_path / "pg.toml"
    p.write_text(text)
    return p


@pytest.fixture
async def warehouse(pg_admin_url: str) -> str:
    url = await create_database(pg_admin_url, "grants_rerun")
    r = sqlmode("sample-db", "--postgres", url)
    assert r.returncode == 0, r.stderr
    return url


async def test_rerun_keeps_password_and_rotate_changes_it(
    pg_admin_url: str, warehouse: str, tmp_path: Path
) -> None:
    cfg = str(_config(tmp_path, warehouse))
    await sql(pg_admin_url, f"DROP ROLE IF EXISTS {ROLE}")
    async with scram_roles(pg_admin_url, ROLE):
        first = sqlmode("db", "grants", "--config", cfg, "--apply", "--role", ROLE)
        assert first.returncode == 0, first.stderr
        url1 = first.stdout.strip()
        assert await _connects(url1)

        again = sqlmode("db", "grants", "--config", cfg, "--apply", "--role", ROLE)
        assert again.returncode == 0, again.stderr
        assert "password is unchanged" in again.stderr
        assert ":" not in again.stdout.split("://", 1)[1].split("@", 1)[0]  # no password printed
        assert await _connects(url1), "a plain re-run must not change the reader's password"

        # The review script of a re-run does not set a password on an existing role either.
        review = sqlmode("db", "grants", "--config", cfg, "--role", ROLE)
        assert review.returncode == 0, review.stderr
        alter = next(
            line for line in review.stdout.splitlines() if line.startswith(f'ALTER ROLE "{ROLE}" WITH')
        )
        assert "PASSWORD" not in alter

        rotated = sqlmode("db", "grants", "--config", cfg, "--apply", "--role", ROLE, "--rotate-password")
        assert rotated.returncode == 0, rotated.stderr
        url2 = rotated.stdout.strip()
        assert url2 != url1
        assert await _connects(url2)
        assert not await _connects(url1), "--rotate-password must retire the old password"
    await sql(warehouse, f"REASSIGN OWNED BY {ROLE} TO postgres", f"DROP OWNED BY {ROLE}")
    await sql(pg_admin_url, f"DROP ROLE IF EXISTS {ROLE}")
