"""The `sqlmode` command line.

Exit codes: 0 success (or valid), 1 rejected/refused, 2 usage, config or database error.
Every command takes ``--config PATH`` (default: $SQLMODE_CONFIG, else the bundled sample).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from .config import CONFIG_ENV, Settings, load_config, one_shot_secret
from .errors import ApprovalError, ExecutionError, SqlmodeError
from .models import ValidationResult
from .output import format_csv, format_table, safe_json, terminal_safe

T = TypeVar("T")
log = logging.getLogger("sqlmode.cli")
# The database URL the running command talks to, so that a stray driver error can name it.
_current_url: dict[str, str] = {}

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar=CONFIG_ENV,
    default=None,
    help="TOML config (default: $SQLMODE_CONFIG, else the bundled sample warehouse config).",
)


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _fail(err: SqlmodeError, code: int = 2) -> None:
    # sqlmode's own multi-line reports (a policy check's findings) keep their lines, indented under
    # "error:"; the database's text (which can quote stored values) stays on one escaped line.
    own = not isinstance(err, ExecutionError)
    click.echo(_lines(f"error: {err.message}") if own else terminal_safe(f"error: {err.message}"), err=True)
    if err.hint:
        click.echo(terminal_safe(f"hint: {err.hint}"), err=True)
    sys.exit(code)


def _approved() -> bool:
    """Ask on the terminal whether to run; "not run" (with why) unless the answer is yes."""
    try:
        if click.confirm("Run this query?", default=False, err=True):
            return True
        click.echo("not run", err=True)
    except click.Abort:  # end of input (or Ctrl-C) at the question
        click.echo("\nnot run: no answer to the question (add --yes to run without asking)", err=True)
    return False


def _lines(text: str) -> str:
    """``text`` made terminal safe line by line, each line after the first indented two spaces."""
    return "\n  ".join(terminal_safe(line) for line in text.splitlines())


def run_async(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async command; SqlmodeErrors become a message on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return asyncio.run(fn(*args, **kwargs))
        except SqlmodeError as e:
            _fail(e)
            raise AssertionError("unreachable") from None

    return wrapper


def _load(config_path: str | None, **overrides: Any) -> Settings:
    settings = load_config(config_path, **overrides)
    _current_url["url"] = settings.database.url
    return settings


def _load_with_database(config_path: str | None, url: str) -> Settings:
    """Settings for ``url``: the config file's other settings when one is given, else the defaults."""
    from .config import settings_for_database

    settings = settings_for_database(url, config_path)
    _current_url["url"] = settings.database.url
    return settings


def _service(config_path: str | None, **kw: Any) -> Any:
    from .service import CodeModeService

    return CodeModeService(one_shot_secret(_load(config_path)), **kw)


class _Guarded(click.Group):
    """Every failure of every command is one clear message and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit):
            raise
        except SqlmodeError as e:
            _fail(e)
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as e:
            log.debug("unexpected failure", exc_info=True)
            _fail(_unexpected(e))


def _unexpected(e: Exception) -> SqlmodeError:
    from .dberrors import as_sqlmode_error

    return as_sqlmode_error(e, _current_url.get("url"))


@click.group(cls=_Guarded)
@click.option("-v", "--verbose", is_flag=True, help="Debug logs on stderr.")
@click.version_option(package_name="sqlmode")
def main(verbose: bool) -> None:
    """sqlmode: let an LLM answer analytical questions with SQL, safely."""
    _setup_logging(verbose)


# -- formatting ------------------------------------------------------------------------------


def describe_validation(v: ValidationResult) -> str:
    t = terminal_safe  # the explanation and messages quote the caller's SQL
    lines = [
        f"{'VALID' if v.is_valid else 'REJECTED'}: {v.statement_type} ({v.action}), risk {v.risk_level}, "
        f"complexity {v.complexity.score}",
        f"Explanation: {t(v.explanation)}",
    ]
    lines += [
        f"  - {x.code}: {t(x.message)}" + (f"\n    hint: {t(x.hint)}" if x.hint else "") for x in v.violations
    ]
    return "\n".join(lines)


# -- commands --------------------------------------------------------------------------------


def _read_sql(sql: str) -> str:
    return sys.stdin.read() if sql == "-" else sql


@main.command()
@config_option
@click.option("--user", default=None, help="Principal user id (default: policy.default_user).")
@click.option("--session", default="cli", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a ValidationResult JSON object.")
@click.option(
    "--file",
    "file_",
    type=click.File("r"),
    default=None,
    help='JSONL of {"id": ..., "sql": ...}: print one ValidationResult a line, id echoed.',
)
@click.argument("sql", required=False)
@run_async
async def validate(
    config_path: str | None, user: str | None, session: str, as_json: bool, file_: Any, sql: str | None
) -> None:
    """Validate SQL. Exit 0 valid, 1 rejected, 2 usage/config/database error."""
    if (sql is None) == (file_ is None):
        raise click.UsageError("give exactly one of SQL (or - for stdin) and --file")
    async with _service(config_path) as service:
        if file_ is not None:
            all_valid = True
            for n, line in enumerate(file_, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    code = item["sql"]
                except (ValueError, KeyError, TypeError):
                    raise SqlmodeError(
                        f"--file line {n}: expected a JSON object with a 'sql' key",
                        code="BAD_INPUT",
                        hint='Write one {"id": ..., "sql": "..."} object a line.',
                    ) from None
                v = await service.validate(code, user=user, session=session)
                all_valid &= v.is_valid
                click.echo(
                    json.dumps({"id": item.get("id"), **v.model_dump(mode="json")}, ensure_ascii=False)
                )
            sys.exit(0 if all_valid else 1)
        v = await service.validate(_read_sql(sql or ""), user=user, session=session)
        click.echo(safe_json(v.model_dump_json(indent=2)) if as_json else describe_validation(v))
        if v.is_valid and not as_json:
            click.echo(f"normalized_code: {v.normalized_code}\napproval_token: {v.approval_token}")
        sys.exit(0 if v.is_valid else 1)


@main.command()
@config_option
@click.option("--user", default=None)
@click.option("--session", default="cli", show_default=True)
@click.option("--yes", is_flag=True, help="Do not ask for approval.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
@click.option(
    "--csv-raw",
    is_flag=True,
    help="CSV cells exactly as stored, without the ' put before = + - @ starts (for programs).",
)
@click.argument("sql")
@run_async
async def query(
    config_path: str | None, user: str | None, session: str, yes: bool, fmt: str, csv_raw: bool, sql: str
) -> None:
    """Validate, show the explanation, ask for approval, execute and print."""
    async with _service(config_path) as service:
        v = await service.validate(_read_sql(sql), user=user, session=session)
        click.echo(describe_validation(v), err=fmt != "table")
        if not v.is_valid:
            sys.exit(1)
        if not yes and not _approved():
            sys.exit(1)
        try:
            r = await service.execute(v.normalized_code, v.approval_token or "", user=user, session=session)
        except ApprovalError as e:
            _fail(e, 1)
        if fmt == "json":
            click.echo(safe_json(r.model_dump_json()))
        elif fmt == "csv":  # color=True: click would otherwise strip what looks like ANSI from the data
            click.echo(format_csv(r, raw=csv_raw), nl=False, color=True)
        else:
            click.echo(format_table(r))


@main.command()
@config_option
@click.option("--table", default=None, help="Print one table only.")
@run_async
async def schema(config_path: str | None, table: str | None) -> None:
    """Print the bounded schema resource."""
    async with _service(config_path) as service:
        text = await service.schema_text(table)
        click.echo(text, nl=False)
        if table is None:
            why = _why_no_tables(service.settings, await service.schema())
            if why:
                click.echo(f"note: no tables to show: {why}", err=True)


def _why_no_tables(settings: Settings, snapshot: Any) -> str | None:
    """Why the bounded schema is empty, or None when it is not."""
    from .engines import engine_for_url

    if snapshot.bounded().tables:
        return None
    traits = engine_for_url(settings.database.url).traits
    where = (
        "schema(s) " + ", ".join(settings.database.schemas or [traits.default_schema])
        if traits.exposes_schemas
        else f"the {traits.display_name} file's {traits.default_schema} schema"
    )
    if not snapshot.tables:
        return f"the database has no tables or views in {where} (is database.url the right database?" + (
            " Set database.schemas to the schemas holding your tables.)" if traits.exposes_schemas else ")"
        )
    return (
        f"all {len(snapshot.tables)} tables in {where} are blocked (code_mode.blocked_tables) or left out "
        "of the [[database.tables]] allowlist"
    )


@main.command("sample-db")
@config_option
@click.option("--scale", default=1, show_default=True, type=click.IntRange(1, 100))
@click.option("--postgres", "pg_url", default=None, help="Load into this Postgres database instead.")
@click.option("--path", default=None, help="DuckDB file to write (default: the config's database path).")
@click.option(
    "--force",
    is_flag=True,
    help="Replace a DuckDB file, or the sample's tables in a Postgres schema, that sample-db did not build.",
)
def sample_db(config_path: str | None, scale: int, pg_url: str | None, path: str | None, force: bool) -> None:
    """Build the sample warehouse (DuckDB file, or load it into Postgres).

    It writes only into an empty target or one it built itself (it leaves a marker); anything
    else is refused unless --force.
    """
    from . import sample
    from .engines import engine_for_url

    if pg_url:
        _current_url["url"] = pg_url
        asyncio.run(sample.load_sample_postgres(pg_url, scale=scale, force=force))
        target = engine_for_url(pg_url).describe_target(pg_url)
        click.echo(f"loaded the sample warehouse (scale {scale}) into {target}")
        return
    if path is None:
        settings = _load(config_path)
        if not engine_for_url(settings.database.url).traits.builds_sample_file:
            raise SqlmodeError(
                "the config's database is PostgreSQL; sample-db writes a DuckDB file (--path) or loads "
                "into a Postgres database you name explicitly (--postgres URL)",
                code="BAD_INPUT",
            )
        path = settings.database.duckdb_path
    out = sample.build_sample_duckdb(path, scale=scale, force=force)
    click.echo(f"built the sample warehouse (scale {scale}) at {out}")


@main.command()
@click.argument("target", required=False)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default="sqlmode.toml",
    show_default=True,
    help="Where to write the config.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@run_async
async def init(target: str | None, output: str, force: bool) -> None:
    """Write a commented config for your database and print the client snippet.

    TARGET is postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or a DuckDB file (a path, or
    duckdb:///file.duckdb; relative to the current folder).
    """
    from pathlib import Path

    from .initconfig import client_snippets, init_config

    if not target:
        raise click.UsageError(
            "give your database: sqlmode init warehouse.duckdb, or sqlmode init postgresql://USER@HOST:5432/DB"
        )
    from .engines.base import url_for_path

    _current_url["url"] = target if "://" in target else url_for_path(target)
    res = await init_config(target, Path(output), cwd=Path.cwd(), force=force)
    click.echo(f"wrote {res.path}: {len(res.snapshot.tables)} tables and views found", err=True)
    for name, why in res.blocked_tables:
        click.echo(f"  blocked table {name}: {why}", err=True)
    for name, why in res.blocked_fields:
        click.echo(f"  blocked column {name}: {why}", err=True)
    click.echo("Review the file, then connect your client:\n", err=True)
    click.echo(client_snippets(res.path))
    click.echo(f"Try it first: sqlmode schema --config {res.path}", err=True)


@main.command()
@config_option
@click.option(
    "--database",
    "database_url",
    default=None,
    help="Serve this database (postgresql://... or a DuckDB file) without a config file, or instead of its.",
)
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True)
@click.option("--host", default=None, help="HTTP bind address (default: server.host, 127.0.0.1).")
@click.option(
    "--port", default=None, type=int, help="HTTP port (default: server.port, 8000; 0 picks a free one)."
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.option(
    "--allow-unauthenticated",
    is_flag=True,
    help="HTTP without [auth] credentials, for local development: loopback addresses only.",
)
def serve(
    config_path: str | None,
    database_url: str | None,
    transport: str,
    host: str | None,
    port: int | None,
    log_level: str,
    allow_unauthenticated: bool,
) -> None:
    """Run the MCP server (stdio, or Streamable HTTP at http://HOST:PORT/mcp).

    Logs are JSON lines on stderr (with one access-log line per HTTP request and tool call);
    under stdio, stdout carries only the MCP protocol. HTTP serving needs code_mode.token_secret
    and [auth] credentials (or --allow-unauthenticated on loopback).
    """
    from .server import configure_logging
    from .server import serve as run_server

    configure_logging(getattr(logging, log_level.upper()))
    try:
        settings = _load_with_database(config_path, database_url) if database_url else _load(config_path)
        asyncio.run(
            run_server(
                settings,
                transport=transport,
                host=host,
                port=port,
                allow_unauthenticated=allow_unauthenticated,
            )
        )
    except SqlmodeError as e:
        _fail(e)
    except KeyboardInterrupt:
        pass


@main.group()
def audit() -> None:
    """Inspect the audit log."""


@audit.command("verify")
@config_option
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def audit_verify(config_path: str | None, path: str | None) -> None:
    """Check the audit chains: the file (PATH, default audit.path) and every replica's chain at audit.url.

    The key is audit.key ($SQLMODE_AUDIT_KEY), else the key file beside the log. Exit 0 intact,
    1 tampered (the first bad record is named), 2 missing or unreadable (log, key or database).
    """
    from .audit import verify_configured
    from .config import settings_from_dict
    from .engines.base import memory_url

    try:
        # A bare PATH needs no config beyond the key (from the environment).
        settings = (
            load_config(config_path)
            if config_path or path is None
            else settings_from_dict({"database": {"url": memory_url()}})
        )
        report = asyncio.run(verify_configured(settings, path))
    except SqlmodeError as e:
        _fail(e)
    click.echo(report.render())
    sys.exit(report.exit_code)


@main.group()
def policy() -> None:
    """Cedar policies: check them."""


@policy.command("check")
@config_option
@click.option("--quiet", is_flag=True, help="Print problems only, not the effective policy set.")
def policy_check(config_path: str | None, quiet: bool) -> None:
    """Validate baseline, generated and custom policies against the schema; print the effective set.

    Exit 0 when every layer is valid, 1 when any problem is found, 2 for a config error.
    """
    from .policy import check_policies

    try:
        report = check_policies(_load(config_path))
    except SqlmodeError as e:
        _fail(e)
    click.echo(report.render(effective=not quiet))
    sys.exit(0 if report.ok else 1)


@main.command()
@config_option
def demo(config_path: str | None) -> None:
    """End-to-end tour on the sample warehouse through a real in-process MCP client."""
    from .demo import run_demo

    try:
        asyncio.run(run_demo(config_path))
    except SqlmodeError as e:
        _fail(e)


# --- db grants (owned by the execution layer: sqlmode/engines/_postgres_grants.py) -------------------------


@main.group()
def db() -> None:
    """Database set-up: the least-privilege reader role."""


@db.command("grants")
@config_option
@click.option("--apply", "apply_", is_flag=True, help="Run the script (needs administrator rights).")
@click.option("--postgres", "admin_url", default=None, help="Administrator URL (default: database.url).")
@click.option("--role", default=None, help="Name of the reader role (default: database.reader_role).")
@click.option(
    "--password",
    default=None,
    help="Set the reader's password to this (default: keep it; new roles get a random one).",
)
@click.option(
    "--rotate-password",
    is_flag=True,
    help="Give an existing reader role a new random password (prints its URL).",
)
@click.option(
    "--writer-role",
    default="sqlmode_writer",
    show_default=True,
    help="Name of the column-restricted writer role (made when code_mode.allow_writes is on).",
)
@run_async
async def db_grants(
    config_path: str | None,
    apply_: bool,
    admin_url: str | None,
    role: str | None,
    password: str | None,
    rotate_password: bool,
    writer_role: str,
) -> None:
    """Print (or with --apply, run) the SQL that creates the least-privilege reader role.

    SELECT on the allowed columns of the allowed tables only, nothing on blocked tables,
    role-level read-only and timeouts, PUBLIC execute revoked on large-object, dblink and
    server-file functions and on set_config, the reader granted to the login role of database.url
    (so sqlmode can switch to it). With --apply it ends by printing the reader's connection URL:
    put it in database.url (the strongest set-up), or keep the login role and sqlmode switches.
    """
    from urllib.parse import urlsplit

    from .dberrors import explain_db_error
    from .engines import engine_for_url
    from .errors import DatabaseUnavailableError
    from .schema.names import check_config_names
    from .schema.reflect import reflect_schema

    settings = _load(config_path)
    engine = engine_for_url(settings.database.url)
    login_role = urlsplit(settings.database.url).username
    role = role or settings.database.reader_role
    if admin_url:
        settings = settings.model_copy(deep=True)
        settings.database.url = admin_url
    snapshot = await reflect_schema(settings)
    check_config_names(settings, snapshot)
    keep = password is None and not rotate_password
    script = engine.grant_script(
        settings, snapshot, role=role, password=password, keep_password=keep, login_role=login_role
    )
    writer = None
    if settings.code_mode.allow_writes:  # writes get their own column-restricted role
        writer = engine.writer_script(settings, snapshot, role=writer_role)
    if not apply_:
        click.echo(script + (writer or ""), nl=False)
        return
    existed = keep and await engine.role_exists(settings.database.url, role)
    try:
        url = await engine.apply_grants(settings.database.url, script)
    except DatabaseUnavailableError as e:
        raise explain_db_error(e.__cause__ or e, settings.database.url) from e
    if existed:
        # Its password was not changed, so the URL sqlmode already uses stays valid.
        click.echo(
            f"reader role {role!r} is up to date; its password is unchanged, so database.url stays as it is "
            "(--rotate-password sets a new one)",
            err=True,
        )
        click.echo(_without_password(url))
    else:
        click.echo(
            f"reader role {role!r} is ready; connect sqlmode as it (the strongest set-up), or keep "
            "database.url and sqlmode switches to it for every query:",
            err=True,
        )
        click.echo(url)
    if writer is not None:
        wurl = await engine.apply_grants(settings.database.url, writer)
        click.echo(f"writer role {writer_role!r} is ready; put its URL in database.write_url:", err=True)
        click.echo(wurl)


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    p = urlsplit(url)
    host = p.netloc.rpartition("@")[2]
    return p._replace(netloc=f"{p.username}@{host}" if p.username else host).geturl()


# --- end db grants --------------------------------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    main()
