"""Mechanism 1: what runs is exactly what was checked.

The normalized code is rendered from the analyzed tree; it must parse back (sqlglot) to that
tree and be one SELECT to the engine's own parser. A generator with sqlglot's pre-#7301 comment
bug is put back in place to show the analyzer alone would have passed text that reads another
table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlglot

import sqlmode.analyze
from sqlmode.analyze import Analyzer
from sqlmode.analyze.roundtrip import _same_tree, check_round_trip
from sqlmode.config import Settings
from sqlmode.engines import engine_named
from sqlmode.models import Action, Analysis
from sqlmode.schema import ColumnInfo, SchemaSnapshot, TableInfo
from sqlmode.service import CodeModeService
from tests.narrow import as_dialect

DIALECTS = ["duckdb", "postgres"]
# sqlglot PR #7301: a line comment holding "*/"; the tree is `SELECT id FROM orders`.
CRAFTED = "SELECT id -- aa */, secret FROM credentials --\nFROM orders"
# What a generator before #7301 made of that tree: the comment closes early, credentials is read.
PRE_7301_TEXT = "SELECT id /* aa */, secret FROM credentials -- */ FROM orders LIMIT 1000"


def _snapshot(dialect: str) -> SchemaSnapshot:
    def cols(*names: str) -> tuple[ColumnInfo, ...]:
        return tuple(ColumnInfo(n, "INTEGER") for n in names)

    schema = "public" if dialect == "postgres" else "main"
    return SchemaSnapshot.build(
        as_dialect(dialect),
        "world",
        [
            TableInfo("orders", cols("id", "customer_id", "total"), schema),
            TableInfo("credentials", cols("id", "user_id", "secret"), schema),
        ],
        blocked_tables=["credentials"],
    )


def _pre_7301_render(root: sqlglot.exp.Expr, dialect: str) -> str:
    """Rendering as sqlglot did before PR #7301: comments kept, the ``*/`` inside them not escaped.

    (Emulated on the output: the compiled generator cannot be monkeypatched.)
    """
    return root.sql(dialect=dialect, comments=True).replace("* /", "*/")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_crafted_comment_rendering_is_caught(dialect: str) -> None:
    tree = sqlglot.parse_one(CRAFTED, read=dialect)
    assert [t.name for t in tree.find_all(sqlglot.exp.Table)] == ["orders"]
    found = check_round_trip(PRE_7301_TEXT, tree, dialect)
    assert [v.code for v in found] == ["ROUND_TRIP_MISMATCH"]
    assert "credentials" in found[0].message


@pytest.mark.parametrize("dialect", DIALECTS)
def test_buggy_generator_cannot_smuggle_a_blocked_table(
    dialect: str, monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        {
            "database": {"url": "duckdb:///:memory:" if dialect == "duckdb" else "postgresql://x@h/db"},
            "code_mode": {"blocked_tables": ["credentials"]},
        }
    )
    analyzer, snapshot = Analyzer(settings), _snapshot(dialect)
    monkeypatch.setattr(sqlmode.analyze, "render", _pre_7301_render)

    # Without the round trip the analyzer approves text whose statement reads credentials...
    with monkeypatch.context() as m:
        m.setattr(sqlmode.analyze, "check_round_trip", lambda *a: [])
        fooled = analyzer.analyze(CRAFTED, snapshot)
    assert fooled.ok and fooled.tables == ["orders"]
    assert fooled.normalized_code.startswith(PRE_7301_TEXT.rsplit(" LIMIT", 1)[0])

    # ...with it, the rendering is refused with its own code and nothing is approved.
    a = analyzer.analyze(CRAFTED, snapshot)
    assert [v.code for v in a.violations] == ["ROUND_TRIP_MISMATCH"]
    assert a.normalized_code == ""


@pytest.mark.parametrize("dialect", DIALECTS)
def test_faithful_renderings_pass(dialect: str) -> None:
    """Renderings that differ node for node but mean the same (sqlglot's CAST for round) pass."""
    for sql in (
        CRAFTED,
        "SELECT round(avg(total), 2) AS a FROM orders",
        "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(x, y)",
        "SELECT $$it's; fine$$ AS note" if dialect == "postgres" else "SELECT 'it''s; fine' AS note",
    ):
        tree = sqlglot.parse_one(sql, read=dialect)
        text = tree.sql(dialect=dialect, comments=False)
        assert check_round_trip(text, tree, dialect) == [], sql


@pytest.mark.parametrize("dialect", DIALECTS)
def test_engine_parser_must_see_one_select(dialect: str) -> None:
    engine = engine_named(dialect)
    assert engine.native_calls("SELECT id FROM orders")[0] is None
    for text in ("SELECT 1; DROP TABLE orders", "DELETE FROM orders", "SELECT 1 FROM"):
        problem, _ = engine.native_calls(text)
        assert problem, text


@pytest.fixture(params=DIALECTS)
def world_settings(
    request: pytest.FixtureRequest, make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> Settings:
    if request.param == "duckdb":
        return duck_settings(make_duck())
    return request.getfixturevalue("pg_world").settings()  # resolved at setup, outside the loop


async def test_confirmer_refuses_text_the_engine_reads_as_two_statements(world_settings: Settings) -> None:
    """Defence in depth: even an analysis claiming one SELECT is re-read by the engine's parser."""
    async with CodeModeService(world_settings) as svc:
        assert svc.confirmer is not None
        analysis = Analysis(svc.engine.traits.name, "x", statement_type="SELECT", action=Action.READ)
        analysis.normalized_code = "SELECT id FROM orders; DROP TABLE orders"
        result = await svc.confirmer.confirm(analysis, await svc.schema())
        assert [v.code for v in result.violations] == ["ROUND_TRIP_MISMATCH"]
        result.apply(analysis)
        assert not analysis.ok and analysis.normalized_code == ""


async def test_token_covers_the_normalized_code_and_only_it_runs(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> None:
    async with CodeModeService(duck_settings(make_duck())) as svc:
        v = await svc.validate(CRAFTED)
        assert v.is_valid, v.violations
        assert v.normalized_code.startswith("SELECT id FROM orders LIMIT ")  # no comment survives
        ran: list[str] = []
        real_run = svc.executor.run

        async def recording_run(sql: str, **kw: object) -> object:
            ran.append(sql)
            return await real_run(sql, **kw)

        svc.executor.run = recording_run
        # The original text (comment and all) re-normalizes to the approved code: that is what runs.
        r = await svc.execute(CRAFTED, v.approval_token or "")
        assert ran == [v.normalized_code] and r.row_count == 1000 and r.code_hash == v.code_hash
        # The token is bound to that normalized code: other code cannot ride on it.
        v2 = await svc.validate("SELECT id FROM orders")
        with pytest.raises(Exception) as e:
            await svc.execute("SELECT id, total FROM orders", v2.approval_token or "")
        assert getattr(e.value, "code", "") == "TOKEN_CODE_MISMATCH"
        assert ran == [v.normalized_code]


# The exact-equality fast path of the round trip: any arg one side has and the other lacks, or
# holds differently, is a difference (a False falls back to sqlglot's own ==).
SAME_TREE_PAIRS = [
    ("SELECT a FROM t", "SELECT a FROM t WHERE b = 1"),  # the second has one arg more
    ("SELECT a FROM t WHERE b = 1", "SELECT a FROM t"),  # ...or one fewer
    ("SELECT a FROM t", "SELECT DISTINCT a FROM t"),
    ("SELECT a FROM t", "SELECT a FROM u"),
    ("SELECT a, b FROM t", "SELECT a FROM t"),
    ("SELECT 'x' FROM t", "SELECT 'y' FROM t"),
    ("SELECT a FROM t LIMIT 5", "SELECT a FROM t LIMIT 6"),
]


@pytest.mark.parametrize(("left", "right"), SAME_TREE_PAIRS)
def test_the_exact_comparison_sees_every_difference(left: str, right: str) -> None:
    a, b = sqlglot.parse_one(left, read="duckdb"), sqlglot.parse_one(right, read="duckdb")
    assert not _same_tree(a, b) and not _same_tree(b, a)
    assert _same_tree(a, sqlglot.parse_one(left, read="duckdb"))
