"""execute_code reuses validate_code's analysis and Cedar decision, and never reuses them across a change.

The caches are keyed by what the results are functions of (analyze/cache.py, policy/engine.py):
the code, the snapshot's content, the config, the principal and the policy set. A schema refresh or
a policy reload is a different key; the token still binds the exact code, user, session, schema
and policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import sqlmode.analyze as analyze_pkg
from sqlmode.analyze.cache import AnalysisCache
from sqlmode.config import Settings
from sqlmode.errors import SqlmodeError
from sqlmode.models import Analysis
from sqlmode.policy.engine import CedarEvaluator
from sqlmode.schema.snapshot import ColumnInfo, SchemaSnapshot, TableInfo
from sqlmode.service import CodeModeService
from tests.plugins.postgres import apply_sample_grants, create_database

SQL = "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region"


@pytest.fixture
def explanations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every plain-language explanation the analyzer builds (a spy around the real function)."""
    built: list[str] = []
    real = analyze_pkg.explain

    def spy(*args: Any, **kwargs: Any) -> str:
        text = real(*args, **kwargs)
        built.append(text)
        return text

    monkeypatch.setattr(analyze_pkg, "explain", spy)
    yield built


async def test_execute_reuses_the_analysis_and_decision_and_builds_no_explanation(
    sample_settings: Settings, explanations: list[str]
) -> None:
    async with CodeModeService(sample_settings) as svc:
        assert isinstance(svc.evaluator, CedarEvaluator)
        v = await svc.validate(SQL, user="ana", session="s1")
        assert v.is_valid and "customers" in v.explanation
        assert len(explanations) == 1
        hits, decisions = svc.analysis_cache.hits, svc.evaluator.decision_hits
        result = await svc.execute(v.normalized_code, v.approval_token or "", user="ana", session="s1")
        assert len(explanations) == 1  # execute built none
        assert svc.analysis_cache.hits == hits + 1
        assert svc.evaluator.decision_hits == decisions + 1
        assert result.code_hash == v.code_hash
        assert [c.name for c in result.columns] == ["region", "n"]
        assert result.row_count == len(result.rows) > 0 and sum(r[1] for r in result.rows) > 100


async def test_execute_without_a_cached_analysis_analyzes_without_explanation(
    sample_settings: Settings, explanations: list[str]
) -> None:
    async with CodeModeService(sample_settings) as svc:
        v = await svc.validate(SQL)
        svc.analysis_cache.clear()
        built = len(explanations)
        result = await svc.execute(v.normalized_code, v.approval_token or "")
        assert len(explanations) == built  # analyzed again, explained not
        assert result.row_count > 0 and result.code_hash == v.code_hash
        # An entry without explanation does not answer validate, which shows one.
        again = await svc.validate(v.normalized_code)
        assert again.explanation and len(explanations) == built + 1


async def test_the_token_still_binds_the_exact_code_user_and_session(sample_settings: Settings) -> None:
    async with CodeModeService(sample_settings) as svc:
        v = await svc.validate(SQL, user="ana", session="s1")
        token = v.approval_token or ""
        other = SQL.replace("ORDER BY region", "ORDER BY n")
        await svc.validate(other, user="ana", session="s1")  # cached too: still not this token's code
        wrong = ((other, "ana", "s1"), (v.normalized_code, "bob", "s1"), (v.normalized_code, "ana", "s2"))
        for code, user, session in wrong:
            with pytest.raises(SqlmodeError) as e:
                await svc.execute(code, token, user=user, session=session)
            assert e.value.code.startswith("TOKEN_"), e.value.code
        assert (await svc.execute(v.normalized_code, token, user="ana", session="s1")).row_count > 0


async def test_a_policy_reload_is_not_served_from_the_decision_cache(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    policy = tmp_path / "custom.cedar"
    policy.write_text("// nothing yet\n")
    settings = make_settings({"policy": {"paths": [str(policy)], "reload_check_seconds": 0}})
    async with CodeModeService(settings) as svc:
        first = await svc.validate(SQL, user="ana")
        assert first.is_valid
        policy.write_text(
            '@id("no-customers") @code("POLICY_DENIED") @reason("customers are off limits today")\n'
            'forbid (principal, action, resource) when { context.tables.contains("customers") };\n'
        )
        again = await svc.validate(SQL, user="ana")
        assert not again.is_valid and again.approval_token is None
        assert [x.message for x in again.violations] == ["customers are off limits today"]
        with pytest.raises(SqlmodeError) as e:  # the old token: minted under the old policies
            await svc.execute(first.normalized_code, first.approval_token or "", user="ana")
        assert e.value.code == "TOKEN_POLICY_CHANGED"
        # Another principal with the same analysis gets its own decision, not ana's.
        policy.write_text(
            '@id("not-bob") @reason("bob may not read customers")\n'
            'forbid (principal == User::"bob", action, resource) '
            'when { context.tables.contains("customers") };\n'
        )
        assert (await svc.validate(SQL, user="ana")).is_valid
        bob = await svc.validate(SQL, user="bob")
        assert not bob.is_valid and [x.message for x in bob.violations] == ["bob may not read customers"]


@pytest.mark.postgres
async def test_a_schema_refresh_is_not_served_from_the_analysis_cache(
    pg_admin_url: str, pg_settings: Callable[..., Settings]
) -> None:
    url = await create_database(pg_admin_url, "sqlmode_reuse")
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);"
            "INSERT INTO accounts VALUES (1, 'a'), (2, 'b');"
        )
        settings = pg_settings(
            url, {"database": {"tables": []}, "code_mode": {"blocked_tables": [], "blocked_fields": []}}
        )
        await apply_sample_grants(url, settings)
        async with CodeModeService(settings) as svc:
            v = await svc.validate("SELECT * FROM accounts")
            assert v.is_valid and v.columns == ["accounts.id", "accounts.name"]
            await admin.execute("ALTER TABLE accounts ADD COLUMN region text")
            await apply_sample_grants(url, settings)
            await svc.refresh_schema()
            again = await svc.validate("SELECT * FROM accounts")
            assert again.columns == ["accounts.id", "accounts.name", "accounts.region"]
            with pytest.raises(SqlmodeError) as e:
                await svc.execute(v.normalized_code, v.approval_token or "")
            assert e.value.code == "TOKEN_SCHEMA_CHANGED"
            rows = (await svc.execute(again.normalized_code, again.approval_token or "")).rows
            assert sorted(rows) == [[1, "a", None], [2, "b", None]]
    finally:
        await admin.close()


def _snapshot(columns: tuple[str, ...]) -> SchemaSnapshot:
    t = TableInfo("t", tuple(ColumnInfo(c, "INTEGER") for c in columns))
    return SchemaSnapshot.build("duckdb", "db", [t], blocked_fields=["t.secret"])


def test_a_hidden_change_changes_the_content_hash_not_the_schema_hash() -> None:
    # A blocked column appearing behind `SELECT *` is invisible to the token's schema hash; the
    # analysis must still not be reused (SELECT * would now read it).
    before, after = _snapshot(("a",)), _snapshot(("a", "secret"))
    assert before.schema_hash == after.schema_hash
    assert before.content_hash != after.content_hash
    assert _snapshot(("a",)).content_hash == before.content_hash


def test_the_cache_keys_on_code_snapshot_and_config_and_is_bounded() -> None:
    cache = AnalysisCache(size=2)
    a = Analysis(dialect="duckdb", code="SELECT 1", normalized_code="SELECT 1 LIMIT 10")
    cache.put("SELECT 1", "s1", "c1", a)
    got = cache.get("SELECT 1 LIMIT 10", "s1", "c1")  # filed under its normalized code too
    assert got is not None and got.normalized_code == "SELECT 1 LIMIT 10"
    for code, snap, config in (("SELECT 1", "s2", "c1"), ("SELECT 1", "s1", "c2"), ("SELECT 2", "s1", "c1")):
        assert cache.get(code, snap, config) is None
    got.violations.append(_violation())
    again = cache.get("SELECT 1", "s1", "c1")
    assert again is not None and again.ok  # a copy went out
    cache.put("SELECT 3", "s1", "c1", Analysis(dialect="duckdb", code="SELECT 3", normalized_code="SELECT 3"))
    assert len(cache) == 2
    refused = Analysis(dialect="duckdb", code="x", violations=[_violation()])
    cache.put("x", "s1", "c1", refused)
    assert cache.get("x", "s1", "c1") is None  # refusals are recomputed
    # Without explanation, an entry does not answer a call that wants one.
    bare = Analysis(dialect="duckdb", code="SELECT 4", normalized_code="SELECT 4")
    cache.put("SELECT 4", "s1", "c1", bare, explanation=False)
    assert cache.get("SELECT 4", "s1", "c1") is None
    assert cache.get("SELECT 4", "s1", "c1", explanation=False) is not None


def _violation() -> Any:
    from sqlmode.models import Violation

    return Violation(code="X", message="x")
