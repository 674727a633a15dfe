"""DuckDB reflection reads DuckDB's own catalog (no SQLAlchemy): its type names, keys, comments and views."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb

from sqlmode.config import Settings
from sqlmode.schema import reflect_schema

ROOT = Path(__file__).resolve().parent.parent


def build(path: Path) -> None:
    with duckdb.connect(str(path)) as c:
        c.execute(
            "CREATE TABLE parent (id BIGINT PRIMARY KEY, tags VARCHAR[], seen_at TIMESTAMPTZ, "
            "amount DECIMAL(12,2), big HUGEINT, score DOUBLE, meta STRUCT(a INTEGER, b VARCHAR), "
            "kind ENUM('x', 'y'))"
        )
        c.execute(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id BIGINT REFERENCES parent(id), "
            "note VARCHAR NOT NULL)"
        )
        c.execute("COMMENT ON TABLE child IS 'children'")
        c.execute("COMMENT ON COLUMN child.note IS 'free text'")
        c.execute("CREATE VIEW recent AS SELECT id, note FROM child")
        c.execute("INSERT INTO parent (id) VALUES (1), (2)")


def settings_for(make_settings: Callable[..., Settings], path: Path) -> Settings:
    return make_settings(
        {
            "database": {"url": f"duckdb:///{path}", "tables": [], "descriptions": ""},
            "code_mode": {"blocked_tables": [], "blocked_fields": []},
        }
    )


async def test_types_keys_comments_and_views_come_from_duckdbs_catalog(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = tmp_path / "types.duckdb"
    build(path)
    snap = await reflect_schema(settings_for(make_settings, path))
    assert set(snap.tables) == {"parent", "child", "recent"}
    parent, child, recent = snap.tables["parent"], snap.tables["child"], snap.tables["recent"]
    # DuckDB's own names, as the model writes them (SQLAlchemy said FLOAT, INTEGER, NULL, TIMESTAMP).
    assert {c.name: c.type for c in parent.columns} == {
        "id": "BIGINT",
        "tags": "VARCHAR[]",
        "seen_at": "TIMESTAMP WITH TIME ZONE",
        "amount": "DECIMAL(12,2)",
        "big": "HUGEINT",
        "score": "DOUBLE",
        "meta": "STRUCT(a INTEGER, b VARCHAR)",
        "kind": "ENUM('x', 'y')",
    }
    assert [c.name for c in parent.columns if c.primary_key] == ["id"] and parent.row_count == 2
    assert [(fk.columns, fk.ref_table, fk.ref_columns) for fk in child.foreign_keys] == [
        (("parent_id",), "parent", ("id",))
    ]
    note = child.column("note")
    assert (
        note is not None and not note.nullable and note.comment == "free text" and child.comment == "children"
    )
    assert recent.kind == "view" and [c.name for c in recent.columns] == ["id", "note"]
    assert parent.kind == child.kind == "table"


def test_reflecting_duckdb_loads_no_sqlalchemy(tmp_path: Path) -> None:
    path = tmp_path / "small.duckdb"
    build(path)
    code = (
        "import asyncio, sys\n"
        "from sqlmode.config import load_config\n"
        "from sqlmode.schema import reflect_schema\n"
        f"snap = asyncio.run(reflect_schema(load_config({str(cfg_path(path, tmp_path))!r})))\n"
        "assert 'parent' in snap.tables\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'duckdb_engine')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def cfg_path(path: Path, tmp_path: Path) -> Path:
    cfg = tmp_path / "sqlmode.toml"
    cfg.write_text(f'[database]\nurl = "duckdb:///{path}"\n\n[code_mode]\ntoken_secret = "{"s" * 40}"\n')
    return cfg
