"""`sqlmode demo`: the whole protocol on the sample warehouse, through a real MCP client."""

from __future__ import annotations

import textwrap
from os import PathLike

import click
from mcp import Client

from .cli import format_table
from .config import load_config
from .models import QueryResult
from .sample import blocked_demo_sql, long_tail_sql
from .server import build_server
from .service import CodeModeService

QUESTION = (
    "Find the top 20 customers whose spend fell for three consecutive months, compare them to support "
    "ticket volume, and give me only the accounts that have not been contacted in the last 14 days."
)


def _title(text: str) -> None:
    click.secho(f"\n== {text} ==", bold=True)


async def run_demo(config_path: str | PathLike[str] | None = None) -> None:
    """Print the tour; raises SqlmodeError on any failure (the CLI turns it into exit code 2)."""
    settings = load_config(config_path)
    async with CodeModeService(settings) as service, Client(build_server(service)) as client:
        db = settings.server.name
        _title(f"1. The LLM reads the bounded schema (resource schema://{db})")
        res = await client.read_resource(f"schema://{db}")
        text = res.contents[0].text  # type: ignore[union-attr]
        click.echo(textwrap.indent(text.strip(), "  "))

        _title("2. The question")
        click.echo(textwrap.fill(QUESTION, 100, initial_indent="  ", subsequent_indent="  "))
        sql = long_tail_sql(settings.dialect)
        click.echo("\n  The LLM writes:\n" + textwrap.indent(sql.strip(), "    "))

        _title("3. validate_code")
        v = await client.call_tool("validate_code", {"code": sql})
        sc = v.structured_content or {}
        click.echo(
            f"  valid: {sc.get('is_valid')}   action: {sc.get('action')}   risk: {sc.get('risk_level')}"
        )
        click.echo(
            textwrap.fill(
                f"explanation: {sc.get('explanation')}", 100, initial_indent="  ", subsequent_indent="    "
            )
        )
        click.echo(f"  tables: {', '.join(sc.get('tables', []))}")
        click.echo(f"  complexity: {sc.get('complexity')}")
        token = sc.get("approval_token") or ""
        click.echo(f"  approval_token: {token[:48]}... (expires {sc.get('expires_at')})")
        if v.is_error or not token:
            raise RuntimeError(f"the demo query was rejected: {v.content}")

        _title("4. The user approves; execute_code runs it read-only under limits")
        r = await client.call_tool("execute_code", {"code": sc["normalized_code"], "approval_token": token})
        if r.is_error:
            raise RuntimeError(f"execution failed: {r.content}")
        result = QueryResult.model_validate(r.structured_content)
        click.echo(textwrap.indent(format_table(result), "  "))

        _title("5. A query that reads a blocked column is refused")
        bad = blocked_demo_sql()
        click.echo(f"  {bad}")
        b = await client.call_tool("validate_code", {"code": bad})
        bsc = b.structured_content or {}
        click.echo(f"  valid: {bsc.get('is_valid')}   risk: {bsc.get('risk_level')}")
        for viol in bsc.get("violations", []):
            click.echo(f"  - {viol['code']}: {viol['message']}\n    hint: {viol['hint']}")
        click.echo("\nDone. Every step above was appended to the audit log at " + settings.audit.path)
