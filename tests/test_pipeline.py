"""The walking skeleton end to end through a real in-process MCP client on the sample DuckDB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from mcp import Client

from sqlmode.config import Settings
from sqlmode.engines import engine_for_url
from sqlmode.models import QueryResult
from sqlmode.sample import long_tail_sql
from sqlmode.server import build_server
from sqlmode.service import CodeModeService
from tests.narrow import block_text


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[tuple[CodeModeService, Client]]:
    # The MCP client's task group must open and close in one task, so no async fixture here.
    async with CodeModeService(settings) as svc, Client(build_server(svc)) as c:
        yield svc, c


async def validate(client: Client, code: str) -> tuple[bool, dict[str, Any]]:
    r = await client.call_tool("validate_code", {"code": code})
    assert r.structured_content is not None, r.content
    return bool(r.is_error), r.structured_content


async def test_validate_then_execute_returns_rows(sample_settings: Settings) -> None:
    async with connect(sample_settings) as (_svc, client):
        is_error, v = await validate(
            client, "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY n DESC"
        )
        assert not is_error and v["is_valid"] is True
        assert v["approval_token"] and v["expires_at"]
        assert "LIMIT" in v["normalized_code"].upper()
        r = await client.call_tool(
            "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
        )
        assert not r.is_error, r.content
        result = QueryResult.model_validate(r.structured_content)
        assert [c.name for c in result.columns] == ["region", "n"]
        assert result.row_count == len(result.rows) > 0
        assert sum(row[1] for row in result.rows) > 100
        assert result.code_hash == v["code_hash"]


async def test_long_tail_question_has_a_non_empty_answer(sample_settings: Settings) -> None:
    async with connect(sample_settings) as (_svc, client):
        is_error, v = await validate(
            client, long_tail_sql(engine_for_url(sample_settings.database.url).traits.name)
        )
        assert not is_error, v["violations"]
        r = await client.call_tool(
            "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
        )
        assert not r.is_error, r.content
        assert 0 < r.structured_content["row_count"] <= 20


async def test_blocked_column_is_rejected_with_a_violation_naming_it(sample_settings: Settings) -> None:
    async with connect(sample_settings) as (_svc, client):
        is_error, v = await validate(client, "SELECT name, ssn FROM customers")
        assert is_error and v["is_valid"] is False and v["approval_token"] is None
        assert any("customers.ssn" in x["message"] for x in v["violations"]), v["violations"]
        assert all(x["hint"] for x in v["violations"])


async def test_blocked_column_through_star_is_rejected(sample_settings: Settings) -> None:
    async with connect(sample_settings) as (_svc, client):
        is_error, v = await validate(client, "SELECT * FROM customers")
        assert is_error and [x["code"] for x in v["violations"]] == ["COLUMN_BLOCKED"]
        # The query never named the blocked column: the refusal does not either (issue 11).
        assert "`customers`" in v["violations"][0]["message"] and "ssn" not in str(v)


async def test_tampered_token_is_refused_and_nothing_runs(sample_settings: Settings) -> None:
    async with connect(sample_settings) as (_svc, client):
        _, v = await validate(client, "SELECT id, total FROM orders ORDER BY total DESC")
        token = v["approval_token"]
        prefix, kid, payload, sig = token.split(".")
        flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
        r = await client.call_tool(
            "execute_code",
            {"code": v["normalized_code"], "approval_token": f"{prefix}.{kid}.{payload}.{flipped}"},
        )
        assert r.is_error
        assert "TOKEN_BAD_SIGNATURE" in block_text(r.content[0])
        # the untampered token still works exactly once
        ok = await client.call_tool("execute_code", {"code": v["normalized_code"], "approval_token": token})
        assert not ok.is_error
        again = await client.call_tool(
            "execute_code", {"code": v["normalized_code"], "approval_token": token}
        )
        assert again.is_error and "TOKEN_ALREADY_USED" in block_text(again.content[0])


async def test_token_for_other_code_is_refused(sample_settings: Settings) -> None:
    async with connect(sample_settings) as (_svc, client):
        _, v = await validate(client, "SELECT id FROM orders WHERE total > 10")
        r = await client.call_tool(
            "execute_code", {"code": "SELECT id, total FROM orders", "approval_token": v["approval_token"]}
        )
        assert r.is_error and "TOKEN_CODE_MISMATCH" in block_text(r.content[0])


async def test_row_limit_truncates_and_flags(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings({"code_mode": {"max_rows": 7}})
    async with CodeModeService(settings) as svc:
        v = await svc.validate("SELECT id FROM orders")
        assert v.is_valid and v.normalized_code.endswith("LIMIT 8")
        r = await svc.execute(v.normalized_code, v.approval_token or "")
        assert r.row_count == 7 and r.truncated is True


async def test_schema_resource_hides_blocked_tables_and_columns(sample_settings: Settings) -> None:
    async with connect(sample_settings) as (_svc, client):
        res = await client.read_resource("schema://analytics")
        text = block_text(res.contents[0])
        assert "orders" in text and "customers" in text
        for hidden in ("ssn", "credentials", "audit_log"):
            assert hidden not in text


async def test_prompt_carries_protocol_and_schema(sample_settings: Settings) -> None:
    async with connect(sample_settings) as (_svc, client):
        p = await client.get_prompt("start_code_mode")
        text = block_text(p.messages[0].content)
        assert "validate_code" in text and "execute_code" in text and "support_tickets" in text
        assert "ssn" not in text


async def test_every_call_is_audited(sample_settings: Settings) -> None:
    async with connect(sample_settings) as (_svc, client):
        from sqlmode.audit import keys_from_config, verify_audit_log

        _, v = await validate(client, "SELECT count(*) FROM orders")
        await client.call_tool(
            "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
        )
        report = verify_audit_log(sample_settings.audit.path, keys_from_config(sample_settings.audit))
        assert report.ok and report.records >= 3
