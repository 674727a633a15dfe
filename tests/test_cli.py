"""The CLI contract: exit codes 0/1/2, JSON keys, --file output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.sample import TEST_TOKEN_SECRET

VALIDATION_KEYS = {
    "is_valid",
    "dialect",
    "statement_type",
    "action",
    "risk_level",
    "explanation",
    "tables",
    "columns",
    "complexity",
    "violations",
    "normalized_code",
    "code_hash",
    "approval_token",
    "expires_at",
    "approval",  # set when execute_code will wait for a human approver
}


@pytest.fixture
def config(tmp_path: Path, sample_duckdb_path: Path) -> Path:
    from sqlmode.config import sample_config_path

    text = sample_config_path().read_text()
    text = text.replace(
        'url = "duckdb:///${SQLMODE_SAMPLE_DB:-~/.cache/sqlmode/sample-v1.duckdb}"',
        f'url = "duckdb:///{sample_duckdb_path}"',
    ).replace("build_sample = true", "build_sample = false")
    text = text.replace('token_secret = "${CODE_MODE_SECRET:-}"', f'token_secret = "{TEST_TOKEN_SECRET}"')
    text = text.replace(
        'path = "${SQLMODE_AUDIT_LOG:-~/.cache/sqlmode/audit.jsonl}"', f'path = "{tmp_path / "audit.jsonl"}"'
    )
    p = tmp_path / "sqlmode.toml"
    p.write_text(text)
    assert str(sample_duckdb_path) in text
    return p


def with_custom_policy(config: Path, tmp_path: Path, cedar: str) -> tuple[Path, Path]:
    """``config`` plus one custom Cedar file holding ``cedar``: (the new config, the Cedar file)."""
    policy = tmp_path / "custom.cedar"
    policy.write_text(cedar)
    out = tmp_path / "with-policy.toml"
    out.write_text(config.read_text() + f'\n[policy]\npaths = ["{policy}"]\n')
    return out, policy


def sqlmode(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLMODE_")}
    return subprocess.run(
        [sys.executable, "-m", "sqlmode", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_validate_blocked_column_exits_1_naming_it(config: Path) -> None:
    r = sqlmode("validate", "--config", str(config), "--json", "SELECT ssn FROM customers")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == VALIDATION_KEYS
    assert out["is_valid"] is False and out["approval_token"] is None
    assert any("customers.ssn" in v["message"] for v in out["violations"])


def test_validate_good_query_exits_0_with_token_and_limit(config: Path) -> None:
    r = sqlmode(
        "validate", "--config", str(config), "--json", "SELECT id, total FROM orders ORDER BY total DESC"
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["is_valid"] is True and out["approval_token"]
    assert "LIMIT 1001" in out["normalized_code"].upper()  # max_rows + 1 probe row


def test_validate_of_invalid_utf8_is_a_refusal_and_the_audit_log_still_verifies(config: Path) -> None:
    # argv's invalid UTF-8 reaches Python as a lone surrogate: the audit write failed on it
    # ("cannot write audit log ... surrogates not allowed", exit 2).
    r = subprocess.run(
        [sys.executable, "-m", "sqlmode", "validate", "--config", str(config), "--json", b"SELECT \xff"],
        capture_output=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SQLMODE_")},
        timeout=60,
    )
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert [v["code"] for v in out["violations"]] == ["PARSE_ERROR"] and "U+DCFF" in out["violations"][0][
        "message"
    ]
    assert b"Traceback" not in r.stderr
    v = sqlmode("audit", "verify", "--config", str(config))
    assert v.returncode == 0 and "chain intact" in v.stdout, v.stdout + v.stderr


def test_a_multi_line_error_of_sqlmode_keeps_its_lines_and_database_text_stays_on_one(
    config: Path, tmp_path: Path
) -> None:
    with_policy, bad = with_custom_policy(
        config,
        tmp_path,
        'permit(principal, action == Action::"execute", resource);\n'
        "forbid(principal, action, resource) when { resource.nope };\n",
    )
    r = sqlmode("validate", "--config", str(with_policy), "SELECT 1")
    assert r.returncode == 2 and "\\x0a" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == "error: policies failed to load:"
    assert sum(f"{bad}:1: error:" in line for line in lines) >= 1 and any(
        f"{bad}:2: error:" in x for x in lines
    )
    assert all(line.startswith(("error:", "hint:", "  ")) for line in lines if line), r.stderr
    # the database's words can quote stored values: their line breaks stay escaped on one line
    r = sqlmode("query", "--config", str(config), "--yes", "SELECT CAST(status AS INTEGER) AS n FROM orders")
    (error,) = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert "Conversion Error" in error and "\\x0a" in error, r.stderr


def test_validate_reads_stdin(config: Path) -> None:
    r = sqlmode("validate", "--config", str(config), "--json", "-", stdin="SELECT count(*) FROM orders")
    assert r.returncode == 0, r.stderr


def test_validate_file_prints_one_result_per_line_with_ids(config: Path, tmp_path: Path) -> None:
    log = tmp_path / "queries.jsonl"
    log.write_text(
        json.dumps({"id": "q1", "sql": "SELECT id FROM orders"})
        + "\n"
        + json.dumps({"id": 2, "sql": "SELECT secret FROM credentials"})
        + "\n"
    )
    r = sqlmode("validate", "--config", str(config), "--json", "--file", str(log))
    assert r.returncode == 1, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["id"] for x in lines] == ["q1", 2]
    assert [x["is_valid"] for x in lines] == [True, False]
    assert set(lines[0]) >= VALIDATION_KEYS


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--config", "/nonexistent/sqlmode.toml", "SELECT 1"],
        ["validate", "--bogus-flag", "SELECT 1"],
    ],
)
def test_usage_and_config_errors_exit_2(args: list[str]) -> None:
    r = sqlmode(*args)
    assert r.returncode == 2
    assert r.stderr.strip()


def test_dead_database_exits_2_with_clear_message(tmp_path: Path) -> None:
    p = tmp_path / "pg.toml"
    p.write_text(
        '[database]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n'
        f'[code_mode]\ntoken_secret = "{TEST_TOKEN_SECRET}"\n[audit]\npath = "{tmp_path / "a.jsonl"}"\n'
    )
    r = sqlmode("validate", "--config", str(p), "SELECT 1")
    assert r.returncode == 2
    assert "error:" in r.stderr and "Traceback" not in r.stderr


def test_query_yes_prints_csv(config: Path) -> None:
    r = sqlmode(
        "query",
        "--config",
        str(config),
        "--yes",
        "--format",
        "csv",
        "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region",
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "region,n" and len(lines) > 2


def test_query_without_approval_does_not_run(config: Path) -> None:
    r = sqlmode("query", "--config", str(config), "SELECT id FROM orders", stdin="n\n")
    assert r.returncode == 1
    assert "not run" in r.stderr


def test_query_with_no_answer_on_stdin_does_not_run_and_says_why(config: Path) -> None:
    r = sqlmode("query", "--config", str(config), "SELECT id FROM orders", stdin="")
    assert r.returncode == 1
    assert "not run: no answer to the question (add --yes" in r.stderr
    assert "Aborted" not in r.stderr and "Traceback" not in r.stderr
    assert r.stdout.startswith("VALID:") and "(1 rows" not in r.stdout and "rows," not in r.stdout  # no rows


def test_schema_prints_bounded_schema(config: Path) -> None:
    r = sqlmode("schema", "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert "orders" in r.stdout and "ssn" not in r.stdout and "credentials" not in r.stdout


def test_policy_check_ok_prints_effective_set(config: Path) -> None:
    r = sqlmode("policy", "check", "--config", str(config))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "baseline.permit-read" in r.stdout


def test_policy_check_names_file_and_line_of_a_broken_policy(config: Path, tmp_path: Path) -> None:
    broken = (
        '@id("ok")\npermit (principal, action, resource);\n\n'
        + '@id("broken")\nforbid (principal, action resource);\n'
    )
    cfg, _ = with_custom_policy(config, tmp_path, broken)
    r = sqlmode("policy", "check", "--config", str(cfg))
    assert r.returncode == 1, r.stdout + r.stderr
    # the broken policy starts on line 4 and its error is on line 5: either names the spot
    assert re.search(r"custom\.cedar:[45]: error: syntax error", r.stdout), r.stdout
