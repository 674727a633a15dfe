"""`sqlmode init [URL]`: a commented config for the user's own database, and the client snippet.

It reflects the database once, lists what it found, and suggests blocking columns and tables
whose names look sensitive (with the reason next to each). Suggestions are a starting point the
user reviews; the written file is loaded back and checked before ``init`` reports success.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .config import Settings, load_config, settings_from_dict
from .engines import engine_named, known_schemes, url_scheme
from .engines.base import is_file_url, path_of_url
from .errors import ConfigError
from .schema import SchemaSnapshot, reflect_schema
from .schema.names import check_config_names

__all__ = ["InitResult", "client_snippets", "init_config", "normalize_target"]

# (pattern over a lower-cased column name, reason). The first match wins.
SENSITIVE_COLUMNS: tuple[tuple[str, str], ...] = (
    (r"(^|_)ssn($|_)|social_?security|national_id|tax_id", "a national identity number"),
    (r"pass(word|wd)?($|_)|^pwd$|_pwd$|password_hash|passwd", "a password or password hash"),
    (r"secret", "a secret"),
    (r"api_?key|access_?key|private_?key", "an API or private key"),
    (r"(^|_)token($|_|s$)", "a token (session, API or reset)"),
    (r"e_?mail", "personal contact data (email address)"),
    (r"phone|mobile|(^|_)tel($|_)", "personal contact data (phone number)"),
)
SENSITIVE_TABLES = r"credential|secret|password|api_?key|(^|_)tokens?($|_)|auth_?keys?"


@dataclass
class InitResult:
    path: Path
    settings: Settings
    snapshot: SchemaSnapshot
    blocked_fields: list[tuple[str, str]]
    blocked_tables: list[tuple[str, str]]


def normalize_target(target: str, cwd: Path) -> dict[str, str]:
    """The [database] entry for what the user typed: a URL, or a DuckDB file path (relative to ``cwd``)."""
    # A URL of a registered engine stays a URL, except a file engine's, which becomes its path.
    if "://" in target and url_scheme(target) in known_schemes():
        if not is_file_url(target):
            return {"url": target}
        target = path_of_url(target)
    if re.match(r"^[a-z][a-z0-9+]*://", target):
        raise ConfigError(
            f"{target.split('://')[0]}:// is not a database sqlmode reads",
            code="DATABASE_URL_INVALID",
            hint="Give postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or a DuckDB file (path or duckdb:///...).",
        )
    p = Path(target).expanduser()
    return {"path": str(p if p.is_absolute() else (cwd / p).resolve())}


def _suggest(snapshot: SchemaSnapshot) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    tables: list[tuple[str, str]] = []
    fields: list[tuple[str, str]] = []
    for t in sorted(snapshot.tables.values(), key=lambda t: t.name):
        if re.search(SENSITIVE_TABLES, t.name.lower()):
            tables.append((t.name, "the name suggests credentials or secrets"))
            continue
        for c in t.columns:
            for pattern, reason in SENSITIVE_COLUMNS:
                if re.search(pattern, c.name.lower()):
                    fields.append((f"{t.name}.{c.name}", reason))
                    break
    return tables, fields


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def render_config(
    database: dict[str, str],
    snapshot: SchemaSnapshot,
    tables: list[tuple[str, str]],
    fields: list[tuple[str, str]],
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    key, value = next(iter(database.items()))
    n = len(snapshot.tables)
    lines = [
        f"# sqlmode configuration written by `sqlmode init` on {when}.",
        "# Every key is described in the README (Configuration). Every table and column named here must",
        "# exist in the database: a misspelt name stops sqlmode at start-up rather than not applying.",
        "",
        "[database]",
        f"{key} = {_toml_str(value)}",
    ]
    if key == "url" and re.search(r"://[^/@]*:[^/@]*@", value):
        lines.append(
            '# The password is in this file; you may write url = "${DATABASE_URL}" and export it instead.'
        )
    traits = engine_named(snapshot.dialect).traits
    if traits.exposes_schemas:
        default = traits.default_schema
        schemas = sorted({t.schema or default for t in snapshot.tables.values()})
        if schemas and schemas != [default]:  # the default is implied; an empty one is not named
            lines.append(f"schemas = [{', '.join(_toml_str(s) for s in schemas)}]")
    lines += ["", f"# Tables and views found ({n}):"]
    for t in sorted(snapshot.tables.values(), key=lambda t: t.name):
        lines.append(f"#   {t.name} ({len(t.columns)} columns{', view' if t.kind == 'view' else ''})")
    lines += [
        "# To expose only some of them, list them (every other table is then hidden):",
        "# [[database.tables]]",
        f"# name = {_toml_str(next(iter(sorted(t.name for t in snapshot.tables.values())), 'orders'))}",
        '# description = "What one row is, for the LLM."',
        "",
        "[code_mode]",
        "# Blocked tables and columns are invisible to the LLM and refused by any route.",
        "# Suggested from their names; review them: remove what may be read, add what the names do not show.",
    ]
    if tables:
        lines.append("blocked_tables = [")
        lines += [f"  {_toml_str(name)},  # {why}" for name, why in tables]
        lines.append("]")
    else:
        lines.append("blocked_tables = []")
    if fields:
        lines.append("blocked_fields = [")
        lines += [f"  {_toml_str(name)},  # {why}" for name, why in fields]
        lines.append("]")
    else:
        lines.append("blocked_fields = []  # no column name looked sensitive")
    lines += [
        "max_rows = 1000",
        "query_timeout_ms = 5000",
        "# The approval-token secret is read from CODE_MODE_SECRET (needed for HTTP serving; stdio makes",
        "# a per-process one when it is unset).",
        "",
    ]
    return "\n".join(lines)


async def init_config(target: str, output: Path, *, cwd: Path, force: bool = False) -> InitResult:
    """Reflect ``target``, write the commented config to ``output``, load it back and check it."""
    if output.exists() and not force:  # noqa: ASYNC240 - one stat of a local file
        raise ConfigError(
            "already exists; refusing to overwrite it",
            path=str(output),
            code="BAD_INPUT",
            hint="Choose another file with --output, or add --force to overwrite it.",
        )
    database = normalize_target(target, cwd)
    probe = settings_from_dict({"database": database, "code_mode": {"token_secret": "x" * 32}})
    snapshot = await reflect_schema(probe)
    tables, fields = _suggest(snapshot)
    text = render_config(database, snapshot, tables, fields)
    await asyncio.to_thread(_write, output, text)
    settings = load_config(output)
    check_config_names(settings, await reflect_schema(settings))
    return InitResult(output, settings, snapshot, fields, tables)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def sqlmode_command() -> list[str]:
    """How a client starts this installation's sqlmode (an absolute path: clients have no venv)."""
    exe = Path(sys.executable).parent / "sqlmode"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("sqlmode")
    return [found] if found else [sys.executable, "-m", "sqlmode"]


def client_snippets(config: Path, name: str = "analytics") -> str:
    """Claude Desktop / Cursor / VS Code JSON and the Claude Code command, for ``config``."""
    cmd = sqlmode_command()
    args = [*cmd[1:], "serve", "--config", str(config.resolve())]
    server = {"command": cmd[0], "args": args}
    desktop = json.dumps({"mcpServers": {name: server}}, indent=2)
    vscode = json.dumps({"servers": {name: {"type": "stdio", **server}}}, indent=2)
    claude_code = " ".join(["claude", "mcp", "add", name, "--", cmd[0], *args])
    return (
        "Claude Desktop (claude_desktop_config.json) and Cursor (.cursor/mcp.json):\n"
        f"{desktop}\n\n"
        f"VS Code (.vscode/mcp.json):\n{vscode}\n\n"
        f"Claude Code:\n  {claude_code}\n"
    )
