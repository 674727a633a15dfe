"""The analyzer asks the engine it is given: facts from EngineTraits, parsing from its methods.

No module of sqlmode/analyze names an engine or imports a driver; an engine that differs from
DuckDB in one trait changes the verdict exactly where that trait matters.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from sqlmode.analyze import Analyzer
from sqlmode.engines import Engine, NativeView, engine_named, known_schemes
from sqlmode.engines.base import EngineTraits
from tests.analyze.conftest import make_settings, sample_snapshot

ANALYZE = Path(__file__).resolve().parents[2] / "sqlmode" / "analyze"
DRIVERS = {"duckdb", "pglast", "asyncpg", "psycopg", "psycopg2"}


def _engine_names() -> set[str]:
    names = {"postgres", "postgresql", "duckdb"} | set(known_schemes())
    return names | {engine_named(n).traits.name for n in ("postgres", "duckdb")}


def _driver(module: str) -> bool:
    return module.split(".")[0] in DRIVERS


def _findings(path: Path) -> list[str]:
    names = _engine_names()
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in names:
            out.append(f"line {node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Import):
            out += [
                f"line {node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in DRIVERS
            ]
        elif (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and (node.module or "").split(".")[0] in DRIVERS
        ):
            out.append(f"line {node.lineno}: from {node.module}")
    return out


@pytest.mark.parametrize("path", sorted(ANALYZE.rglob("*.py")), ids=lambda p: str(p.relative_to(ANALYZE)))
def test_analyze_names_no_engine_and_imports_no_driver(path: Path) -> None:
    assert _findings(path) == []


def test_the_scan_sees_a_name_and_a_driver(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import pglast\nif d == 'DuckDB':\n    pass\n", encoding="utf-8")
    assert len(_findings(probe)) == 2


class Variant:
    """DuckDB with some traits changed: the same parser, other facts."""

    def __init__(self, **traits: Any):
        self.base: Engine = engine_named("duckdb")
        self.traits: EngineTraits = dataclasses.replace(self.base.traits, **traits)
        self.schemes: tuple[str, ...] = ()
        self.dialect_notes: str = self.base.dialect_notes

    def native_statements(self, code: str) -> NativeView:
        return self.base.native_statements(code)

    def native_refusals(self, view: NativeView, root_is_write: bool = False) -> list[str]:
        return self.base.native_refusals(view, root_is_write)

    def confirms_rendered(self, sql: str, expected: str) -> bool:
        return self.base.confirms_rendered(sql, expected)

    def __getattr__(self, name: str) -> Any:
        # The rest of the Engine protocol (runtime, reflection, grants): the base engine's.
        return getattr(self.base, name)


def codes(sql: str, engine: Any = None) -> list[str]:
    analyzer = Analyzer(make_settings("duckdb"), engine=engine)
    return [v.code for v in analyzer.analyze(sql, sample_snapshot("duckdb")).violations]


def test_the_default_schema_is_the_engines() -> None:
    assert codes("SELECT id FROM main.orders") == []
    assert codes("SELECT id FROM warehouse.orders") == ["TABLE_NOT_ALLOWED"]
    other = Variant(default_schema="warehouse")
    assert codes("SELECT id FROM warehouse.orders", other) == []
    assert codes("SELECT id FROM main.orders", other) == ["TABLE_NOT_ALLOWED"]


def test_system_function_schemas_are_the_engines() -> None:
    assert codes("SELECT main.lower(name) FROM products") == []
    other = Variant(system_function_schemas=frozenset({"system"}))
    assert codes("SELECT main.lower(name) FROM products", other) == ["FUNCTION_NOT_ALLOWED"]


def test_system_schemas_of_the_engine_are_catalogs() -> None:
    assert codes("SELECT x FROM sys_meta.tables") == ["UNKNOWN_TABLE"]
    other = Variant(system_schemas=frozenset({"sys_meta"}))
    assert codes("SELECT x FROM sys_meta.tables", other) == ["INTROSPECTION_BLOCKED"]


def test_quoted_case_sensitivity_is_the_engines() -> None:
    # Where quoted names are case-sensitive, "C".ssn may bind to the outer customers (an alias
    # `c` inside does not match `"C"`): the blocked column counts as read.
    sql = (
        'SELECT 1 FROM customers "C" WHERE EXISTS '
        '(SELECT 1 FROM orders c WHERE "C".ssn IS NOT NULL AND c.id = 1)'
    )
    assert codes(sql) == ["UNKNOWN_COLUMN"]  # DuckDB: "C" is c, the orders alias, which has no ssn
    strict = Variant(quoted_identifiers_case_sensitive=True)
    assert codes(sql, strict) == ["COLUMN_BLOCKED", "UNKNOWN_COLUMN"]


def test_values_column_names_are_the_engines() -> None:
    sql = "SELECT col0 FROM (VALUES (1)) v"
    assert codes(sql) == []
    assert "UNKNOWN_COLUMN" in codes(sql, Variant(values_column_names=("column{n}",)))


def test_the_analysis_reports_the_engines_name() -> None:
    analyzer = Analyzer(make_settings("duckdb"), engine=Variant(name="duckling"))
    assert analyzer.analyze("SELECT 1", sample_snapshot("duckdb")).dialect == "duckling"
