"""A database's error names the column the query got wrong, as the database spells it.

The scrubbing of error text (sqlmode/execute/errtext.py) hides every quoted token the query did not
write. PostgreSQL qualifies the column of a GROUP BY mistake (``"orders.created_at"``) though the
query wrote ``created_at`` from ``orders``; hiding it left the model an error it could not act on.
A qualified name is kept when the query names each part; anything else stays hidden.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sqlmode.config import Settings
from sqlmode.execute.errtext import HIDDEN, scrub
from sqlmode.service import CodeModeService

from .conftest import PgWorld

GROUPING_MISTAKE = "SELECT upper(status) AS s, count(*) AS n FROM orders GROUP BY 1 ORDER BY lower(status)"


@pytest.fixture(params=["duckdb", "superuser", "reader"])
def settings(
    request: pytest.FixtureRequest,
    make_duck: Callable[..., Path],
    duck_settings: Callable[..., Settings],
    tmp_path: Path,
) -> Settings:
    if request.param == "duckdb":
        return duck_settings(make_duck())
    world: PgWorld = request.getfixturevalue("pg_world")  # resolved at setup, outside the test's loop
    url = world.admin_url if request.param == "superuser" else world.reader_url
    return world.settings(url, {"audit": {"path": str(tmp_path / "audit.jsonl")}})


@pytest.fixture
async def svc(settings: Settings) -> AsyncIterator[CodeModeService]:
    async with CodeModeService(settings) as service:
        yield service


async def test_a_grouping_mistake_names_the_column(svc: CodeModeService) -> None:
    v = await svc.validate(GROUPING_MISTAKE)
    assert not v.is_valid and v.approval_token is None
    text = " ".join(x.message for x in v.violations)
    assert "GROUP BY" in text, text
    assert '"orders.status"' in text or '"status"' in text, text  # PostgreSQL qualifies it


def test_a_qualified_name_shows_only_when_the_query_names_every_part() -> None:
    sql = "SELECT created_at FROM orders"
    assert scrub('column "orders.created_at" x', sql) == 'column "orders.created_at" x'
    for hidden in ('"customers.ssn"', '"orders.ssn"', '"public.orders.secret"', '"12.50"', '"orders."'):
        assert scrub(f"column {hidden} x", sql) == f'column "{HIDDEN}" x', hidden
