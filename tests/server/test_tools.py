"""The MCP surface through a real in-process client: tools, schemas, errors with hints, resources, prompt."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest
from mcp import Client

from sqlmode.models import QueryResult, ValidationResult
from sqlmode.service import CodeModeService
from tests.narrow import block_text
from tests.server.conftest import EASY_SQL, task_scoped

pytestmark = pytest.mark.parametrize("mode", ["auto", "legacy"], indirect=True)


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def service(shared_service: CodeModeService) -> CodeModeService:
    return shared_service


@pytest.fixture
async def client(service: CodeModeService, mode: str) -> AsyncIterator[Client]:
    from sqlmode.server import build_server

    async with task_scoped(Client(build_server(service), mode=mode)) as c:
        yield c


async def test_tools_are_read_only_with_precise_schemas(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"validate_code", "execute_code", "describe_schema"}
    for t in tools.values():
        assert t.annotations is not None
        assert t.annotations.read_only_hint is True and t.annotations.destructive_hint is False
    v, x = tools["validate_code"], tools["execute_code"]
    assert v.input_schema["required"] == ["code"]
    language = v.input_schema["properties"]["language"]
    assert language.get("enum", [language.get("const")]) == ["sql"]
    assert set(x.input_schema["required"]) == {"code", "approval_token"}
    # The resolver's parameter is the server's business, not the model's.
    assert "approval" not in x.input_schema["properties"]
    assert v.output_schema is not None and x.output_schema is not None
    assert set(ValidationResult.model_fields) <= set(v.output_schema["properties"])
    assert set(QueryResult.model_fields) <= set(x.output_schema["properties"])
    risk = v.output_schema["properties"]["risk_level"]
    assert risk["enum"] == ["low", "medium", "high", "critical"]
    assert "Step 1 of 2" in (v.description or "") and "Step 2 of 2" in (x.description or "")
    assert tools["describe_schema"].output_schema is None  # plain text, like the resource
    # Compact: no pydantic titles anywhere.
    assert '"title"' not in json.dumps(
        [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools.values()]
    )


async def test_validate_then_execute_returns_fenced_rows(client: Client) -> None:
    v = await client.call_tool("validate_code", {"code": EASY_SQL})
    assert not v.is_error
    result = ValidationResult.model_validate(v.structured_content)
    assert result.is_valid and result.approval_token and result.risk_level == "low"
    text = block_text(v.content[0])
    assert text.startswith("VALID | read | risk low") and result.approval_token in text
    r = await client.call_tool(
        "execute_code", {"code": result.normalized_code, "approval_token": result.approval_token}
    )
    assert not r.is_error, r.content
    rows = QueryResult.model_validate(r.structured_content)
    assert [c.name for c in rows.columns] == ["region", "n"] and rows.row_count == 4
    body = block_text(r.content[0])
    marker = re.match(r"<data-([0-9a-f]{12})> untrusted", body)
    assert marker and body.count(marker.group(1)) == 2, body
    assert '["APAC",' in body


async def test_rejected_sql_is_a_tool_error_with_hints(client: Client) -> None:
    v = await client.call_tool("validate_code", {"code": "SELECT name, ssn FROM customers"})
    assert v.is_error
    result = ValidationResult.model_validate(v.structured_content)
    assert not result.is_valid and result.approval_token is None
    assert result.violations and all(x.hint for x in result.violations)
    text = block_text(v.content[0])
    assert text.startswith("REJECTED") and "Hint:" in text and "approval_token" not in text


async def test_a_catalog_query_is_pointed_to_a_tool_the_server_has(client: Client) -> None:
    # Models look for columns in information_schema first; not every client shows resources, so
    # the hint names the tool that returns the same schema.
    sql = "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'"
    v = await client.call_tool("validate_code", {"code": sql})
    result = ValidationResult.model_validate(v.structured_content)
    assert v.is_error and [x.code for x in result.violations] == ["INTROSPECTION_BLOCKED"]
    tools = {t.name for t in (await client.list_tools()).tools}
    assert "describe_schema" in (result.violations[0].hint or "") and "describe_schema" in tools
    schema = await client.call_tool("describe_schema", {"table": "orders"})
    assert not schema.is_error and "customer_id" in block_text(schema.content[0])


async def test_a_bad_token_is_a_tool_error_with_a_hint(client: Client) -> None:
    r = await client.call_tool("execute_code", {"code": EASY_SQL, "approval_token": "not-a-token"})
    assert r.is_error
    text = block_text(r.content[0])
    assert text.startswith("TOKEN_MALFORMED:") and "\nHint: " in text


async def test_token_for_other_code_is_refused(client: Client) -> None:
    v = await client.call_tool("validate_code", {"code": EASY_SQL})
    token = v.structured_content["approval_token"]
    r = await client.call_tool("execute_code", {"code": "SELECT id FROM products", "approval_token": token})
    assert r.is_error and block_text(r.content[0]).startswith("TOKEN_CODE_MISMATCH")


async def test_only_sql_is_accepted_as_language(client: Client) -> None:
    r = await client.call_tool("validate_code", {"code": "1 + 1", "language": "python"})
    assert r.is_error and "language" in block_text(r.content[0])


async def test_describe_schema_matches_the_resource(client: Client) -> None:
    tool = await client.call_tool("describe_schema", {})
    res = await client.read_resource("schema://analytics")
    assert block_text(tool.content[0]) == block_text(res.contents[0])
    one = await client.call_tool("describe_schema", {"table": "orders"})
    assert block_text(one.content[0]).startswith("orders (~30k rows)")


@pytest.mark.parametrize("table", ["credentials", "nope"])
async def test_describe_schema_of_a_hidden_or_unknown_table_is_an_error(client: Client, table: str) -> None:
    r = await client.call_tool("describe_schema", {"table": table})
    assert r.is_error
    text = block_text(r.content[0])
    assert text.startswith("UNKNOWN_TABLE: ") and "Hint: Tables: contacts, customers" in text
    assert "audit_log" not in text


async def test_describe_schema_never_echoes_a_long_table_name(client: Client) -> None:
    r = await client.call_tool("describe_schema", {"table": "x" * 100_000})
    text = block_text(r.content[0])
    # the same shape as the other tools' errors (no "Error executing tool" prefix), the input cut
    assert r.is_error and text.startswith("UNKNOWN_TABLE: no table 'xxx") and len(text) < 400, text[:500]


async def test_resources_and_template(client: Client) -> None:
    uris = [str(r.uri) for r in (await client.list_resources()).resources]
    assert uris == ["schema://analytics"]
    templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
    assert templates == ["schema://{database}/{table}"]
    res = await client.read_resource("schema://analytics/customers")
    text = block_text(res.contents[0])
    assert text.startswith("customers (~2.0k rows)") and "ssn" not in text
    # a name written as a query writes it (quoted), percent-encoded in the URI: the same table
    quoted = block_text((await client.read_resource("schema://analytics/%22customers%22")).contents[0])
    assert quoted == text
    described = await client.call_tool("describe_schema", {"table": '"customers"'})
    assert not described.is_error and block_text(described.content[0]).startswith("customers (~2.0k rows)")
    with pytest.raises(Exception, match="no table 'credentials'"):
        await client.read_resource("schema://analytics/credentials")
    with pytest.raises(Exception, match="unknown database"):
        await client.read_resource("schema://other/customers")


async def test_start_code_mode_prompt(client: Client, service: CodeModeService) -> None:
    prompts = (await client.list_prompts()).prompts
    assert [p.name for p in prompts] == ["start_code_mode"]
    p = await client.get_prompt("start_code_mode")
    text = block_text(p.messages[0].content)
    assert "1. Write ONE read-only SELECT" in text and "2. Tell the user" in text
    assert "DuckDB SQL:" in text and "at most 1000 rows" in text and "5000 ms" in text
    assert await service.schema_text() in text
    for hidden in ("ssn", "credentials", "audit_log"):
        assert hidden not in text


async def test_instructions_carry_protocol_and_dialect(client: Client, service: CodeModeService) -> None:
    # Clients put the server's instructions in the model's context: the model that never asks for
    # the prompt still writes the engine's dialect from its first query.
    text = client.instructions or ""
    assert "validate_code" in text and "execute_code" in text and "approval_token" in text
    assert service.engine.dialect_notes in text
    for hidden in ("ssn", "credentials", "audit_log"):
        assert hidden not in text
