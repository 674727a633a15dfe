"""Engine knowledge lives in sqlmode/engines/ only: no engine name, no driver import elsewhere.

The rest of the code asks an Engine (its traits and methods), so adding an engine means writing
one module there and registering it, not editing branches all over the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "sqlmode"
ENGINE_NAMES = {"duckdb", "postgres", "postgresql"}
DRIVERS = {"duckdb", "_duckdb", "duckdb_engine", "asyncpg", "pglast", "psycopg", "psycopg2"}
# PostgreSQL as sqlmode's own storage (the shared state store, the audit sink), not as a database
# queries run on: these talk to it directly, as they would to any other store.
STORAGE_BACKENDS = {"state/postgres.py", "audit/postgres.py"}

MODULES = sorted(
    p.relative_to(PKG).as_posix()
    for p in PKG.rglob("*.py")
    if p.relative_to(PKG).parts[0] not in ("engines", "_bundled")
)


def engine_names(tree: ast.AST) -> list[str]:
    return [
        f"line {n.lineno}: {n.value!r}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.lower() in ENGINE_NAMES
    ]


def driver_imports(tree: ast.AST) -> list[str]:
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out += [f"line {n.lineno}: import {a.name}" for a in n.names if a.name.split(".")[0] in DRIVERS]
        elif isinstance(n, ast.ImportFrom) and not n.level and (n.module or "").split(".")[0] in DRIVERS:
            out.append(f"line {n.lineno}: from {n.module} import ...")
    return out


def findings(rel: str) -> list[str]:
    tree = ast.parse((PKG / rel).read_text(encoding="utf-8"))
    return engine_names(tree) + ([] if rel in STORAGE_BACKENDS else driver_imports(tree))


@pytest.mark.parametrize("rel", MODULES)
def test_no_engine_name_or_driver_outside_engines(rel: str) -> None:
    assert findings(rel) == [], f"sqlmode/{rel} knows an engine: ask sqlmode.engines instead"


def test_the_check_sees_names_and_drivers() -> None:
    tree = ast.parse(
        "import asyncpg\nfrom duckdb import connect\nx = 'postgres'\nif d == \"DuckDB\": pass\n"
        "y = f'{a} postgresql'\n"
    )
    assert [f.split(":")[0] for f in engine_names(tree)] == ["line 3", "line 4"]
    assert len(driver_imports(tree)) == 2
    assert engine_names(ast.parse("url = 'postgresql://x'\nname = 'duckdb_engine'")) == []
