"""Engine knowledge lives in sqlmode/engines/ only: no engine name, no driver import elsewhere.

The rest of the code asks an Engine (its traits and methods), so adding an engine means writing
one module there and registering it, not editing branches all over the package.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "sqlmode"
ENGINE_NAMES = {"duckdb", "postgres", "postgresql"}
DRIVERS = {"duckdb", "_duckdb", "duckdb_engine", "asyncpg", "pglast", "psycopg", "psycopg2"}
# PostgreSQL as sqlmode's own storage (the shared state store, the audit sink), not as a database
# queries run on: these talk to it directly, as they would to any other store.
STORAGE_BACKENDS = {"state/postgres.py", "audit/postgres.py"}
# state.url picks sqlmode's own store by scheme (memory://, sqlite:///, postgresql://): storage URLs,
# not database.url, so their prefixes are not engine knowledge.
STORAGE_URLS = STORAGE_BACKENDS | {"state/__init__.py"}

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


# A string starting with an engine's URL scheme and holding no whitespace is code that builds or
# matches that engine's URLs ("duckdb:///" + path, url.startswith(("postgres://", ...)), an
# f-string's leading part). Prose that shows a URL to users (a hint, a docstring, a field
# description) holds spaces and is left alone: it is a message, not a branch on the engine.
URL_PREFIX = re.compile(r"^(duckdb|postgres|postgresql)(\+[a-z0-9_]*)?:", re.IGNORECASE)


def url_prefixes(tree: ast.AST) -> list[str]:
    return [
        f"line {n.lineno}: {n.value!r}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and URL_PREFIX.match(n.value)
        and not any(c.isspace() for c in n.value)
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
    return (
        engine_names(tree)
        + ([] if rel in STORAGE_URLS else url_prefixes(tree))
        + ([] if rel in STORAGE_BACKENDS else driver_imports(tree))
    )


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


@pytest.mark.parametrize(
    "code",
    [
        'url = "duckdb:///" + path',
        'url = f"duckdb:///{p}"',
        'ok = url.startswith("duckdb:")',
        'ok = url.startswith(("postgres://", "postgresql://", "postgresql+"))',
        'd = {"url": "duckdb:///:memory:"}',
        'ok = u.startswith("PostgreSQL+asyncpg://")',
    ],
)
def test_the_check_sees_url_prefixes_in_code(code: str) -> None:
    assert url_prefixes(ast.parse(code)), code


@pytest.mark.parametrize(
    "code",
    [
        'hint = "Give postgresql://USER@HOST/DB, or a DuckDB file (path or duckdb:///...)."',
        'msg = "duckdb:///name.duckdb (three slashes) is relative to the config file\'s folder"',
        'def f():\n    """Open duckdb:///file.duckdb or postgresql://u@h/db."""',
        'x = "sqlite:///file.db"',
        'y = "duckdb_engine"',
    ],
)
def test_the_check_leaves_messages_alone(code: str) -> None:
    assert url_prefixes(ast.parse(code)) == [], code
