"""Issue 11, item 4: refusals reveal nothing hidden.

Messages, hints ("did you mean"), explanations and normalized code never name a blocked
table or column that the query itself did not name, also when the blocked source sits
behind a CTE or subquery star. Checked on the analyzer for both dialects, and end to end
through the service (engine confirmation included) on DuckDB and on Postgres connected as
the superuser.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sqlmode.analyze import Analyzer
from sqlmode.config import Settings
from sqlmode.service import CodeModeService
from tests.analyze.conftest import make_settings, sample_snapshot

DIALECTS = ("duckdb", "postgres")
ANALYZERS = {d: Analyzer(make_settings(d)) for d in DIALECTS}
SNAPSHOTS = {d: sample_snapshot(d) for d in DIALECTS}
# Names only the blocked items carry (customers.ssn; the credentials and audit_log tables).
HIDDEN = ("ssn", "credentials", "audit_log", "secret", "actor", "detail")

QUERIES = [
    "WITH c AS (SELECT * FROM customers) SELECT ssm FROM c",
    "SELECT ssm FROM (SELECT * FROM customers) c",
    "SELECT x.sn FROM (SELECT * FROM customers) x",
    "WITH cr AS (SELECT * FROM customers) SELECT cr.sssn FROM cr",
    "WITH a AS (SELECT * FROM customers), b AS (SELECT * FROM a) SELECT sn FROM b",
    "SELECT ssn_x FROM customers c JOIN (SELECT * FROM customers) d ON c.id = d.id",
    "SELECT sn FROM customers",
    "SELECT customers.sn FROM customers",
    "SELECT * FROM customers",
    "WITH t AS (SELECT * FROM customers) SELECT * FROM t",
    "SELECT c FROM customers c",
    "SELECT * FROM customers NATURAL JOIN orders",
    "SELECT * FROM (SELECT * FROM customers) a JOIN orders o USING (id)",
    "SELECT credential FROM orders",
    "SELECT * FROM credential",
    "SELECT * FROM audit_lo",
    "SELECT secre FROM (SELECT * FROM orders) o",
    "SELECT name FROM customers WHERE sssn LIKE '9%'",
]
DUCKDB_ONLY = [
    "SELECT #4 FROM customers",
    "SELECT to_json(c) FROM customers c",
    "SELECT COLUMNS('s.*') FROM customers",
    "SELECT * EXCLUDE (name) FROM customers",
    "PIVOT customers ON region USING count(*)",
]
POSTGRES_ONLY = ["SELECT row_to_json(c) FROM customers c", "SELECT to_jsonb(c) - 'name' FROM customers c"]


def _cases(dialect: str) -> list[str]:
    return QUERIES + (DUCKDB_ONLY if dialect == "duckdb" else POSTGRES_ONLY)


def _revealed(sql: str, text: str) -> list[str]:
    return [h for h in HIDDEN if h in text.lower() and h not in sql.lower()]


@pytest.mark.parametrize(("dialect", "sql"), [(d, q) for d in DIALECTS for q in _cases(d)])
def test_analyzer_refusal_names_nothing_hidden(dialect: str, sql: str) -> None:
    analysis = ANALYZERS[dialect].analyze(sql, SNAPSHOTS[dialect])
    assert analysis.violations, sql
    text = " ".join(
        [v.message + " " + (v.hint or "") for v in analysis.violations]
        + [analysis.explanation or "", analysis.normalized_code or ""]
    )
    assert _revealed(sql, text) == [], text


def test_suggestions_still_come_from_the_visible_schema() -> None:
    analysis = ANALYZERS["duckdb"].analyze(
        "WITH c AS (SELECT * FROM customers) SELECT regon FROM c", SNAPSHOTS["duckdb"]
    )
    hints = [v.hint or "" for v in analysis.violations if v.code == "UNKNOWN_COLUMN"]
    assert hints and "region" in hints[0]


@pytest.mark.parametrize("sql", _cases("duckdb"))
async def test_duckdb_service_refusal_names_nothing_hidden(sql: str, sample_settings: Settings) -> None:
    async with CodeModeService(sample_settings) as svc:
        result = await svc.validate(sql)
    assert not result.is_valid
    assert _revealed(sql, result.model_dump_json()) == []


@pytest.mark.postgres
@pytest.mark.parametrize("sql", _cases("postgres"))
async def test_postgres_superuser_service_refusal_names_nothing_hidden(
    sql: str, pg_sample_url: str, pg_settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = pg_settings_factory(pg_sample_url, {"audit": {"path": str(tmp_path / "audit.jsonl")}})
    async with CodeModeService(settings) as svc:
        result = await svc.validate(sql)
    assert not result.is_valid
    assert _revealed(sql, result.model_dump_json()) == []
