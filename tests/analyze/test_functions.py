"""The function allowlist: what issue 3 names as dangerous never passes, in any spelling."""

from __future__ import annotations

import pytest

from sqlmode.analyze import Analyzer
from sqlmode.analyze.functions import DEFAULT_ALLOWLIST, policy_for
from sqlmode.engines import engine_named
from tests.analyze.conftest import make_settings, sample_snapshot

DANGEROUS = {
    # side effects
    "nextval": "('s')",
    "setval": "('s', 1)",
    "set_config": "('a', 'b', false)",
    "pg_advisory_lock": "(1)",
    "pg_advisory_xact_lock": "(1)",
    "pg_try_advisory_lock": "(1)",
    "pg_notify": "('c', 'p')",
    "lo_import": "('/etc/passwd')",
    "lo_export": "(1, '/tmp/x')",
    "lo_unlink": "(1)",
    "dblink": "('x', 'y')",
    "dblink_exec": "('x', 'y')",
    "pg_terminate_backend": "(1)",
    "pg_cancel_backend": "(1)",
    "pg_reload_conf": "()",
    "txid_current": "()",
    "txid_current_snapshot": "()",
    "setseed": "(0.5)",
    # files and network
    "pg_read_file": "('/etc/passwd')",
    "pg_read_binary_file": "('x')",
    "pg_ls_dir": "('.')",
    "pg_stat_file": "('x')",
    "read_csv": "('x')",
    "read_csv_auto": "('x')",
    "read_parquet": "('x')",
    "read_json": "('x')",
    "read_json_auto": "('x')",
    "read_ndjson": "('x')",
    "read_text": "('x')",
    "read_blob": "('x')",
    "glob": "('/*')",
    "sniff_csv": "('x')",
    "parquet_scan": "('x')",
    "httpfs_get": "('https://example.com')",
    # SQL inside strings
    "query": "('SELECT 1')",
    "query_table": "('t')",
    "query_to_xml": "('SELECT 1', true, true, '')",
    "table_to_xml": "('t', true, true, '')",
    "ts_stat": "('SELECT 1')",
    # secrets and environment
    "getenv": "('HOME')",
    "current_setting": "('data_directory')",
    "duckdb_secrets": "()",
    "duckdb_settings": "()",
    "which_secret": "('x', 's3')",
    "inet_server_addr": "()",
    # sleep
    "pg_sleep": "(1)",
    "pg_sleep_for": "('1 hour')",
    "pg_sleep_until": "('tomorrow')",
    "sleep": "(1)",
}


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
@pytest.mark.parametrize("name", sorted(DANGEROUS))
def test_dangerous_function_refused_in_every_spelling(dialect: str, name: str) -> None:
    analyzer = Analyzer(make_settings(dialect))
    snapshot = sample_snapshot(dialect)
    args = DANGEROUS[name]
    prefix = "pg_catalog." if dialect == "postgres" else "main."
    for sql in [
        f"SELECT {name}{args}",
        f"SELECT {name.upper()}{args}",
        f"SELECT {prefix}{name}{args}",
        f"SELECT * FROM {name}{args} AS t",
        f"SELECT id FROM orders WHERE {name}{args} IS NOT NULL",
        f"SELECT id FROM orders ORDER BY {name}{args}",
    ]:
        a = analyzer.analyze(sql, snapshot)
        assert a.violations, sql
        assert {v.code for v in a.violations} & {
            "FUNCTION_NOT_ALLOWED",
            "FILE_ACCESS",
            "INTROSPECTION_BLOCKED",
            "PARSE_ERROR",
        }, (sql, a.violations)


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
def test_no_dangerous_name_is_on_the_compiled_allowlist(dialect: str) -> None:
    policy = policy_for(engine_named(dialect).traits)
    assert not set(DANGEROUS) & DEFAULT_ALLOWLIST
    # ...nor does any of them parse into a node class the allowlist admits
    from sqlmode.analyze.functions import _classes_for

    for name in DANGEROUS:
        assert not (_classes_for(name, dialect) & policy.allowed_classes), name


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        (
            "postgres",
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total),"
            " mode() WITHIN GROUP (ORDER BY status)"
            " FROM orders",
        ),
        (
            "postgres",
            "SELECT string_agg(status, ',' ORDER BY status),"
            " array_agg(DISTINCT status), jsonb_agg(total)"
            " FROM orders",
        ),
        (
            "postgres",
            "SELECT date_trunc('week', created_at), extract(dow FROM created_at),"
            " age(created_at), to_char(created_at, 'YYYY')"
            " FROM orders",
        ),
        (
            "postgres",
            "SELECT coalesce(status, 'x'), nullif(status, 'y'), greatest(total,"
            " 1), least(total, 2), abs(total), round(total, 1)"
            " FROM orders",
        ),
        (
            "postgres",
            "SELECT regexp_replace(status, 'a', 'b'), split_part(status,"
            " '-', 1), lower(status), length(status), left(status, 2)"
            " FROM orders",
        ),
        (
            "postgres",
            "SELECT lag(total) OVER w, lead(total) OVER w, ntile(4) OVER w, first_value(total) OVER w"
            " FROM orders WINDOW w AS (ORDER BY id)",
        ),
        (
            "duckdb",
            "SELECT median(total), quantile_cont(total, 0.9), arg_max(id,"
            " total), list(status), approx_count_distinct(status)"
            " FROM orders",
        ),
        (
            "duckdb",
            "SELECT strftime(created_at, '%Y-%m'), date_diff('day', created_at,"
            " now()), epoch(created_at), dayname(created_at)"
            " FROM orders",
        ),
        (
            "duckdb",
            "SELECT list_sort(list_distinct(list(status))), string_split(status, '-'), json_object('k', id)"
            " FROM orders GROUP BY id",
        ),
        ("duckdb", "SELECT list_transform([1, 2], lambda x: x + 1), [x * 2 FOR x IN [1, 2]], {'a': 1}.a"),
    ],
)
def test_analyst_functions_pass(dialect: str, sql: str) -> None:
    a = Analyzer(make_settings(dialect)).analyze(sql, sample_snapshot(dialect))
    assert a.violations == [], a.violations
