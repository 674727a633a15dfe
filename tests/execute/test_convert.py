"""JSON-safe values: what each database type becomes, and capped cells."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sqlmode.execute import open_executor
from sqlmode.execute.convert import (
    CAP_MARKER,
    CHUNK_ROWS,
    ColumnPlan,
    cap_text,
    common_converters,
    convert_consuming,
    convert_rows,
    iso_duration,
    json_safe,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (decimal.Decimal("123.45"), "123.45"),
        (decimal.Decimal("42"), "42"),
        (decimal.Decimal("12345678901234567890.5"), "12345678901234567890.5"),
        (decimal.Decimal("NaN"), "NaN"),
        (decimal.Decimal("-Infinity"), "-Infinity"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC), "2024-05-01T12:30:00+00:00"),
        (dt.date(2024, 5, 1), "2024-05-01"),
        (dt.timedelta(days=1, seconds=3661, microseconds=500000), "P1DT1H1M1.5S"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (b"\xde\xad", "\\xdead"),
        ([decimal.Decimal("1.5"), None, dt.date(2024, 1, 2)], ["1.5", None, "2024-01-02"]),
        ({"a": decimal.Decimal("2")}, {"a": "2"}),
    ],
)
def test_json_safe_values(value: object, expected: object) -> None:
    assert json_safe(value) == expected
    json.dumps(json_safe(value), allow_nan=False)


def test_iso_durations_keep_months_exact() -> None:
    assert iso_duration(14, 3, 4 * 3600_000_000 + 5 * 60_000_000 + 6_000_000) == "P1Y2M3DT4H5M6S"
    assert iso_duration(0, 0, 0) == "PT0S"
    assert iso_duration(-1, 0, -500_000) == "P-1MT-0.5S"


def test_cap_counts_utf8_bytes_and_names_the_full_size() -> None:
    s = "é" * 5000  # 10,000 bytes
    out = cap_text(s, 64)
    assert out.startswith("é" * 32) and out.endswith(CAP_MARKER.format(size=10000))
    assert cap_text("short", 64) == "short"
    # never split a character
    assert cap_text("aé" * 100, 8).startswith("aéaéa")


async def test_postgres_types_become_json_safe(pg) -> None:
    r = await pg.run(
        "SELECT 1.5::numeric AS n, 12345678901234567890.5::numeric AS big, 'NaN'::float8 AS nan, "
        "interval '1 year 2 months 3 days 04:05:06.5' AS iv, '2024-05-01 12:30+02'::timestamptz AS tz, "
        "'2024-05-01'::date AS d, '12:30'::time AS t, '00000000-0000-0000-0000-000000000001'::uuid AS u, "
        "'\\xdead'::bytea AS b, ARRAY[1.5, 2]::numeric[] AS arr, "
        "'{\"a\": [1, 2]}'::jsonb AS j, '10.0.0.1'::inet AS ip, B'101' AS bits, "
        "ARRAY[interval '1 month'] AS ivs"
    )
    row = dict(zip([c.name for c in r.columns], r.rows[0], strict=True))
    assert row == {
        "n": "1.5",
        "big": "12345678901234567890.5",
        "nan": "NaN",
        "iv": "P1Y2M3DT4H5M6.5S",
        "tz": "2024-05-01 10:30:00+00",
        "d": "2024-05-01",
        "t": "12:30:00",
        "u": "00000000-0000-0000-0000-000000000001",
        "b": "\\xdead",
        "arr": ["1.5", "2"],
        "j": {"a": [1, 2]},
        "ip": "10.0.0.1",
        "bits": "101",
        "ivs": ["P1M"],
    }
    assert [c.type for c in r.columns][:4] == ["numeric", "numeric", "float8", "interval"]
    json.dumps(r.model_dump(), allow_nan=False)


async def test_postgres_records_and_ranges_bypass_the_text_codecs(pg) -> None:
    # asyncpg cannot nest text-decoded values in records or ranges; such results use binary decoding
    # (where asyncpg folds an interval's months into 30-day steps).
    r = await pg.run("SELECT ROW(1.5::numeric, '2024-05-01 12:30'::timestamp, interval '1 month') AS rec")
    assert r.rows == [[["1.5", "2024-05-01T12:30:00", "P30D"]]]
    for _ in range(3):  # the connection that served the ranges is replaced; the others are unaffected
        r = await pg.run(
            "SELECT numrange(1.5, 2.5) AS nr, tstzrange('2024-01-01', '2024-02-01') AS tr, "
            "'[1,5)'::int4range AS ir, 'empty'::int4range AS e, 2.5::numeric AS n"
        )
        nr, tr, ir, e, n = r.rows[0]
        assert nr == {"lower": "1.5", "upper": "2.5", "bounds": "[)"} and n == "2.5"
        assert tr["lower"].startswith("2024-01-01T") and ir == {"lower": 1, "upper": 5, "bounds": "[)"}
        assert e == "empty"
        again = await pg.run("SELECT 2.5::numeric AS n, '2024-05-01'::date AS d, interval '1 year' AS iv")
        assert again.rows == [["2.5", "2024-05-01", "P1Y"]]


async def test_duckdb_types_become_json_safe(duck) -> None:
    r = await duck.run(
        "SELECT 1.5::DECIMAL(10,2) AS n, 'nan'::DOUBLE AS nan, INTERVAL 3 DAY AS iv, "
        "TIMESTAMPTZ '2024-05-01 12:30:00+00' AS tz, DATE '2024-05-01' AS d, "
        "'00000000-0000-0000-0000-000000000001'::UUID AS u, '\\xDE\\xAD'::BLOB AS b, [1.5, 2.5] AS arr, "
        "{'a': 1, 'b': [DATE '2024-01-02']} AS st, MAP {'k': 1} AS m, "
        "170141183460469231731687303715884105727::HUGEINT AS h"
    )
    row = dict(zip([c.name for c in r.columns], r.rows[0], strict=True))
    assert row["n"] == "1.50" and row["nan"] == "NaN" and row["iv"] == "P3D"
    assert row["tz"].startswith("2024-05-01T") and row["d"] == "2024-05-01"
    assert row["u"] == "00000000-0000-0000-0000-000000000001" and row["b"] == "\\xdead"
    assert row["arr"] == ["1.5", "2.5"] and row["st"] == {"a": 1, "b": ["2024-01-02"]}
    assert row["m"] == {"k": 1} and row["h"] == 170141183460469231731687303715884105727
    json.dumps(r.model_dump(), allow_nan=False)


async def test_postgres_json_arrays_are_parsed_like_json_columns(pg) -> None:
    # asyncpg hands each element of a json[] / jsonb[] over as text: parsed like a json column's value
    r = await pg.run(
        "SELECT '{\"a\": 1}'::jsonb AS j, ARRAY['{\"a\": 1}'::jsonb, NULL] AS js, ARRAY['[1]'::json] AS jj, "
        "ARRAY[ARRAY['1'::jsonb, '\"s\"'::jsonb]] AS nested, "
        "(SELECT array_agg(to_jsonb(x) ORDER BY x) FROM (VALUES (1), (2)) t(x)) AS agg, NULL::jsonb[] AS none"
    )
    assert r.rows == [[{"a": 1}, [{"a": 1}, None], [[1]], [[1, "s"]], [1, 2], None]]
    assert [c.type for c in r.columns][1:3] == ["jsonb[]", "json[]"]


async def test_duckdb_json_lists_are_parsed_like_json_columns(duck) -> None:
    r = await duck.run(
        "SELECT '{\"a\": 1}'::JSON AS j, ['{\"a\": 1}'::JSON, NULL] AS js, "
        "[['1'::JSON, '\"s\"'::JSON]] AS nested, NULL::JSON[] AS none, [to_json(repeat('x', 20000))] AS big"
    )
    j, js, nested, none, big = r.rows[0]
    assert (j, js, nested, none) == ({"a": 1}, [{"a": 1}, None], [[1, "s"]], None)
    # too big for one cell: its JSON text, capped with the marker, like any other list
    assert isinstance(big, str) and big.startswith('["') and "…[truncated: " in big
    assert len(big.encode()) < duck.settings.database.max_cell_bytes + 64


async def test_duckdb_json_inside_structs_lists_and_maps_is_parsed(duck) -> None:
    r = await duck.run(
        "SELECT {'a': 1, 'j': '{\"x\": 1}'::JSON, 't': '{\"not\": \"parsed\"}'} AS s, "
        "[{'j': '[1, 2]'::JSON}, NULL] AS l, map(['k'], ['{\"y\": 2}'::JSON]) AS m, "
        "{'json': '[3]'} AS named, {'inner': {'j': 'null'::JSON}} AS deep, NULL::STRUCT(j JSON) AS none, "
        "{'big': to_json(repeat('x', 20000))} AS big"
    )
    s, lst, m, named, deep, none, big = r.rows[0]
    assert s == {"a": 1, "j": {"x": 1}, "t": '{"not": "parsed"}'}  # a VARCHAR field stays text
    assert lst == [{"j": [1, 2]}, None]
    assert m == {"k": {"y": 2}}
    assert named == {"json": "[3]"}  # a field called json is not a JSON value
    assert deep == {"inner": {"j": None}} and none is None
    # too big for one cell: its JSON text, capped with the marker, like any other struct
    assert isinstance(big, str) and big.startswith('{"big":') and "…[truncated: " in big
    json.dumps(r.model_dump(), allow_nan=False)


async def test_large_cells_are_capped_with_a_marker(executor) -> None:
    cap = executor.settings.database.max_cell_bytes
    r = await executor.run("SELECT repeat('x', 100000) AS big, 'small' AS s")
    big, small = r.rows[0]
    assert small == "small"
    assert big.startswith("x" * cap) and big.endswith(CAP_MARKER.format(size=100000))
    assert len(big.encode()) < cap + 64


# -- a large result is converted chunk by chunk, the driver's rows released as it goes ----------------

# Every kind of column the conversion handles, NULL in some rows, a long text every 1,000th row (capped),
# over more rows than one chunk: the rows at the chunk edges must be what a one-row query gives.
N_BIG = 2 * CHUNK_ROWS + 3
BIG_SQL = {
    "duckdb": (
        "SELECT i, (i * 1.25)::DECIMAL(12,2) AS n, i / 3 AS f, TIMESTAMP '2024-01-01' + to_seconds(i) AS ts, "
        "TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i) AS tz, "
        "DATE '2024-01-01' + (i % 400)::INT AS d, "
        "CASE WHEN i % 7 = 0 THEN NULL ELSE to_days((i % 30)::INT) END AS iv, "
        "CASE WHEN i % 1000 = 5 THEN repeat('x', 20000) ELSE 'r' || i END AS t, "
        "CAST(CASE WHEN i % 5 = 0 THEN NULL WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END "
        "AS ENUM('even', 'odd')) AS e, "
        "[i, i + 1] AS arr, {{'k': i, 'v': 'w' || i}} AS st, '\\xDE\\xAD'::BLOB AS b, "
        "CASE WHEN i % 3 = 0 THEN NULL ELSE i % 2 = 0 END AS flag "
        "FROM range({n}) r(i) {where} ORDER BY i"
    ),
    "postgres": (
        "SELECT i, (i * 1.25)::numeric(12,2) AS n, i / 3.0::float8 AS f, "
        "timestamp '2024-01-01' + i * interval '1 second' AS ts, "
        "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' AS tz, "
        "date '2024-01-01' + (i % 400) AS d, "
        "CASE WHEN i % 7 = 0 THEN NULL ELSE (i % 30) * interval '1 day' END AS iv, "
        "CASE WHEN i % 1000 = 5 THEN repeat('x', 20000) ELSE 'r' || i END AS t, "
        "ARRAY[i, i + 1] AS arr, ROW(i, 'w' || i) AS st, '\\xdead'::bytea AS b, "
        "CASE WHEN i % 3 = 0 THEN NULL ELSE i % 2 = 0 END AS flag, "
        "jsonb_build_object('k', i) AS j "
        "FROM generate_series(0, {last}) AS i {where} ORDER BY i"
    ),
}


@pytest.fixture(params=["duckdb", "postgres"])
async def big_executor(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Each executor with code_mode.max_rows raised above two chunks."""
    make = request.getfixturevalue("duck_settings" if request.param == "duckdb" else "reader_settings")
    async with open_executor(make({"code_mode": {"max_rows": 3 * CHUNK_ROWS}})) as ex:
        yield ex


async def test_a_large_result_converted_in_chunks_equals_row_by_row(big_executor: Any) -> None:
    executor = big_executor
    sql = BIG_SQL[executor.dialect]
    big = await executor.run(sql.format(n=N_BIG, last=N_BIG - 1, where=""), max_rows=N_BIG)
    assert big.row_count == N_BIG and not big.truncated and len(big.rows) == N_BIG
    assert [r[0] for r in big.rows] == list(range(N_BIG))  # every row, in order, once
    edges = [0, 5, CHUNK_ROWS - 1, CHUNK_ROWS, CHUNK_ROWS + 1, 2 * CHUNK_ROWS - 1, 2 * CHUNK_ROWS, N_BIG - 1]
    for i in edges:
        one = await executor.run(sql.format(n=N_BIG, last=N_BIG - 1, where=f"WHERE i = {i}"))
        assert one.rows == [big.rows[i]], i
    capped = big.rows[5][7]
    assert capped.endswith(CAP_MARKER.format(size=20000)) and big.rows[6][7] == "r6"
    json.dumps(big.model_dump(), allow_nan=False)
    # One row's every value, exactly: the same conversion as a small result.
    row = dict(zip([c.name for c in big.columns], big.rows[CHUNK_ROWS + 1], strict=True))
    i = CHUNK_ROWS + 1  # 4097: odd, not a multiple of 3, 5 or 7
    assert row["n"] == f"{i * 1.25:.2f}" and row["iv"] == f"P{i % 30}D" and row["t"] == f"r{i}"
    assert row["ts"].startswith("2024-01-01") and row["flag"] is False and row["arr"] == [i, i + 1]
    if executor.dialect == "duckdb":
        assert row["e"] == "odd" and big.rows[10][8] is None and big.rows[2][8] == "even"
        assert row["st"] == {"k": i, "v": f"w{i}"} and row["b"] == "\\xdead"
    else:
        assert row["st"] == [i, f"w{i}"] and row["b"] == "\\xdead" and row["j"] == {"k": i}


async def test_a_truncated_large_result_keeps_the_first_rows(big_executor: Any) -> None:
    executor = big_executor
    sql = BIG_SQL[executor.dialect].format(n=N_BIG, last=N_BIG - 1, where="")
    r = await executor.run(sql, max_rows=CHUNK_ROWS + 2)
    assert r.truncated and r.row_count == CHUNK_ROWS + 2
    assert [x[0] for x in r.rows] == list(range(CHUNK_ROWS + 2))


def test_value_columns_of_plain_values_pass_and_text_is_still_capped() -> None:
    # A column of a type the engine does not name (an enum, a domain) whose values are plain: as is,
    # with the cell cap; mixed values go through the per-value conversion.
    deep = common_converters(64)["deep"]
    plan = ColumnPlan([deep, deep, deep, deep], 64)
    long = "é" * 100
    rows = convert_rows(
        [(1, "a", None, 1.5), (None, long, True, {"k": (1, 2)}), (3, None, False, float("nan"))], plan
    )
    assert rows[0] == [1, "a", None, 1.5] and rows[2][:3] == [3, None, False] and rows[2][3] == "NaN"
    assert rows[1][0] is None and rows[1][1] == cap_text(long, 64) and rows[1][1].endswith("200 bytes]")
    assert rows[1][2] is True and rows[1][3] == {"k": [1, 2]}
    many = [(i,) for i in range(CHUNK_ROWS * 2 + 1)]
    out = convert_consuming(many, ColumnPlan([deep], 64))
    assert many == [] and out == [[i] for i in range(CHUNK_ROWS * 2 + 1)]


# A few values of each kind a plan names, NULL among them: long text (past a 64-byte cap), floats
# that JSON cannot hold, decimals Python would print in exponent form, zoned and naive timestamps.
_UTC2 = dt.timezone(dt.timedelta(hours=2))
_KIND_VALUES: dict[str, list[Any]] = {
    "int": [1, -(2**70), None, 0],
    "bool": [True, None, False],
    "text": ["a", "é" * 40, None, "", "x" * 17],
    "float": [1.5, float("nan"), None, float("-inf"), -0.0],
    "decimal": [decimal.Decimal("43.68"), decimal.Decimal("0.0000001"), None, decimal.Decimal("-1E+3")],
    "datetime": [dt.datetime(2024, 11, 1, 0, 57, 48), None, dt.datetime(1, 1, 1, 0, 0, 0, 5, tzinfo=_UTC2)],
    "date": [dt.date(2024, 5, 1), None],
    "time": [dt.time(10, 30, 0, 250), None, dt.time(0, 0, tzinfo=dt.UTC)],
    "timedelta": [dt.timedelta(days=-1, microseconds=3), None],
    "str": [uuid.UUID(int=7), None],
    "bytes": [b"\xde\xad" * 40, None, b""],
    "json": ['{"k": [1, 2.5]}', None, "not json", '"' + "y" * 80 + '"'],
}


@pytest.mark.parametrize(
    "kinds",
    [
        ["int", "int", "text", "decimal", "datetime"],  # the benchmark's orders columns
        ["decimal"],
        ["text", "float"],
        list(_KIND_VALUES),
        list(_KIND_VALUES)[::-1] * 3,
        ["int", "bool", "text"] * 30 + ["date"],  # wider than the generated converter goes
    ],
    ids=["orders", "one_column", "text_float", "every_kind", "every_kind_x3_reversed", "wide"],
)
def test_conversion_a_row_at_a_time_gives_the_same_bytes_as_column_wise(kinds: list[str]) -> None:
    common = common_converters(64)
    plan = ColumnPlan([common[k] for k in kinds], 64)
    column_wise = ColumnPlan([common[k] for k in kinds], 64)
    column_wise.rowwise = None
    assert (plan.rowwise is None) == (len(kinds) > 64)
    records = [
        tuple(_KIND_VALUES[k][(r + i) % len(_KIND_VALUES[k])] for i, k in enumerate(kinds)) for r in range(40)
    ]
    got = convert_rows(records, plan)
    assert json.dumps(got, allow_nan=False) == json.dumps(convert_rows(records, column_wise), allow_nan=False)
    # Each cell is what json_safe makes of the value alone, within the cell cap (json text is parsed).
    parse_json: Any = common["json"]
    for record, row in zip(records, got, strict=True):
        for k, v, cell in zip(kinds, record, row, strict=True):
            assert cell == (json_safe(v, 64) if k != "json" or v is None else parse_json(v))
