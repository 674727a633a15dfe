"""PostgreSQL partitioned and inherited tables: blocks on a parent cover its partitions.

A partition is a table of its own: it can be queried by its own name, and the planner scans it
when a query names the parent. Before, ``blocked_fields = ["events.secret"]`` left
``SELECT secret FROM events_2024`` free (the analyzer, the engine check and the grants all took
the partition for another table) and ``SELECT kind FROM events`` was refused, its plan's scan of
``events_2024`` taken for a table the analyzer did not see.

A database of its own, connected as the superuser (switching to the reader role) and as the
reader; the data returned and the reader's privileges in the database are checked, not only the
verdicts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sqlmode.config import Settings
from sqlmode.schema.snapshot import ColumnInfo, SchemaSnapshot, TableInfo
from sqlmode.service import CodeModeService
from tests.plugins.postgres import create_database, reader_of_its_own, service_as

SECRET = "s3cr3t-"

DDL = f"""
CREATE TABLE events (id int, at date, kind text, secret text) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')
    PARTITION BY LIST (kind);
CREATE TABLE events_2024_a PARTITION OF events_2024 FOR VALUES IN ('a');
CREATE TABLE events_2024_b PARTITION OF events_2024 FOR VALUES IN ('b');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO events SELECT i, DATE '2024-01-01' + i * 7, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END,
    '{SECRET}' || i FROM generate_series(1, 80) AS i;
CREATE TABLE vault (id int, note text) PARTITION BY LIST (id);
CREATE TABLE vault_1 PARTITION OF vault FOR VALUES IN (1);
INSERT INTO vault VALUES (1, '{SECRET}vault');
CREATE TABLE animals (id int, name text, secret text);
CREATE TABLE dogs (bark text) INHERITS (animals);
INSERT INTO dogs VALUES (1, 'rex', '{SECRET}dog', 'woof');
ANALYZE;
"""

OVERRIDES: dict[str, Any] = {
    "database": {"tables": [], "descriptions": None},
    "code_mode": {
        "blocked_tables": ["vault"],
        "blocked_fields": ["events.secret", "animals.secret"],
        "max_joins": 8,
    },
}

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
async def world(pg_admin_url: str, pg_settings_factory: Callable[..., Settings]) -> dict[str, str]:
    url = await create_database(pg_admin_url, "sqlmode_partitions")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(DDL)
    finally:
        await conn.close()
    return await reader_of_its_own(url, pg_settings_factory(url, OVERRIDES), "sqlmode_parts")


def _service(
    world: dict[str, str], login: str, factory: Callable[..., Settings], tmp: Path
) -> CodeModeService:
    service: CodeModeService = service_as(world, login, factory, OVERRIDES, tmp)
    return service


async def _direct(url: str, sql: str) -> list[list[Any]]:
    conn = await asyncpg.connect(url)
    try:
        return [list(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


LEGIT = [
    "SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY kind",
    "SELECT id, at FROM events WHERE at >= DATE '2025-01-01' ORDER BY id",
    "SELECT count(*) FROM events_2024_a",
    "SELECT e.kind, count(*) FROM events e JOIN events_2025 f ON f.id = e.id GROUP BY e.kind",
    "SELECT name FROM animals ORDER BY id",
]

ATTACKS = {
    # the blocked column, through each partition level and the inheritance child
    "SELECT secret FROM events_2024": "COLUMN_BLOCKED",
    "SELECT secret FROM events_2024_b": "COLUMN_BLOCKED",
    "SELECT * FROM events_2025": "COLUMN_BLOCKED",
    "SELECT max(secret) FROM events_2024_a": "COLUMN_BLOCKED",
    "SELECT secret FROM dogs": "COLUMN_BLOCKED",
    # the blocked table, through its partition
    "SELECT note FROM vault_1": "TABLE_BLOCKED",
    "SELECT count(*) FROM vault_1": "TABLE_BLOCKED",
}


@pytest.mark.parametrize("login", ["superuser", "reader"])
@pytest.mark.parametrize("sql", LEGIT)
async def test_queries_over_partitioned_tables_run_and_return_the_databases_rows(
    world: dict[str, str], login: str, sql: str, pg_settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    async with _service(world, login, pg_settings_factory, tmp_path) as svc:
        v = await svc.validate(sql)
        assert v.is_valid, [(x.code, x.message) for x in v.violations]
        result = await svc.execute(v.normalized_code, v.approval_token or "")
    expected = await _direct(world["superuser"], sql)
    assert [[str(x) for x in r] for r in result.rows] == [[str(x) for x in r] for r in expected]


@pytest.mark.parametrize("login", ["superuser", "reader"])
@pytest.mark.parametrize("sql", list(ATTACKS))
async def test_a_block_on_a_parent_covers_its_partitions_and_children(
    world: dict[str, str], login: str, sql: str, pg_settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    async with _service(world, login, pg_settings_factory, tmp_path) as svc:
        v = await svc.validate(sql)
        assert not v.is_valid and v.approval_token is None, sql
        assert ATTACKS[sql] in {x.code for x in v.violations}, v.violations
        assert SECRET not in v.model_dump_json()
        # No token: execute runs nothing, whatever it is handed.
        with pytest.raises(Exception):  # noqa: B017 - any refusal; the rows are what matters
            await svc.execute(sql, "forged")


async def test_the_reader_role_cannot_read_a_blocked_column_through_a_partition(
    world: dict[str, str],
) -> None:
    """The grants follow the blocks: the database itself refuses the partition's blocked column."""
    for sql in ("SELECT secret FROM events_2024_a", "SELECT note FROM vault_1", "SELECT secret FROM dogs"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _direct(world["reader"], sql)
    expected = await _direct(world["superuser"], "SELECT count(kind) FROM events_2024_a")
    assert await _direct(world["reader"], "SELECT count(kind) FROM events_2024_a") == expected


def test_blocks_propagate_down_every_level_of_a_hierarchy() -> None:
    cols = (ColumnInfo("id", "INTEGER"), ColumnInfo("secret", "TEXT"))
    tables = [
        TableInfo("events", cols, "public"),
        TableInfo("events_2024", cols, "public", parents=(("public", "events"),)),
        TableInfo("events_2024_a", cols, "public", parents=(("public", "events_2024"),)),
        TableInfo("vault", cols, "public"),
        TableInfo("vault_1", cols, "public", parents=(("public", "vault"),)),
        TableInfo("other", cols, "public"),
        # a parent outside the reflected schemas names nothing
        TableInfo("stray", cols, "public", parents=(("elsewhere", "events"),)),
    ]
    snap = SchemaSnapshot.build(
        "postgres", "db", tables, blocked_tables=["vault"], blocked_fields=["events.secret"]
    )
    assert snap.ancestors["events_2024_a"] == ("events_2024", "events")
    assert snap.is_column_blocked("events_2024_a", "secret") and snap.is_column_blocked(
        "events_2024", "secret"
    )
    assert not snap.is_column_blocked("events_2024_a", "id")
    assert snap.is_table_blocked("vault_1")
    assert not snap.is_column_blocked("other", "secret") and not snap.is_column_blocked("stray", "secret")
    assert "stray" not in snap.ancestors


async def test_the_schema_resource_folds_partitions_into_their_parent(
    world: dict[str, str], pg_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A table partitioned by day would otherwise show its columns once a day: one header names them."""
    async with _service(world, "reader", pg_settings, tmp_path) as svc:
        text = await svc.schema_text()
    blocks = {b.split("\n", 1)[0].split(" ", 1)[0]: b for b in text.split("\n\n")[1:]}
    # every level of events folds into events; the blocked column is nowhere
    assert "events_2024" not in blocks and "events_2024_a" not in blocks and "events_2025" not in blocks
    head = blocks["events"].split("\n", 1)[0]
    parts = "events_2024, events_2024_a, events_2024_b, events_2025"
    assert f"reads its partitions, same columns: {parts}" in head
    assert "secret" not in blocks["events"] and "secret" not in text
    # an INHERITS child with a column of its own stays a table of its own
    assert "dogs" in blocks and "bark" in blocks["dogs"] and "partitions" not in blocks["animals"]
    # the blocked table and its partition stay hidden
    assert "vault" not in text
    header = "# analytics (postgres): the 3 tables (and 4 partitions, named in their table's header)"
    assert text.startswith(header)
