"""The sample warehouse: deterministic, consistent, and able to answer the long-tail question."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from sqlmode.config import Settings
from sqlmode.sample import (
    blocked_demo_sql,
    build_sample_duckdb,
    ensure_sample_db,
    generator,
    load_sample_postgres,
    long_tail_sql,
)

gen = generator()
SMALL = 0.25  # smallest handy scale: the floors keep every table populated


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The single row of an aggregate query."""
    row = con.execute(sql).fetchone()
    assert row is not None, sql
    return row


def _checksums(path: Path) -> dict[str, tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            t: _one(
                con,
                f"SELECT count(*), md5(string_agg(CAST(x AS VARCHAR), '|' ORDER BY CAST(x AS VARCHAR))) "
                f"FROM {t} AS x",
            )
            for t in gen.TABLES
        }


def _counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: _one(con, f"SELECT count(*) FROM {t}")[0] for t in gen.TABLES}


def test_same_scale_and_seed_build_identical_data(sample_duckdb_path: Path, tmp_path: Path) -> None:
    again = build_sample_duckdb(tmp_path / "again.duckdb")
    assert _checksums(again) == _checksums(sample_duckdb_path)


def test_another_seed_builds_other_data(tmp_path: Path) -> None:
    a = _checksums(build_sample_duckdb(tmp_path / "a.duckdb", scale=SMALL, seed=1))
    b = _checksums(build_sample_duckdb(tmp_path / "b.duckdb", scale=SMALL, seed=2))
    assert a["customers"][0] == b["customers"][0]
    assert a["customers"][1] != b["customers"][1]


def test_row_counts_scale_with_scale(sample_duckdb_path: Path, tmp_path: Path) -> None:
    one = _counts(sample_duckdb_path)
    two = _counts(build_sample_duckdb(tmp_path / "two.duckdb", scale=2))
    assert one["customers"] == 2000 and two["customers"] == 4000
    assert 25_000 <= one["orders"] <= 35_000 and 60_000 <= one["order_items"] <= 100_000
    assert one["support_tickets"] >= 3000 and one["contacts"] >= 2000
    for table in ("customers", "products", "orders", "order_items", "support_tickets", "contacts"):
        assert two[table] / one[table] == pytest.approx(2, rel=0.05), table


def test_build_time_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.perf_counter()
    build_sample_duckdb(tmp_path / "timed.duckdb")
    elapsed = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n[sample_db] scale 1 built in {elapsed:.2f}s")


def test_keys_are_declared(sample_duckdb_path: Path) -> None:
    with duckdb.connect(str(sample_duckdb_path), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name, constraint_type, constraint_column_names, referenced_table "
            "FROM duckdb_constraints() WHERE constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')"
        ).fetchall()
    pks = {t: cols for t, kind, cols, _ in rows if kind == "PRIMARY KEY"}
    fks = {(t, tuple(cols), ref) for t, kind, cols, ref in rows if kind == "FOREIGN KEY"}
    assert set(pks) == set(gen.TABLES)
    assert pks["order_items"] == ["order_id", "product_id"]
    assert fks == {
        ("orders", ("customer_id",), "customers"),
        ("order_items", ("order_id",), "orders"),
        ("order_items", ("product_id",), "products"),
        ("support_tickets", ("customer_id",), "customers"),
        ("contacts", ("customer_id",), "customers"),
    }


def test_data_is_consistent(sample_duckdb_path: Path) -> None:
    as_of = f"TIMESTAMP '{gen.AS_OF:%Y-%m-%d %H:%M:%S}'"
    checks = {
        "orphan order": "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id "
        "WHERE c.id IS NULL",
        "orphan item": "SELECT count(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id "
        "LEFT JOIN products p ON p.id = i.product_id WHERE o.id IS NULL OR p.id IS NULL",
        "orphan ticket": "SELECT count(*) FROM support_tickets t "
        "LEFT JOIN customers c ON c.id = t.customer_id WHERE c.id IS NULL",
        "orphan contact": "SELECT count(*) FROM contacts t LEFT JOIN customers c ON c.id = t.customer_id "
        "WHERE c.id IS NULL",
        "order without items": "SELECT count(*) FROM orders o WHERE NOT EXISTS "
        "(SELECT 1 FROM order_items i WHERE i.order_id = o.id)",
        "total != sum of items": "SELECT count(*) FROM orders o JOIN (SELECT order_id, "
        "sum(quantity * unit_price) s FROM order_items GROUP BY order_id) i ON i.order_id = o.id "
        "WHERE i.s <> o.total",
        "order before signup": "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.created_at < c.created_at",
        "future row": f"SELECT (SELECT count(*) FROM orders WHERE created_at > {as_of}) "
        f"+ (SELECT count(*) FROM support_tickets WHERE opened_at > {as_of} OR closed_at > {as_of}) "
        f"+ (SELECT count(*) FROM contacts WHERE contacted_at > {as_of})",
        "closed before opened": "SELECT count(*) FROM support_tickets WHERE closed_at < opened_at",
        "closed state without closed_at": "SELECT count(*) FROM support_tickets "
        "WHERE (status IN ('solved', 'closed')) <> (closed_at IS NOT NULL)",
    }
    with duckdb.connect(str(sample_duckdb_path), read_only=True) as con:
        bad = {name: n for name, sql in checks.items() if (n := _one(con, sql)[0])}
    assert bad == {}


def test_one_ticket_carries_a_prompt_injection(sample_duckdb_path: Path) -> None:
    with duckdb.connect(str(sample_duckdb_path), read_only=True) as con:
        rows = con.execute(
            "SELECT subject FROM support_tickets WHERE subject ILIKE '%ignore previous instructions%'"
        ).fetchall()
    assert rows == [(gen.INJECTION_SUBJECT,)]


def _check_long_tail_answer(rows: list[tuple[Any, ...]], columns: list[str], as_of: datetime) -> None:
    assert 0 < len(rows) <= 20
    r = [dict(zip(columns, row, strict=True)) for row in rows]
    for row in r:
        spends = [row[f"spend_month_{i}"] for i in range(4)]
        assert spends == sorted(spends, reverse=True) and len(set(spends)) == 4, row
        assert row["spend_drop"] == spends[0] - spends[3]
        assert row["last_contacted_at"] is None or row["last_contacted_at"] < as_of - timedelta(days=14)
    drops = [row["spend_drop"] for row in r]
    assert drops == sorted(drops, reverse=True)
    # The data makes the comparison with ticket volume interesting: both quiet and noisy accounts.
    tickets = [row["ticket_count"] for row in r]
    assert min(tickets) == 0 and max(tickets) >= 5


def test_long_tail_question_has_an_answer_on_duckdb(sample_duckdb_path: Path) -> None:
    with duckdb.connect(str(sample_duckdb_path), read_only=True) as con:
        cur = con.execute(long_tail_sql("duckdb"))
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
        as_of = _one(con, "SELECT max(created_at) FROM orders")[0]
    assert len(rows) == 20
    assert isinstance(rows[0][columns.index("spend_drop")], Decimal)
    _check_long_tail_answer(rows, columns, as_of)


def test_long_tail_answer_survives_the_smallest_scale(tmp_path: Path) -> None:
    path = build_sample_duckdb(tmp_path / "small.duckdb", scale=SMALL)
    with duckdb.connect(str(path), read_only=True) as con:
        cur = con.execute(long_tail_sql("duckdb"))
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
        as_of = _one(con, "SELECT max(created_at) FROM orders")[0]
    assert len(rows) >= 10
    _check_long_tail_answer(rows, columns, as_of)


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_long_tail_sql_reads_only_allowed_data(dialect: str) -> None:
    tree = sqlglot.parse_one(long_tail_sql(dialect), dialect=dialect)
    ctes = {c.alias for c in tree.find_all(exp.CTE)}
    tables = {t.name for t in tree.find_all(exp.Table)} - ctes
    assert tables == {"orders", "customers", "support_tickets", "contacts"}
    assert "ssn" not in {c.name for c in tree.find_all(exp.Column)}
    assert not list(tree.find_all(exp.Star)) or all(
        isinstance(s.parent, exp.Count) for s in tree.find_all(exp.Star)
    )


def test_blocked_demo_sql_reads_the_ssn() -> None:
    tree = sqlglot.parse_one(blocked_demo_sql(), dialect="duckdb")
    assert {c.name for c in tree.find_all(exp.Column)} >= {"ssn"}


def test_unknown_dialect_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown dialect 'mysql'"):
        long_tail_sql("mysql")  # a wrong name, on purpose


def test_bad_scale_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scale must be a positive number"):
        build_sample_duckdb(tmp_path / "x.duckdb", scale=0)
    assert list(tmp_path.iterdir()) == []


def test_ensure_sample_db_builds_only_when_asked_and_missing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    target = tmp_path / "cache" / "nested" / "sample.duckdb"
    off = make_settings({"database": {"url": f"duckdb:///{target}", "build_sample": False}})
    assert ensure_sample_db(off) is False and not target.exists()

    on = make_settings({"database": {"url": f"duckdb:///{target}", "build_sample": True, "sample_scale": 1}})
    assert ensure_sample_db(on) is True and target.exists()
    mtime = target.stat().st_mtime_ns
    assert ensure_sample_db(on) is False and target.stat().st_mtime_ns == mtime
    # Nothing but the database is left behind (no temp files, no WAL).
    assert [p.name for p in target.parent.iterdir()] == ["sample.duckdb"]


def test_concurrent_builders_leave_one_valid_file(sample_duckdb_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "shared.duckdb"
    errors: list[BaseException] = []

    def build() -> None:
        try:
            build_sample_duckdb(target)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [p.name for p in tmp_path.iterdir()] == ["shared.duckdb"]
    assert _checksums(target) == _checksums(sample_duckdb_path)


@pytest.mark.postgres
async def test_postgres_gets_the_same_data(pg_admin_url: str, sample_duckdb_path: Path) -> None:
    import asyncpg

    admin_url = pg_admin_url
    schema = "sample_db_test"
    await load_sample_postgres(admin_url, schema=schema)
    conn = await asyncpg.connect(admin_url, server_settings={"search_path": schema})
    try:
        pg_tables = {
            t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")] for t in gen.TABLES
        }
        fks = await conn.fetchval(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = $1 AND c.contype = 'f'",
            schema,
        )
        stmt = await conn.prepare(long_tail_sql("postgres"))
        pg_rows = [tuple(r) for r in await stmt.fetch()]
        pg_columns = [a.name for a in stmt.get_attributes()]
        as_of = await conn.fetchval("SELECT max(created_at) FROM orders")
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()
    assert fks == 5
    with duckdb.connect(str(sample_duckdb_path), read_only=True) as con:
        duck_rows = con.execute(long_tail_sql("duckdb")).fetchall()
        for t in gen.TABLES:
            # Same values and Python types, row for row (Decimal, datetime, None survive the copy).
            assert pg_tables[t] == con.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall(), t
    assert pg_rows == duck_rows
    _check_long_tail_answer(pg_rows, pg_columns, as_of)
