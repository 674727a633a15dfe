"""The least-privilege reader role for PostgreSQL: the SQL that creates (or updates) it, and applying it.

When to use it: before pointing sqlmode at a real PostgreSQL database. sqlmode's executor
already runs every query read-only and time-limited, but the role is what makes blocked tables
and columns unreadable even to a query that slipped past the analyzer. The script:

- creates the role if needed (LOGIN, no superuser/createdb/createrole/replication/bypassrls) and
  sets its password;
- sets role-level defaults, so even a connection that bypasses sqlmode is read-only and limited:
  ``default_transaction_read_only``, ``statement_timeout``, ``lock_timeout``,
  ``idle_in_transaction_session_timeout``, ``search_path``;
- converges: removes the role's memberships and every privilege it holds on the database's
  schemas, tables, sequences and functions, then grants CONNECT, USAGE on the exposed schemas and
  SELECT on the allowed columns of the allowed tables only. Column grants, never a table grant
  followed by column revokes (a table grant would silently cover columns added later);
- grants nothing on blocked tables or tables outside ``[[database.tables]]``;
- revokes PUBLIC's EXECUTE on large-object, dblink and server-file functions where present
  (as a warning, not an error, when the administrator does not own them);
- revokes PUBLIC's EXECUTE on ``set_config`` (with it a query could switch from the reader back
  to the login role, see _postgres_role.py) and grants it back to the roles that administer the
  database: the login role sqlmode connects as, the administrator running the script and the
  database owner (never the reader). Other roles of that database that call ``set_config``
  (pg_dump does) need ``GRANT EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean)``;
- grants the reader role to the login role, so sqlmode can ``SET LOCAL ROLE`` to it when the
  login role could read more than the config allows.

Run it as an administrator (a superuser: only the owner of ``set_config`` can revoke it), e.g.
``sqlmode db grants --apply --postgres ADMIN_URL``, then put the printed reader URL in
``database.url`` (the strongest set-up) or keep the login role (sqlmode switches). Run it again
after changing blocked tables or columns.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote, urlsplit, urlunsplit

from ..config import Settings
from ..errors import ConfigError, DatabaseUnavailableError, ExecutionError
from ..schema.snapshot import SchemaSnapshot

__all__ = ["GrantScript", "apply_grants", "grant_script", "reader_url"]

# Functions that reach outside the database (files, other servers) or into large objects, whose
# PUBLIC execute right is revoked where they exist. lo_* and dblink* are matched by prefix.
SERVER_FILE_FUNCTIONS = (
    "loread",
    "lowrite",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir",
    "pg_ls_replslotdir",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
)

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")
_HEADER = "-- sqlmode:role="


class GrantScript(str):
    """The script text, carrying the role name and password it sets (for :func:`apply_grants`)."""

    role: str
    password: str

    def __new__(cls, text: str, role: str, password: str) -> GrantScript:
        obj = super().__new__(cls, text)
        obj.role = role
        obj.password = password
        return obj


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _do_block(body: list[str]) -> list[str]:
    """``DO <tag> <body> <tag>;``, dollar-quoted with a tag the body does not contain (``$$``, else
    ``$sqlmode_N$``): a schema or table name in the body cannot end the block early."""
    text = "\n".join(body)
    tag, n = "$$", 0
    while tag in text:
        tag, n = f"$sqlmode_{n}$", n + 1
    return [f"DO {tag}", *body, f"{tag};"]


def grant_script(
    settings: Settings,
    snapshot: SchemaSnapshot,
    role: str = "sqlmode_reader",
    password: str | None = None,
    *,
    keep_password: bool = False,
    login_role: str | None = None,
) -> GrantScript:
    """SQL that creates or updates ``role`` with SELECT on the exposed, unblocked columns only.

    With ``keep_password`` the password is set only when the script creates the role: re-running
    it (after the blocked lists change) leaves an existing reader's password, and database.url, alone.
    ``login_role`` (default: the user of ``database.url``) is granted ``role`` and keeps
    ``set_config``.
    """
    if not _ROLE_NAME.match(role):
        raise ConfigError(
            f"role name {role!r} must be lower-case letters, digits and underscores", key="--role"
        )
    password = password if password is not None else secrets.token_urlsafe(24)
    db = settings.database
    r = _ident(role)
    default_schema = (db.schemas or ["public"])[0]

    grants: list[str] = []
    skipped: list[str] = []
    schemas: set[str] = set()
    for key, table in sorted(snapshot.tables.items()):
        if not snapshot.is_table_exposed(key):
            why = "blocked" if snapshot.is_table_blocked(key) else "not in [[database.tables]]"
            skipped.append(f"{snapshot.display_name(key)} ({why})")
            continue
        cols = [c.name for c in table.columns if not snapshot.is_column_blocked(key, c.name)]
        hidden = [c.name for c in table.columns if snapshot.is_column_blocked(key, c.name)]
        if not cols:
            skipped.append(f"{snapshot.display_name(key)} (every column blocked)")
            continue
        schema = table.schema or default_schema
        schemas.add(schema)
        note = f"  -- not: {', '.join(hidden)} (blocked)" if hidden else ""
        grants.append(
            f"GRANT SELECT ({', '.join(_ident(c) for c in cols)}) ON {_ident(schema)}.{_ident(table.name)} "
            f"TO {r};{note}"
        )

    if login_role is None:
        login_role = urlsplit(db.url).username
    set_config = "pg_catalog.set_config(text, text, boolean)"
    keep = [f"GRANT EXECUTE ON FUNCTION {set_config} TO CURRENT_USER;"]
    if login_role and login_role != role:
        keep += [
            f"GRANT EXECUTE ON FUNCTION {set_config} TO {_ident(login_role)};",
            "-- The login role may switch to the reader (SET LOCAL ROLE) for each query.",
            f"GRANT {r} TO {_ident(login_role)};",
        ]
    funcs = ", ".join(_literal(f) for f in SERVER_FILE_FUNCTIONS)
    search_path = ", ".join(_ident(s) for s in sorted(schemas or {default_schema}))
    lines = [
        f"-- sqlmode least-privilege reader role {role} (generated by `sqlmode db grants`).",
        "-- Run as an administrator on the database sqlmode reads. Safe to run again: it converges.",
        f"{_HEADER}{role}",
        "BEGIN;",
        *_do_block(
            [
                "BEGIN",
                f"  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {_literal(role)}) THEN",
                f"    CREATE ROLE {r} LOGIN{f' PASSWORD {_literal(password)}' if keep_password else ''};",
                "  END IF;",
                "END",
            ]
        ),
        f"ALTER ROLE {r} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        + (
            "; -- password: set only when the role is created"
            if keep_password
            else f" PASSWORD {_literal(password)};"
        ),
        "-- Role defaults: read-only and time-limited even outside sqlmode.",
        f"ALTER ROLE {r} SET default_transaction_read_only = on;",
        *role_defaults_from_nothing(role, settings, search_path, read_only=True),
        *(f"GRANT USAGE ON SCHEMA {_ident(s)} TO {r};" for s in sorted(schemas)),
        "-- SELECT on the allowed columns of the allowed tables, nothing else.",
        *grants,
        *([f"-- Nothing granted on: {', '.join(skipped)}."] if skipped else []),
        "-- No PUBLIC execute on large-object, dblink and server-file functions.",
        *_do_block(
            [
                "DECLARE f regprocedure;",
                "BEGIN",
                "  FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p",
                f"           WHERE p.proname ~ '^(lo_|dblink)' OR p.proname IN ({funcs}) LOOP",
                "    BEGIN",
                "      EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);",
                "    EXCEPTION WHEN insufficient_privilege THEN",
                "      RAISE WARNING 'sqlmode: cannot revoke EXECUTE on % from PUBLIC (not its owner)', f;",
                "    END;",
                "  END LOOP;",
                "END",
            ]
        ),
        "-- No PUBLIC execute on set_config: with it a query could undo the switch to the reader.",
        f"REVOKE EXECUTE ON FUNCTION {set_config} FROM PUBLIC;",
        *keep,
        *_do_block(
            [
                "DECLARE o text;",
                "BEGIN",
                "  SELECT d.datdba::regrole::text INTO o FROM pg_catalog.pg_database d",
                "   WHERE d.datname = current_database();",
                f"  IF o <> {_literal(_ident(role))} AND o <> {_literal(role)} THEN",
                f"    EXECUTE format('GRANT EXECUTE ON FUNCTION {set_config} TO %s', o);",
                "  END IF;",
                "END",
            ]
        ),
        "COMMIT;",
        "",
    ]
    return GrantScript("\n".join(lines), role, password)


def reader_url(admin_url: str, role: str, password: str) -> str:
    """``admin_url`` with the reader's credentials (host, port, database and options kept)."""
    parts = urlsplit(admin_url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"
    scheme = parts.scheme.split("+", 1)[0]
    return urlunsplit(parts._replace(scheme=scheme, netloc=netloc))


async def apply_grants(admin_url: str, script: str) -> str:
    """Run the grant script as an administrator; return the reader role's connection URL."""
    import asyncpg

    role = getattr(script, "role", None)
    password = getattr(script, "password", None)
    if role is None or password is None:  # a script read back from a file
        m = re.search(rf"^{re.escape(_HEADER)}(\S+)$", script, re.M)
        p = re.search(r"PASSWORD '((?:[^']|'')*)'", script)
        if not m or not p:
            raise ConfigError("this is not a script made by `sqlmode db grants` (role or password missing)")
        role, password = m.group(1), p.group(1).replace("''", "'")
    from ._postgres_exec import asyncpg_dsn

    try:
        conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    except (OSError, asyncpg.PostgresError) as e:
        raise DatabaseUnavailableError(f"Could not connect as the administrator: {e}") from e
    try:
        # The administrator's own trusted script: several statements, so the simple protocol.
        await conn.execute(str(script))
    except asyncpg.PostgresError as e:
        raise ExecutionError(
            f"The grant script failed: {e}",
            hint="Run it as a role that may create roles and grant on the tables.",
        ) from e
    finally:
        await conn.close()
    return reader_url(admin_url, role, password)


def role_defaults_from_nothing(
    role: str, settings: Settings, search_path: str, *, read_only: bool = False
) -> list[str]:
    """Script lines shared by every role sqlmode creates: its time limits and search_path, then no
    memberships and no privileges in any schema of this database (grants follow).

    The settings are the role's in this database (``ALTER ROLE ... IN DATABASE``): a role's own
    settings reach every database of the cluster, so two deployments sharing a role name on one
    server would overwrite each other's search_path and limits. The time limits (and, for the
    reader, read-only) are also set for the role everywhere, a fallback for a session in another
    database; the per-database ones win where both exist. A search_path set for the role
    everywhere by an earlier script is reset: the schemas are this database's.
    """
    cm, db = settings.code_mode, settings.database
    r, lit = _ident(role), _literal(role)
    limits = [
        ("statement_timeout", _literal(f"{cm.query_timeout_ms}ms")),
        ("lock_timeout", _literal(f"{db.lock_timeout_ms}ms")),
        ("idle_in_transaction_session_timeout", _literal(f"{db.idle_in_transaction_timeout_ms}ms")),
    ]
    here = [*(("default_transaction_read_only", "on"),) * read_only, *limits, ("search_path", search_path)]
    body = [
        f"  EXECUTE format('ALTER ROLE %I IN DATABASE %I SET {name} = %s', {lit}, current_database(), "
        f"{_literal(value)});"
        for name, value in here
    ]
    return [
        *(f"ALTER ROLE {r} SET {name} = {value};" for name, value in limits),
        f"ALTER ROLE {r} RESET search_path;",
        "-- The same in this database, where they win over the role's own: another database of",
        "-- this server may hold another deployment's role of the same name.",
        *_do_block(["BEGIN", *body, "END"]),
        "-- Start from nothing: no memberships, no privileges in any schema of this database.",
        *_do_block(
            [
                "DECLARE g text; s text;",
                "BEGIN",
                "  FOR g IN SELECT m.roleid::regrole::text FROM pg_catalog.pg_auth_members m",
                f"           WHERE m.member = {lit}::regrole LOOP",
                f"    EXECUTE format('REVOKE %s FROM %I', g, {lit});",
                "  END LOOP;",
                "  FOR s IN SELECT nspname FROM pg_catalog.pg_namespace",
                "           WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' LOOP",
                "    -- Revoking a table privilege also revokes the matching column privileges.",
                f"    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', s, {lit});",
                f"    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM %I', s, {lit});",
                f"    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM %I', s, {lit});",
                f"    EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', s, {lit});",
                "  END LOOP;",
                f"  EXECUTE format('REVOKE ALL ON DATABASE %I FROM %I', current_database(), {lit});",
                f"  EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), {lit});",
                "END",
            ]
        ),
    ]


async def role_exists(admin_url: str, role: str) -> bool:
    """Whether ``role`` exists (its password is then kept by a re-run)."""
    import asyncpg

    from ._postgres_errors import explain_postgres_error
    from ._postgres_exec import asyncpg_dsn

    try:
        conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    except Exception as e:
        raise explain_postgres_error(e, admin_url, "connect to") from e
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname = $1", role))
    finally:
        await conn.close()
