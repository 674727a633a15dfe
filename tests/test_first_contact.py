"""First contact: `sqlmode init`, `sqlmode serve --database URL` without a config, the demo's words.

All through the real CLI (and a real MCP client over stdio), on real DuckDB files and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import duckdb
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.narrow import block_text
from tests.newcomer import ROOT, assert_clean_error, sql, sqlmode
from tests.plugins.postgres import create_database

OWN_TABLES = [
    "CREATE TABLE users(id INTEGER PRIMARY KEY, name VARCHAR, email VARCHAR, phone_number VARCHAR, "
    "password_hash VARCHAR, ssn VARCHAR, created_at TIMESTAMP)",
    "CREATE TABLE events(id INTEGER, user_id INTEGER, kind VARCHAR, api_key VARCHAR, session_token VARCHAR)",
    "CREATE TABLE api_tokens(id INTEGER, secret VARCHAR)",
    "INSERT INTO users VALUES (1, 'Ada', 'ada@example.com', '+1 555', 'x', '900-00-0001', '2026-01-01')",
    "INSERT INTO events VALUES (1, 1, 'signup', 'k', 't'), (2, 1, 'login', 'k', 't')",
]
SUGGESTED = {
    "users.email",
    "users.phone_number",
    "users.password_hash",
    "users.ssn",
    "events.api_key",
    "events.session_token",
}


@pytest.fixture
def own_duckdb(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        for stmt in OWN_TABLES:
            con.execute(stmt)
    return path


def _check_written(cfg: Path) -> dict[str, Any]:
    text = cfg.read_text()
    data = tomllib.loads(text)
    assert set(data["code_mode"]["blocked_fields"]) == SUGGESTED
    assert data["code_mode"]["blocked_tables"] == ["api_tokens"]
    # Each suggestion says why, and the tables found are listed.
    assert "# a national identity number" in text and "# personal contact data (email address)" in text
    assert "#   users (7 columns)" in text and "#   events (5 columns)" in text
    return data


def test_init_duckdb_writes_a_config_that_works(own_duckdb: Path, tmp_path: Path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    r = sqlmode("init", "../warehouse.duckdb", cwd=work)
    assert r.returncode == 0, r.stderr
    cfg = work / "sqlmode.toml"
    data = _check_written(cfg)
    assert data["database"] == {"path": str(own_duckdb)}
    snippet = json.loads(r.stdout[r.stdout.index("{") : r.stdout.index("\n}\n") + 2])
    server = snippet["mcpServers"]["analytics"]
    assert server["args"][-3:] == ["serve", "--config", str(cfg)]
    assert "claude mcp add analytics --" in r.stdout and '"servers"' in r.stdout  # Claude Code, VS Code
    # The written config serves: suggested columns are invisible, the rest is queryable.
    s = sqlmode("schema", "--config", str(cfg))
    assert s.returncode == 0, s.stderr
    assert "email" not in s.stdout and "ssn" not in s.stdout and "api_tokens" not in s.stdout
    assert "created_at" in s.stdout
    q = sqlmode("query", "--config", str(cfg), "--yes", "--format", "json", "SELECT count(*) FROM events")
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout)["rows"] == [[2]]
    # Not overwritten without --force.
    again = sqlmode("init", str(own_duckdb), cwd=work)
    assert_clean_error(again, "already exists", "--force")
    assert sqlmode("init", str(own_duckdb), "--force", cwd=work).returncode == 0


async def test_init_postgres(pg_admin_url: str, tmp_path: Path) -> None:
    url = await create_database(pg_admin_url, "init")
    await sql(url, *(s.replace("VARCHAR", "text") for s in OWN_TABLES))
    r = sqlmode("init", url, "--output", str(tmp_path / "pg.toml"))
    assert r.returncode == 0, r.stderr
    data = _check_written(tmp_path / "pg.toml")
    assert data["database"] == {"url": url}  # public is the default schema
    # Connected as the superuser: the reader role sqlmode switches to comes first (README).
    g = sqlmode("db", "grants", "--apply", "--config", str(tmp_path / "pg.toml"))
    assert g.returncode == 0, g.stderr
    s = sqlmode("schema", "--config", str(tmp_path / "pg.toml"))
    assert s.returncode == 0 and "password_hash" not in s.stdout and "kind" in s.stdout


async def test_init_empty_postgres_database(pg_admin_url: str, tmp_path: Path) -> None:
    url = await create_database(pg_admin_url, "init_empty")
    r = sqlmode("init", url, "--output", str(tmp_path / "pg.toml"))
    assert r.returncode == 0, r.stderr
    assert "0 tables and views found" in r.stderr
    # Connected as the superuser: the reader role sqlmode switches to comes first (README).
    g = sqlmode("db", "grants", "--apply", "--config", str(tmp_path / "pg.toml"))
    assert g.returncode == 0, g.stderr
    s = sqlmode("schema", "--config", str(tmp_path / "pg.toml"))
    assert s.returncode == 0 and "no tables to show" in s.stderr


@pytest.mark.parametrize("target", ["missing.duckdb", "mysql://x@y/z"])
def test_init_bad_target(tmp_path: Path, target: str) -> None:
    r = sqlmode("init", target, cwd=tmp_path)
    assert_clean_error(r)
    assert not (tmp_path / "sqlmode.toml").exists()


async def _serve_round_trip(
    args: list[str], tmp_path: Path, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQLMODE_", "CODE_MODE_"))}
    env.update(extra_env or {})
    env["PYTHONPATH"] = str(ROOT)
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "sqlmode", "serve", *args], env=env, cwd=str(tmp_path)
    )
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as c:
            v = (
                await c.call_tool(
                    "validate_code",
                    {"code": "SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY kind"},
                )
            ).structured_content
            assert v is not None and v["is_valid"], v
            r = await c.call_tool(
                "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
            )
            assert not r.is_error, r.content
            schema = block_text((await c.call_tool("describe_schema", {})).content[0])
    assert r.structured_content is not None
    return {"rows": r.structured_content["rows"], "schema": schema}


async def test_serve_database_without_a_config_duckdb(own_duckdb: Path, tmp_path: Path) -> None:
    out = await _serve_round_trip(["--database", str(own_duckdb)], tmp_path)
    assert out["rows"] == [["login", 1], ["signup", 1]]
    out = await _serve_round_trip(["--database", f"duckdb:///{own_duckdb}"], tmp_path)
    assert out["rows"] == [["login", 1], ["signup", 1]]


async def test_serve_database_without_a_config_postgres(pg_admin_url: str, tmp_path: Path) -> None:
    url = await create_database(pg_admin_url, "serve_db")
    await sql(url, *(s.replace("VARCHAR", "text") for s in OWN_TABLES))
    # A superuser without a reader role to switch to: the development opt-out (engines/_postgres_role.py).
    dev = {"SQLMODE_DATABASE__ALLOW_PRIVILEGED_ROLE": "true", "SQLMODE_DATABASE__READER_ROLE": "no_reader_x"}
    out = await _serve_round_trip(["--database", url], tmp_path, dev)
    assert out["rows"] == [["login", 1], ["signup", 1]]


async def test_serve_database_keeps_the_config_blocks(own_duckdb: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "blocks.toml"
    cfg.write_text('[database]\npath = "elsewhere.duckdb"\n[code_mode]\nblocked_fields = ["users.ssn"]\n')
    out = await _serve_round_trip(["--config", str(cfg), "--database", str(own_duckdb)], tmp_path)
    assert "ssn" not in out["schema"] and "email" in out["schema"]


def test_demo_reads_as_a_tour(tmp_path: Path, sample_duckdb_path: Path) -> None:
    r = sqlmode(
        "demo",
        env={"SQLMODE_SAMPLE_DB": str(sample_duckdb_path), "SQLMODE_AUDIT_LOG": str(tmp_path / "a.jsonl")},
    )
    assert r.returncode == 0, r.stderr
    first = (r.stderr + r.stdout).lstrip().splitlines()[0]
    assert "WARNING" not in first and "WARNING" not in r.stderr, r.stderr
    out = r.stdout
    assert "  explanation:\n    - First prepares 6 named steps.\n    - (1) as_of:" in out
    assert re.search(r"complexity: (light|moderate|heavy) \(\d+ of \d+ allowed\): 5 tables, 6 joins", out), (
        out
    )
    assert "{'score'" not in out
    tail = out[out.index("== Next ==") :]
    assert "sqlmode init" in tail and "postgresql://" in tail and "claude mcp add analytics" in tail
