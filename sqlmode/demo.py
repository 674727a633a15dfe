"""`sqlmode demo`: the whole protocol on the sample warehouse, through a real MCP client."""

from __future__ import annotations

import logging
import re
import textwrap
from os import PathLike
from typing import Any

import click
from mcp import Client

from .config import load_config, one_shot_secret
from .engines import engine_for_url
from .initconfig import sqlmode_command
from .models import QueryResult
from .output import format_table
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
    # The sample's audit log is keyed by a file beside it on first use; the tour says so at the end
    # instead of opening with a warning meant for deployments.
    audit_logger = logging.getLogger("sqlmode.audit")
    level = audit_logger.level
    audit_logger.setLevel(logging.ERROR)
    try:
        await _tour(config_path)
    finally:
        audit_logger.setLevel(level)


async def _tour(config_path: str | PathLike[str] | None) -> None:
    # A demo secret: tokens live only as long as the tour, so there is nothing to configure or warn about.
    settings = one_shot_secret(load_config(config_path))
    async with CodeModeService(settings) as service, Client(build_server(service)) as client:
        db = settings.server.name
        _title(f"1. The LLM reads the bounded schema (resource schema://{db})")
        res = await client.read_resource(f"schema://{db}")
        text = res.contents[0].text  # type: ignore[union-attr]
        click.echo(textwrap.indent(text.strip(), "  "))

        _title("2. The question")
        click.echo(textwrap.fill(QUESTION, 100, initial_indent="  ", subsequent_indent="  "))
        sql = long_tail_sql(engine_for_url(settings.database.url).traits.name)
        click.echo("\n  The LLM writes:\n" + textwrap.indent(sql.strip(), "    "))

        _title("3. validate_code")
        v = await client.call_tool("validate_code", {"code": sql})
        sc = v.structured_content or {}
        click.echo(
            f"  valid: {sc.get('is_valid')}   action: {sc.get('action')}   risk: {sc.get('risk_level')}"
        )
        click.echo("  explanation:")
        for item in explanation_items(str(sc.get("explanation") or "")):
            click.echo(textwrap.fill(item, 100, initial_indent="    - ", subsequent_indent="      "))
        click.echo(f"  tables: {', '.join(sc.get('tables', []))}")
        click.echo(
            f"  complexity: {complexity_words(sc.get('complexity') or {}, settings.code_mode.max_complexity)}"
        )
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
        if not settings.audit.key:
            click.echo(
                "  (its chain is keyed by the file beside it; a deployment sets SQLMODE_AUDIT_KEY instead)"
            )
        _title("Next")
        click.echo(
            "  Connect your own database:  sqlmode init path/to/warehouse.duckdb\n"
            "                              sqlmode init postgresql://USER:PASSWORD@HOST:5432/DATABASE\n"
            "  It writes sqlmode.toml (with suggested blocked columns) and prints the snippet for Claude\n"
            "  Desktop, Claude Code, Cursor and VS Code. To try this sample in your client first:\n"
            f"    claude mcp add analytics -- {' '.join(sqlmode_command())} serve"
        )


def explanation_items(text: str) -> list[str]:
    """The analyzer's explanation as a short list: one item per named step, then the rest."""
    parts = re.split(r"\s(?=\(\d+\) )|\s(?=Then )|\s(?=The database estimates )", text.strip())
    return [p.strip() for p in parts if p.strip()]


_COUNTS = (
    ("tables", "table"),
    ("joins", "join"),
    ("ctes", "named step"),
    ("subqueries", "subquery"),
    ("aggregations", "aggregation"),
    ("window_functions", "window function"),
    ("set_operations", "set operation"),
)


def complexity_words(c: dict[str, Any], limit: int) -> str:
    """'moderate (170 of 400 allowed): 5 tables, 6 joins, ...'."""
    score = int(c.get("score", 0))
    level = "light" if score < limit * 0.25 else "moderate" if score < limit * 0.6 else "heavy"
    counts = []
    for key, word in _COUNTS:
        n = int(c.get(key, 0) or 0)
        if n:
            plural = word if n == 1 else ("subqueries" if word == "subquery" else word + "s")
            counts.append(f"{n} {plural}")
    return f"{level} ({score} of {limit} allowed)" + (f": {', '.join(counts)}" if counts else "")
