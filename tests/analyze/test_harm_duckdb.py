"""The attack fixtures are honest: let through, each would do real harm on DuckDB.

Each case runs the fixture's SQL verbatim (paths under /tmp/ moved into the test's tmp
dir) on a scratch read-write copy of the sample warehouse named warehouse.duckdb, with
DuckDB's default settings, i.e. with none of the executor's protections. The analyzer
must refuse the same SQL. Attacks the DuckDB parser itself rejects (DML in CTEs, SELECT
INTO, FOR UPDATE) and attacks that are unsafe to run (huge generators) have no case here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sqlmode.analyze import Analyzer
from tests.analyze.conftest import make_settings, sample_snapshot
from tests.fixtures.cases import attack_cases

CASES = {c.name: c for c in attack_cases("duckdb")}
SSN_SHAPE = r"^\d{3}-\d{2}-\d{4}$"


@pytest.fixture
def scratch(sample_duckdb_path: Path, tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(sample_duckdb_path, path)
    con = duckdb.connect(str(path))
    yield con
    con.close()


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    assert row is not None, sql
    return row[0]


BY_SSN = "SELECT name FROM customers ORDER BY ssn"


def _count(con: duckdb.DuckDBPyConnection, rest: str) -> int:
    return _scalar(con, f"SELECT count(*) FROM {rest}")


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(_scalar(con, f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{name}'"))


def _has_ssn(rows: list[tuple]) -> bool:
    import re

    def walk(v: Any) -> bool:
        if isinstance(v, str):
            return bool(re.match(SSN_SHAPE, v)) or '"ssn"' in v
        if isinstance(v, dict):
            return "ssn" in v or any(walk(x) for x in v.values())
        if isinstance(v, (list, tuple)):
            return any(walk(x) for x in v)
        return False

    return any(walk(r) for r in rows)


def _has_secret(rows: list[tuple]) -> bool:
    return any("sk_live_" in str(r) for r in rows)


Check = Callable[[duckdb.DuckDBPyConnection, list[tuple], Path], None]

HARM: dict[str, Check] = {
    # one statement in, several run: the read-only transaction is committed, then the drop runs
    "commit_then_drop": lambda con, rows, tmp: _assert(not _table_exists(con, "order_items")),
    "select_then_drop": lambda con, rows, tmp: _assert(not _table_exists(con, "order_items")),
    "select_then_copy_out": lambda con, rows, tmp: _assert((tmp / "customers.csv").exists()),
    "select_then_attach": lambda con, rows, tmp: _assert((tmp / "evil.duckdb").exists()),
    # statements that are not queries
    "drop_table": lambda con, rows, tmp: _assert(not _table_exists(con, "order_items")),
    "delete_all": lambda con, rows, tmp: _assert(_scalar(con, "SELECT count(*) FROM contacts") == 0),
    "update_totals": lambda con, rows, tmp: _assert(_scalar(con, "SELECT sum(total) FROM orders") == 0),
    "insert_row": lambda con, rows, tmp: _assert(_count(con, "orders WHERE id = 999999") == 1),
    "create_table_as": lambda con, rows, tmp: _assert(
        _has_ssn(con.execute("SELECT ssn FROM stolen LIMIT 3").fetchall())
    ),
    "alter_table": lambda con, rows, tmp: _assert(
        _scalar(con, "SELECT count(*) FROM duckdb_columns() WHERE column_name = 'pwned'") == 1
    ),
    "truncate_contacts": lambda con, rows, tmp: _assert(_scalar(con, "SELECT count(*) FROM contacts") == 0),
    "copy_to_file": lambda con, rows, tmp: _assert("ssn" in (tmp / "customers.csv").read_text()),
    "copy_query_to_file": lambda con, rows, tmp: _assert((tmp / "c.parquet").stat().st_size > 0),
    "attach_file": lambda con, rows, tmp: _assert((tmp / "evil.duckdb").exists()),
    "set_threads": lambda con, rows, tmp: _assert(_scalar(con, "SELECT current_setting('threads')") == 1),
    "update_returning": lambda con, rows, tmp: _assert(
        _scalar(con, "SELECT rep FROM contacts WHERE id = 1") == "pwned"
    ),
    "summarize_table": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "describe_table": lambda con, rows, tmp: _assert(any(r[0] == "ssn" for r in rows)),
    # functions: files, SQL in strings, settings
    "read_csv_passwd": lambda con, rows, tmp: _assert(any("/usr/sbin" in str(r) for r in rows)),
    "read_text_passwd": lambda con, rows, tmp: _assert("root:" in rows[0][0]),
    "read_blob_file": lambda con, rows, tmp: _assert(b"root:" in rows[0][1]),
    "glob_root": lambda con, rows, tmp: _assert(len(rows) > 0),
    "query_function_runs_sql": lambda con, rows, tmp: _assert(_has_secret(rows)),
    "query_table_function": lambda con, rows, tmp: _assert(_has_secret(rows)),
    "duckdb_settings_fn": lambda con, rows, tmp: _assert(any(r[0] == "enable_external_access" for r in rows)),
    # catalogs
    "information_schema_columns": lambda con, rows, tmp: _assert(("customers", "ssn") in rows),
    "duckdb_columns_fn": lambda con, rows, tmp: _assert(("secret",) in rows),
    "duckdb_tables_fn": lambda con, rows, tmp: _assert(any("credentials" in r for r in rows)),
    # blocked tables under other spellings
    "credentials_plain": lambda con, rows, tmp: _assert(_has_secret(rows)),
    "credentials_upper": lambda con, rows, tmp: _assert(_has_secret(rows)),
    "credentials_quoted_mixed_case": lambda con, rows, tmp: _assert(_has_secret(rows)),
    "credentials_schema_qualified": lambda con, rows, tmp: _assert(_has_secret(rows)),
    "credentials_catalog_qualified": lambda con, rows, tmp: _assert(_has_secret(rows)),
    "credentials_cte_shadows_allowed_name": lambda con, rows, tmp: _assert(_has_secret(rows)),
    "credentials_in_union": lambda con, rows, tmp: _assert(_has_secret(rows)),
    "credentials_scalar_subquery": lambda con, rows, tmp: _assert(_has_secret(rows)),
    "credentials_exists_oracle": lambda con, rows, tmp: _assert(rows[0][0] >= 0),
    # blocked columns by every route
    "ssn_via_star": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_table_star": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_star_exclude_other": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_bare_from": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_whole_row_struct": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_table_name_row": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_to_json_row": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_row_to_json": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_positional": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_columns_regex": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_columns_star": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_columns_lambda": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_struct_literal": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_renamed_by_alias": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_subquery_rename": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_cte_column_list": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_cte_star_then_named": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_cte_star_then_star": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_derived_alias_columns": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_via_nested_ctes": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_union_branch": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_pivot_groups_by_rest": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_recursive_cte": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    "ssn_lateral_reference": lambda con, rows, tmp: _assert(_has_ssn(rows)),
    # oracles: the answer depends on the blocked values
    "ssn_like_oracle": lambda con, rows, tmp: _assert(0 < len(rows) < _count(con, "customers")),
    "ssn_case_oracle": lambda con, rows, tmp: _assert(0 < rows[0][0] < _count(con, "customers")),
    "ssn_count_distinct": lambda con, rows, tmp: _assert(rows[0][0] > 1),
    "ssn_order_by": lambda con, rows, tmp: _assert(
        [r[0] for r in rows] == [r[0] for r in con.execute(BY_SSN).fetchall()]
    ),
    # an unconstrained product of two tables
    "cartesian_comma": lambda con, rows, tmp: _assert(
        len(rows) == _count(con, "customers") * _count(con, "products")
    ),
}


def _assert(condition: bool) -> None:
    assert condition


@pytest.mark.parametrize("name", sorted(HARM))
def test_attack_would_do_harm_and_is_refused(
    name: str, scratch: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    case = CASES[name]
    analysis = Analyzer(make_settings("duckdb")).analyze(case.sql, sample_snapshot("duckdb"))
    assert analysis.violations, f"{name} must be refused"
    sql = case.sql.replace("/tmp/", f"{tmp_path}/")
    if name == "commit_then_drop":
        scratch.execute("BEGIN TRANSACTION READ ONLY")  # what a "read-only" server wraps it in
    rows = scratch.execute(sql).fetchall()
    HARM[name](scratch, rows, tmp_path)


def test_unbounded_recursion_runs_until_interrupted(scratch: duckdb.DuckDBPyConnection) -> None:
    import threading

    case = CASES["recursive_cte_unbounded"]
    analysis = Analyzer(make_settings("duckdb")).analyze(case.sql, sample_snapshot("duckdb"))
    assert {v.code for v in analysis.violations} == {"UNBOUNDED_RECURSION"}
    timer = threading.Timer(0.5, scratch.interrupt)  # the executor's watchdog, in miniature
    timer.start()
    try:
        with pytest.raises(duckdb.InterruptException):
            scratch.execute(case.sql).fetchall()
    finally:
        timer.cancel()


def test_harm_cases_cover_every_attack_class() -> None:
    sections = {
        "statements": {"commit_then_drop", "select_then_drop"},
        "not a query": {"drop_table", "copy_to_file", "attach_file", "set_threads"},
        "functions": {"read_csv_passwd", "query_function_runs_sql"},
        "string tables / introspection": {"information_schema_columns", "summarize_table"},
        "blocked tables": {"credentials_quoted_mixed_case", "credentials_catalog_qualified"},
        "blocked columns": {
            "ssn_via_star",
            "ssn_via_whole_row_struct",
            "ssn_via_positional",
            "ssn_like_oracle",
        },
        "limits": {"cartesian_comma"},
    }
    for names in sections.values():
        assert names <= set(HARM)
