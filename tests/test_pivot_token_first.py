"""Executing a DuckDB PIVOT without IN list: the token is checked before its values are listed.

Executing the code as submitted lists the PIVOT's values again, by a distinct-values query that
runs on the database. That query must run only for an unspent token minted for this very code:
a missing, malformed, forged, foreign, other-session, other-code or already used token is refused
with its token error and nothing runs. What ran is read from DuckDB's own query log (``QueryLog``,
enabled on the database instance the service's executor joins in this process), not from a spy.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.engines._duckdb_exec import duckdb_config
from sqlmode.errors import SqlmodeError
from sqlmode.service import CodeModeService
from tests.test_pivot_values import direct, key

SQL = (
    "PIVOT (SELECT customer_id, status, total FROM orders WHERE customer_id <= 40) "
    "ON status USING sum(total) GROUP BY customer_id"
)
OTHER = "SELECT region, count(*) AS n FROM customers GROUP BY region"
MARK = "pivot_value"  # the alias of the distinct-values query (analyze/pivot.py)


@contextmanager
def query_log(settings: Settings) -> Iterator[Callable[[], list[str]]]:
    """Every statement DuckDB runs on this database instance from now on, as DuckDB logged it.

    Opened before the service, with the executor's own configuration, so the executor joins this
    instance (DuckDB shares one per file and configuration in a process) and its queries are logged.
    """
    read_only = not settings.code_mode.allow_writes
    con = duckdb.connect(settings.database.duckdb_path, read_only=read_only, config=duckdb_config(settings))
    con.execute("CALL enable_logging('QueryLog')")

    def logged() -> list[str]:
        rows = con.execute("SELECT message FROM duckdb_logs WHERE type = 'QueryLog'").fetchall()
        return [str(m) for (m,) in rows if "duckdb_logs" not in str(m)]

    try:
        yield logged
    finally:
        con.close()


def audit(settings: Settings) -> list[dict[str, Any]]:
    path = settings.resolve_path(settings.audit.path)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _forged(token: str) -> str:
    head, sig = token.rsplit(".", 1)
    return f"{head}.{('A' if sig[0] != 'A' else 'B')}{sig[1:]}"


async def _token(svc: CodeModeService, kind: str) -> tuple[str, str]:
    """A token that must not let SQL run in session s1; and the error code it gets."""
    mine = await svc.validate(SQL, session="s1")  # the requester did validate this code
    assert mine.is_valid and mine.approval_token
    if kind == "absent":
        return "", "TOKEN_MALFORMED"
    if kind == "malformed":
        return "sqlmode.k1.not-a-token", "TOKEN_MALFORMED"
    if kind == "forged":
        return _forged(mine.approval_token), "TOKEN_BAD_SIGNATURE"
    if kind == "other code":
        other = await svc.validate(OTHER, session="s1")
        return other.approval_token or "", "TOKEN_CODE_MISMATCH"
    if kind == "the listed code's":  # minted for the rewritten PIVOT, never for the unlisted one
        listed = await svc.validate(mine.normalized_code, session="s1")
        assert listed.code_hash == mine.code_hash
        return listed.approval_token or "", "TOKEN_CODE_MISMATCH"
    if kind == "other session":
        theirs = await svc.validate(SQL, session="s2")
        return theirs.approval_token or "", "TOKEN_SESSION_MISMATCH"
    if kind == "replayed":
        await svc.execute(SQL, mine.approval_token, session="s1")
        return mine.approval_token, "TOKEN_ALREADY_USED"
    raise AssertionError(kind)


KINDS = ["absent", "malformed", "forged", "other code", "the listed code's", "other session", "replayed"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_bad_token_runs_nothing_not_even_the_values_query(
    kind: str, sample_settings: Settings
) -> None:
    with query_log(sample_settings) as logged:
        async with CodeModeService(sample_settings) as svc:
            token, code = await _token(svc, kind)
            before = logged()
            with pytest.raises(SqlmodeError) as refused:
                await svc.execute(SQL, token, session="s1")
            ran = logged()[len(before) :]
    assert refused.value.code == code, refused.value.message
    assert ran == []  # DuckDB ran no statement at all for the refused call
    assert any(MARK in q for q in before)  # the log does see the values query (validate's)
    last = audit(sample_settings)[-1]
    assert (last["event"], last["decision"], last["error"]) == ("execute", "refused", code)


async def test_a_good_token_lists_the_values_again_and_returns_the_original_rows(
    sample_settings: Settings, sample_duckdb_path: Path
) -> None:
    columns, rows = direct(sample_duckdb_path, SQL)
    with query_log(sample_settings) as logged:
        async with CodeModeService(sample_settings) as svc:
            v = await svc.validate(SQL, session="s1")
            assert v.is_valid and v.approval_token
            before = logged()
            result = await svc.execute(SQL, v.approval_token, session="s1")
            ran = logged()[len(before) :]
    assert [c.name for c in result.columns] == columns and key(result.rows) == key(rows)
    assert result.code_hash == v.code_hash
    # The values were listed again (what validate listed is what runs), then the PIVOT itself ran.
    assert any(MARK in q for q in ran) and any(" IN (" in q and MARK not in q for q in ran)


async def test_the_listed_code_needs_no_listing_and_runs_with_the_same_token(
    sample_settings: Settings, sample_duckdb_path: Path
) -> None:
    _, rows = direct(sample_duckdb_path, SQL)
    with query_log(sample_settings) as logged:
        async with CodeModeService(sample_settings) as svc:
            v = await svc.validate(SQL, session="s1")
            before = logged()
            result = await svc.execute(v.normalized_code, v.approval_token or "", session="s1")
            ran = logged()[len(before) :]
    assert key(result.rows) == key(rows)
    assert not any(MARK in q for q in ran)


async def test_values_changed_since_validation_refuse_the_token_and_leave_it_unspent(
    make_settings: Callable[..., Settings], sample_duckdb_path: Path, tmp_path: Path
) -> None:
    db = tmp_path / "writable.duckdb"
    shutil.copy(sample_duckdb_path, db)
    ops = ["read", "write"]
    settings = make_settings(
        {
            "database": {
                "url": f"duckdb:///{db}",
                "tables": [{"name": t, "operations": ops} for t in ("customers", "orders")],
            },
            "code_mode": {"allow_writes": True, "cedar_policies": {"read_only_mode": False}},
        }
    )
    # No query log here: the writable instance is opened read-only for reflection first, then
    # read-write, and DuckDB will not share one instance between the two configurations.
    async with CodeModeService(settings) as svc:
        v = await svc.validate(SQL)
        assert v.is_valid and v.approval_token
        # A new status appears in the pivot's source: the listed columns would differ.
        first = "(SELECT min(id) FROM orders WHERE customer_id <= 40)"
        write = f"UPDATE orders SET status = 'zz_new' WHERE id = {first}"
        w = await svc.validate(write)
        assert w.is_valid, w.violations
        changed = await svc.execute(write, w.approval_token or "")
        assert getattr(changed, "affected_rows", None) == 1
        with pytest.raises(SqlmodeError) as refused:
            await svc.execute(SQL, v.approval_token)
        # The token is not spent: it still runs the code it approved (the old list of values).
        again = await svc.execute(v.normalized_code, v.approval_token)
        now = await svc.validate(SQL)
    assert refused.value.code == "TOKEN_CODE_MISMATCH"
    assert "no longer the ones listed at validation" in refused.value.message
    assert again.rows and "zz_new" not in [c.name for c in again.columns]
    assert "zz_new" in now.normalized_code  # what a new validation lists
