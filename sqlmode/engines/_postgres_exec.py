"""PostgreSQL executor (asyncpg): a pool of read-only, time-limited, self-cleaning sessions.

How a query runs, and why it cannot write or linger even if the analyzer was fooled:

- Every session starts with ``default_transaction_read_only=on`` and the configured
  ``statement_timeout``, ``lock_timeout``, ``idle_in_transaction_session_timeout`` and
  ``client_connection_check_interval`` as startup parameters (so ``RESET ALL`` restores them).
  Each statement therefore runs in its own READ ONLY transaction: PostgreSQL fixes read-only
  mode when the transaction starts and refuses to switch it once a query has run, so a
  statement cannot make its own transaction writable.
- Before each use the client checks the server-reported ``default_transaction_read_only``
  (a ParameterStatus, no round trip) and refuses a session where it is not ``on``.
- The text must start like a read query (:func:`~sqlmode.execute.base.check_read_query`), is
  sent as ONE prepared statement (Parse/Bind/Execute: the protocol refuses several statements),
  and must describe a result set before it is executed: BEGIN, SET, PREPARE, DECLARE, LISTEN,
  COPY ... never execute. A session left inside a transaction is discarded.
- At most ``max_rows + 1`` rows are fetched (the protocol's Execute row limit).
- A client-side deadline wraps acquire + execute; when it fires, asyncpg sends a cancel request
  and the connection is discarded. The server notices a dropped client within
  ``client_connection_check_interval`` and ``statement_timeout`` is the backstop.
- When a connection goes back to the pool (in the background, off the caller's path) it is reset
  (``SET SESSION AUTHORIZATION DEFAULT; RESET ALL; CLOSE ALL; UNLISTEN *;
  pg_advisory_unlock_all()``), which undoes anything a committed read-only statement could leave
  behind (settings via ``set_config``, a role, advisory locks, cursors, listeners), unless the
  statement provably called nothing that can change a session (session.py): then the round
  trip is skipped. A failed reset closes the connection.

Explicit ``BEGIN READ ONLY`` / ``ROLLBACK`` per query would give the same guarantee at two extra
round trips (2.5x the raw driver for a 10-row result on the benchmark machine); the startup
parameter plus the reported-status check gives it at none.

Requires PostgreSQL 14+ (for the reported ``default_transaction_read_only`` and
``client_connection_check_interval``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import asyncpg.exceptions as pgerr

from ..config import Settings
from ..errors import (
    ConfigError,
    DatabaseUnavailableError,
    ExecutionError,
    NotAQueryError,
    PermissionDeniedError,
    QueryCancelledError,
    QueryTimeoutError,
    SqlmodeError,
)
from ..execute.base import check_read_query, effective_limits
from ..execute.convert import convert_consuming
from ..models import ColumnMeta, QueryResult
from ..schema.snapshot import SchemaSnapshot
from ._postgres_connect import asyncpg_dsn, search_path
from ._postgres_convert import PG_SCALAR_TYPES, PG_TEXT_TYPES, pg_interval, postgres_plan
from ._postgres_errors import check_postgres_url, explain_postgres_error
from ._postgres_errtext import pg_error_text
from ._postgres_pool import ReaderPool
from ._postgres_role import describe_problems, fix_for, prove_role
from ._postgres_session import may_change_session

__all__ = ["PostgresExecutor", "asyncpg_dsn", "map_pg_error", "search_path"]

log = logging.getLogger("sqlmode.execute")

RESET_SQL = (
    "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; CLOSE ALL; UNLISTEN *; SELECT pg_advisory_unlock_all()"
)
# How often the server checks, during a long query, that the client is still there (ms).
CLIENT_CHECK_INTERVAL_MS = 1000
# After a deadline, how long to let asyncpg's cancel request reach the server before closing.
CANCEL_GRACE_S = 2.0

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pgerr.ConnectionDoesNotExistError,
    pgerr.PostgresConnectionError,
    pgerr.InterfaceError,
    pgerr.AdminShutdownError,
    pgerr.CrashShutdownError,
    pgerr.CannotConnectNowError,
    pgerr.TooManyConnectionsError,
    pgerr.InvalidAuthorizationSpecificationError,
    pgerr.InvalidCatalogNameError,
    ConnectionError,
    OSError,
)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def describe_target(url: str) -> str:
    """host:port/db of a URL, without credentials, for messages."""
    p = urlsplit(url)
    host = p.hostname or parse_qs(p.query).get("host", ["local socket"])[0]
    port = f":{p.port}" if p.port else ""
    return f"{host}{port}{p.path}"


def map_pg_error(
    e: BaseException, *, timeout_ms: int | None = None, target: str = "the database", sql: str | None = None
) -> SqlmodeError:
    """A database or connection failure as the matching SqlmodeError, with the database's words.

    Never with its DETAIL (a failing row's image) nor values or names the query ``sql`` did not
    state itself: see errtext.py.
    """
    if isinstance(e, SqlmodeError):
        return e
    if isinstance(e, pgerr.QueryCanceledError):
        if "statement timeout" in str(e) and timeout_ms is not None:
            return QueryTimeoutError(
                f"The query ran longer than its {timeout_ms} ms limit and was cancelled."
            )
        if "statement timeout" in str(e):
            return QueryTimeoutError(f"The query ran past the database's statement timeout: {e}")
        return QueryCancelledError(f"The database cancelled the query: {e}")
    if isinstance(e, pgerr.PostgresSyntaxError) and "multiple commands" in str(e):
        return NotAQueryError(f"Exactly one statement can run at a time: {e}")
    if isinstance(e, pgerr.LockNotAvailableError):
        return QueryTimeoutError(f"The query waited too long for a lock and was stopped: {e}")
    if isinstance(e, pgerr.InsufficientPrivilegeError):
        return PermissionDeniedError(f"The database refused access: {e}")
    if isinstance(e, pgerr.ReadOnlySQLTransactionError):
        return PermissionDeniedError(f"The read-only session refused to change anything: {e}")
    if isinstance(e, pgerr.PostgresError) and e.sqlstate == "25006":
        return PermissionDeniedError(f"The read-only session refused to change anything: {e}")
    if isinstance(e, _CONNECTION_ERRORS):
        reason = str(e) or e.__class__.__name__
        return DatabaseUnavailableError(f"Lost or could not open the connection to {target}: {reason}")
    if isinstance(e, pgerr.PostgresError):
        message, hint = pg_error_text(e, sql)
        err = ExecutionError(f"The database rejected the query: {message}", sqlstate=e.sqlstate)
        if hint:
            err.hint = f"{hint} {ExecutionError.hint}"
        return err
    return ExecutionError(f"The query failed: {e.__class__.__name__}: {e}")


def introspect_without_set_config(conn: asyncpg.Connection) -> None:
    """asyncpg turns JIT off around its type introspection with set_config, which the reader and
    writer roles may not execute (grants.py revokes it from PUBLIC): introspect with the server's
    setting instead. Every pool of a role made by `db grants` needs it (a pool's ``init``)."""
    caps = getattr(conn, "_server_caps", None)
    if caps is not None and getattr(caps, "jit", False):
        conn._server_caps = caps._replace(jit=False)


async def _init_connection(conn: asyncpg.Connection) -> None:
    introspect_without_set_config(conn)
    # asyncpg's default interval decoding folds months into days; the tuple form is exact.
    await conn.set_type_codec(
        "interval", schema="pg_catalog", encoder=_encode_interval, decoder=pg_interval, format="tuple"
    )
    # The server's text for these is already exact and JSON-safe, and asking for it costs less than
    # building Decimal/datetime/UUID objects and formatting them again (see the benchmark).
    # asyncpg cannot use text element codecs inside records and ranges: statements returning those
    # are prepared with ignore_custom_codec (see _prepare).
    for name in sorted(PG_TEXT_TYPES):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=str, decoder=str, format="text")


def _encode_interval(v: Any) -> tuple[int, int, int]:
    if isinstance(v, tuple):
        return v
    return (0, v.days, v.seconds * 1_000_000 + v.microseconds)


async def _statement(conn: Any, sql: str) -> Any:
    """``sql`` prepared on ``conn``: from asyncpg's statement cache, or cached while it has room.

    A new statement is never cached at the price of another: asyncpg would close the one it evicts
    with a round trip of its own before this query runs (three round trips per novel query instead
    of two once the cache is full). When the cache is full, a text not in it is prepared as the
    unnamed statement, which the next Parse replaces on the server at no cost. Every query is
    still one Parse/Bind/Execute of one statement; only its server-side name differs.
    """
    try:
        cache = conn._stmt_cache
        full = len(cache) >= cache.get_max_size()
        bypass = full and not cache.has((sql, conn._protocol.get_record_class(), False))
    except AttributeError:  # another asyncpg's cache internals: its own caching, as before
        bypass = False
    if bypass:
        return await conn._get_statement(sql, None, use_cache=False)
    return await conn._get_statement(sql, None)


# Arrays of built-in scalars decode fine with text element codecs; records, composite types and
# ranges (and arrays of them) would hand binary data to a text decoder.
_TEXT_SAFE_ARRAYS = frozenset(f"{n}[]" for n in PG_SCALAR_TYPES)


def _text_codec_safe(t: Any) -> bool:
    """Whether asyncpg decodes a column of type ``t`` correctly with the text codecs on."""
    if t.kind == "scalar":
        return t.name != "record"
    return t.kind == "array" and t.name in _TEXT_SAFE_ARRAYS


_PRIVILEGES_SQL = """
SELECT r.rolcreaterole, r.rolcreatedb,
       pg_has_role(r.oid, 'pg_write_all_data', 'USAGE') AS write_all,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_%'
           AND (has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                OR has_any_column_privilege(r.oid, c.oid, 'INSERT, UPDATE'))) AS writable_tables,
       (SELECT count(*) FROM pg_namespace n
         WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
           AND has_schema_privilege(r.oid, n.oid, 'CREATE')) AS creatable_schemas
FROM pg_roles r WHERE r.rolname = $1
"""


async def privilege_warnings(conn: asyncpg.Connection, role: str) -> list[str]:
    """What ``role`` could do beyond reading, as warnings (empty for a proper reader).

    Superuser and BYPASSRLS are not warnings but start-up errors (_postgres_role.py); these are the
    rights the read-only transaction already neutralises, reported so an administrator notices.
    """
    row = await conn.fetchrow(_PRIVILEGES_SQL, role)
    out: list[str] = []
    fix = "run `sqlmode db grants --apply` and connect as the reader role it creates"
    if row is None:
        return out
    if row["rolcreaterole"] or row["rolcreatedb"]:
        out.append(f"database role {role!r} can create roles or databases")
    if row["write_all"]:
        out.append(f"database role {role!r} is a member of pg_write_all_data")
    if row["writable_tables"]:
        out.append(f"database role {role!r} can write to {row['writable_tables']} table(s); {fix}")
    if row["creatable_schemas"]:
        out.append(f"database role {role!r} can create objects in {row['creatable_schemas']} schema(s)")
    return out


class PostgresExecutor:
    """Read-only query execution on PostgreSQL through a pool of asyncpg connections (pool.py)."""

    dialect = "postgres"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.warnings: list[str] = []
        check_postgres_url(settings.database.url)  # a malformed URL is named before any use of it
        self._dsn = asyncpg_dsn(settings.database.url)
        self._target = describe_target(settings.database.url)
        self._pool: ReaderPool | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._server_timeout_ms = settings.code_mode.query_timeout_ms
        # Connections switched to plain codecs for one statement (see _prepare): discarded after.
        self._plain: weakref.WeakSet[Any] = weakref.WeakSet()
        # Connections that ran a statement which may have changed their session (session.py).
        self._dirty: weakref.WeakSet[Any] = weakref.WeakSet()
        self._columns: dict[tuple[Any, ...], list[ColumnMeta]] = {}
        # The role queries run as (_postgres_role.py): the login role, or database.reader_role switched
        # to per transaction with _begin_sql. ``privileged``: the development opt-out is in use.
        self.role: str | None = None
        self.login_role: str | None = None
        self.privileged = False
        self._begin_sql: str | None = None
        # What start() proved the role against (given, or reflected on the probe connection).
        self.snapshot: SchemaSnapshot | None = None
        # The leading-keyword text check; defence tests switch it off to show that the session
        # alone holds. Never switched off in production code.
        self._check_text = True

    # -- lifecycle ----------------------------------------------------------------------

    def _server_settings(self) -> dict[str, str]:
        db = self.settings.database
        out = {
            "application_name": "sqlmode",
            "DateStyle": "ISO, MDY",
            "default_transaction_read_only": "on",
            "statement_timeout": str(self._server_timeout_ms),
            "lock_timeout": str(db.lock_timeout_ms),
            "idle_in_transaction_session_timeout": str(db.idle_in_transaction_timeout_ms),
            "client_connection_check_interval": str(CLIENT_CHECK_INTERVAL_MS),
        }
        out.update(search_path(self.settings))
        return out

    async def start(self, snapshot: SchemaSnapshot | None = None) -> None:
        """Check the server, choose and prove the role queries run as, then open the pool.

        ``snapshot`` says what is blocked and exposed; when not given it is reflected on the probe
        connection (none of its own). The snapshot proved is kept as :attr:`snapshot`.
        """
        db = self.settings.database
        timeout = db.connect_timeout_ms / 1000
        settings = self._server_settings()
        try:
            # The query sessions' search path: format_type names types as queries resolve them.
            probe = await asyncpg.connect(
                self._dsn,
                timeout=timeout,
                server_settings={"application_name": "sqlmode", **search_path(self.settings)},
            )
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                raise
            # The first contact with the database: say why it failed and how to fix it.
            doing = "read the schema of" if snapshot is None else "connect to"
            raise explain_postgres_error(e, self.settings.database.url, doing) from e
        try:
            version = probe.get_server_version()
            if version < (14, 0):
                raise ConfigError(
                    f"sqlmode needs PostgreSQL 14 or newer; {self._target} runs "
                    f"{version.major}.{version.minor}",
                    key="database.url",
                )
            if snapshot is None:
                from ..schema import reflect_schema

                snapshot = await reflect_schema(self.settings, lambda: self._catalog(probe))
            self.snapshot = snapshot
            await self._choose_role(probe, snapshot)
            assert self.role is not None
            self.warnings += await privilege_warnings(probe, self.role)
        except asyncpg.PostgresError as e:
            raise map_pg_error(e, target=self._target) from e
        finally:
            await probe.close()
        for w in self.warnings:
            log.warning("sqlmode executor: %s", w)

        async def connect() -> asyncpg.Connection:
            # asyncpg's own per-command timeout stays off: the run() deadline governs.
            conn = await asyncpg.connect(
                self._dsn, timeout=timeout, server_settings=settings, command_timeout=None
            )
            try:
                await _init_connection(conn)
            except BaseException:
                conn.terminate()
                raise
            return conn

        self._pool = ReaderPool(connect, min_size=db.pool_min_size, max_size=db.pool_max_size)
        try:
            await self._pool.start()
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                raise
            raise map_pg_error(e, target=self._target) from e

    async def _choose_role(self, conn: asyncpg.Connection, snapshot: SchemaSnapshot) -> None:
        """The login role when it passes the proof, else database.reader_role; else ConfigError."""
        db = self.settings.database
        login = await conn.fetchval("SELECT current_user::text")
        self.login_role = login
        problems = await prove_role(conn, login, snapshot)
        if not problems:
            self.role, self._begin_sql = login, None
            return
        reader = db.reader_role
        why = describe_problems(login, problems)
        # Since PostgreSQL 16 a membership may carry SET without INHERIT; 'SET' asks exactly that.
        option = "SET" if conn.get_server_version() >= (16, 0) else "MEMBER"
        may_switch = await conn.fetchval(
            f"SELECT pg_has_role(current_user, oid, '{option}') FROM pg_catalog.pg_roles WHERE rolname = $1",
            reader,
        )
        if reader != login and may_switch:
            reader_problems = await prove_role(conn, reader, snapshot)
            if not reader_problems:
                self.role = reader
                self._begin_sql = f"BEGIN READ ONLY; SET LOCAL ROLE {_ident(reader)}"
                log.info("sqlmode executor: login role %r %s: queries run as %r", login, why, reader)
                return
            message = (
                f"queries cannot run safely as database.reader_role {reader!r}: "
                f"{describe_problems(reader, reader_problems)}"
            )
            fix = fix_for(reader_problems)
        elif reader == login:
            message, fix = f"queries cannot run safely as the login role: {why}", fix_for(problems)
        else:
            state = "does not exist" if may_switch is None else f"is not granted to {login!r}"
            message = (
                f"the login role cannot serve queries ({why}) and database.reader_role "
                f"{reader!r}, which sqlmode would switch to, {state}"
            )
            fix = (
                "run `sqlmode db grants --apply` as an administrator (it creates the reader role and "
                "grants it to the login role), or put the reader's URL in database.url"
            )
        if db.allow_privileged_role:
            self.privileged = True
            self.role, self._begin_sql = login, None
            self.warnings.append(
                f"database.allow_privileged_role is on: queries run as {login!r}, which the database "
                f"does not stop at blocked data ({message}); development only"
            )
            return
        raise ConfigError(
            f"{message}. Fix: {fix}.",
            key="database.url",
            code="READER_ROLE_UNSAFE",
            hint=f"{fix}; database.allow_privileged_role = true skips this check (development only)",
        )

    async def _catalog(self, conn: Any) -> tuple[list[Any], str]:
        """The reflected tables and the database name, read on ``conn`` as the login role."""
        from ._postgres_reflect import database_name, reflect_postgres

        def fetch(sql: str, args: list[Any]) -> Any:
            # Plain driver values: a pooled session's text codecs are bypassed.
            return conn._execute(sql, args, 0, None, ignore_custom_codec=True)

        return await reflect_postgres(self.settings, fetch), database_name(self.settings.database.url)

    async def reflect(self) -> SchemaSnapshot:
        """The schema reflected again on a pooled session (a refresh opens no connection).

        As the login role, like at start-up, so the snapshot does not change with the role: every
        role reads the same catalog rows, and the session's search path is the query sessions'.
        The session is read-only and under statement_timeout; the statements are ours.
        """
        from ..schema import reflect_schema

        async def catalog() -> tuple[list[Any], str]:
            conn = await self._acquire()
            discard = True
            try:
                out = await self._catalog(conn)
                discard = conn.is_in_transaction()
                return out
            finally:
                self._release(conn, discard=discard)

        return await reflect_schema(self.settings, catalog)

    async def check_access(self, snapshot: SchemaSnapshot) -> None:
        """Prove again, after a schema refresh, that the query role reads nothing blocked (ConfigError)."""
        if self.privileged or self.role is None:
            return
        conn = await self._acquire()
        discard = True
        try:
            problems = await prove_role(conn, self.role, snapshot)
            discard = conn.is_in_transaction()
        except pgerr.PostgresError as e:
            discard = conn.is_closed()
            raise map_pg_error(e, target=self._target) from e
        finally:
            self._release(conn, discard=discard)
        # A column or table added since start-up that the role cannot read is no leak: queries
        # that use it get the database's PERMISSION_DENIED until the grants are run again.
        missing = [p for p in problems if p.kind == "not_granted"]
        if missing:
            log.warning(
                "sqlmode executor: %s; run `sqlmode db grants --apply`", describe_problems(self.role, missing)
            )
        problems = [p for p in problems if p.kind != "not_granted"]
        if problems:
            fix = fix_for(problems)
            raise ConfigError(
                f"queries cannot run safely as {self.role!r} any more: "
                f"{describe_problems(self.role, problems)}. Fix: {fix}.",
                key="database.url",
                code="READER_ROLE_UNSAFE",
                hint=fix,
            )

    async def close(self) -> None:
        """Wait for background releases, then close the pool."""
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=5)
            except (TimeoutError, Exception):
                pool.terminate()

    # -- connections --------------------------------------------------------------------

    async def _acquire(self) -> Any:
        """A read-only pooled session; driver failures become sqlmode errors naming the target."""
        assert self._pool is not None, "executor is not started"
        for _ in range(3):
            try:
                conn = await self._pool.acquire()
            except (SqlmodeError, asyncio.CancelledError):
                raise
            except BaseException as e:
                raise map_pg_error(e, target=self._target) from e
            # The server reports this setting on every change; a session where it is off (which
            # the background reset should have made impossible) is never used.
            if getattr(conn.get_settings(), "default_transaction_read_only", None) == "on":
                return conn
            log.error("sqlmode executor: discarding a session that is not read-only")
            self._release(conn, discard=True)
        raise DatabaseUnavailableError("Could not get a read-only database session.")

    def _release(self, conn: asyncpg.Connection, *, discard: bool) -> None:
        """Give the connection back: at once when clean, after a background reset when dirty."""
        pool = self._pool
        if pool is None:
            conn.terminate()
            return
        if discard or conn.is_closed():
            task = asyncio.get_running_loop().create_task(self._discard(pool, conn))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif self._begin_sql is not None and conn.is_in_transaction():
            # The role switch ends with the transaction; ROLLBACK also undoes any setting the
            # query changed, but not session advisory locks: the reset still follows when dirty.
            cleanup = "ROLLBACK"
            if conn in self._dirty:
                self._dirty.discard(conn)
                cleanup += "; " + RESET_SQL
            pool.release_after(conn, lambda: conn.execute(cleanup))
        elif conn in self._dirty:
            self._dirty.discard(conn)
            pool.release_after(conn, lambda: conn.execute(RESET_SQL))
        else:
            pool.release(conn)

    async def _discard(self, pool: ReaderPool, conn: asyncpg.Connection) -> None:
        if not conn.is_closed():
            # Let asyncpg's cancel request for the running statement reach the server before
            # the socket closes; the statement stops either way (client connection check).
            pending = [t for t in getattr(conn, "_cancellations", ()) if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=CANCEL_GRACE_S)
        pool._forget(conn)

    # -- queries ------------------------------------------------------------------------

    async def run(self, sql: str, max_rows: int | None = None, timeout_ms: int | None = None) -> QueryResult:
        """Run one read query under the row and time limits."""
        rows_cap, ms = effective_limits(self.settings, max_rows, timeout_ms)
        if self._check_text:
            check_read_query(sql)
        t0 = time.perf_counter()
        records, attrs, text_codecs = await self._with_deadline(ms, self._fetch, sql, rows_cap + 1, ms)
        truncated = len(records) > rows_cap
        if truncated:
            del records[rows_cap:]
        plan = postgres_plan(tuple(a.type for a in attrs), self.settings.database.max_cell_bytes, text_codecs)
        # The driver's rows are released chunk by chunk as they are converted: held once, not twice.
        rows = convert_consuming(records, plan)
        # Built without re-validating every cell: the rows were just made JSON-safe above.
        columns = self._columns.get(attrs)
        if columns is None:
            if len(self._columns) > 512:
                self._columns.clear()
            columns = self._columns[attrs] = [ColumnMeta(name=a.name, type=a.type.name) for a in attrs]
        return QueryResult.model_construct(
            columns=list(columns),
            rows=rows,
            row_count=len(rows),
            truncated=truncated,
            elapsed_ms=round((time.perf_counter() - t0) * 1000, 3),
            code_hash="",
        )

    async def _with_deadline(self, ms: int, fn: Any, *args: Any) -> Any:
        try:
            async with asyncio.timeout(ms / 1000):
                return await fn(*args)
        except TimeoutError as e:
            raise QueryTimeoutError(f"The query ran longer than its {ms} ms limit and was cancelled.") from e

    async def _fetch(self, sql: str, limit: int, ms: int) -> tuple[list[Any], tuple[Any, ...], bool]:
        conn = await self._acquire()
        raw = conn
        begin = self._begin(ms)
        if (begin is None and ms < self._server_timeout_ms) or may_change_session(sql):
            self._dirty.add(raw)
        discard = True
        try:
            if begin is not None:
                await conn.execute(begin)
            elif ms < self._server_timeout_ms:
                await conn.execute(f"SET statement_timeout = {int(ms)}")
            result = await self._execute(conn, sql, limit, begin)
            # A statement that leaves a transaction open would make the next one run in it (and one
            # that ended the switched role's transaction ran its end as someone else): discarded.
            discard = raw.is_in_transaction() != (begin is not None) or raw in self._plain
            return result
        except NotAQueryError:
            discard = False
            raise
        except pgerr.PostgresError as e:
            discard = raw.is_closed()
            raise map_pg_error(e, timeout_ms=ms, target=self._target, sql=sql) from e
        except _CONNECTION_ERRORS as e:
            # No retry: the statement may have been running (a DBA may have killed it on purpose).
            # The dead connection is dropped; the next call gets a new one.
            raise map_pg_error(e, target=self._target) from e
        except Exception as e:
            # asyncpg's own refusals, e.g. a result type it cannot decode (anyarray).
            raise ExecutionError(
                f"The result could not be read: {e}",
                hint="Cast unusual columns to text (col::text) and validate the query again.",
            ) from e
        finally:
            self._release(conn, discard=discard)

    def _begin(self, ms: int) -> str | None:
        """The one message that opens a query's transaction as the reader role (None: logged in as it).

        BEGIN READ ONLY, SET LOCAL ROLE and a lowered statement_timeout go in one simple-query
        message, so the switch costs one round trip; the ROLLBACK that ends it is sent when the
        connection goes back to the pool, off the caller's path.
        """
        if self._begin_sql is None:
            return None
        if ms < self._server_timeout_ms:
            return f"{self._begin_sql}; SET LOCAL statement_timeout = {int(ms)}"
        return self._begin_sql

    async def _execute(
        self, conn: Any, sql: str, limit: int, begin: str | None = None
    ) -> tuple[list[Any], tuple[Any, ...], bool]:
        # asyncpg has no public "prepare from the cache, inspect, then fetch N rows" call; these
        # private calls are what Connection.fetch/fetchrow do internally (asyncpg 0.30+).
        for retry in (True, False):
            try:
                stmt, text_codecs = await self._prepare(conn, sql)
                attrs = stmt._get_attributes()
                if not attrs:
                    raise NotAQueryError(
                        "Only statements that return rows can run here; this one returns none "
                        "(a command such as SET, BEGIN or PREPARE)."
                    )
                records, _status, _ = await conn._protocol.bind_execute(stmt, [], "", limit, True, None)
                return records, attrs, text_codecs
            except (pgerr.InvalidCachedStatementError, pgerr.OutdatedSchemaCacheError):
                # The schema changed under a cached statement: drop the cache, prepare again once
                # (in a new transaction as the reader: the failed statement aborted this one).
                if not retry:
                    raise
                if begin is not None:
                    await conn.execute(f"ROLLBACK; {begin}")
                await conn.reload_schema_state()
        raise AssertionError("unreachable")

    async def _prepare(self, conn: Any, sql: str) -> tuple[Any, bool]:
        """The cached prepared statement, with the pool's text codecs when its result allows them."""
        try:
            stmt = await _statement(conn, sql)
        except pgerr.UnsupportedClientFeatureError:  # a range over a text-decoded type
            return await self._plain_statement(conn, sql), False
        if all(_text_codec_safe(a.type) for a in stmt._get_attributes()):
            return stmt, True
        return await self._plain_statement(conn, sql), False

    async def _plain_statement(self, conn: Any, sql: str) -> Any:
        # asyncpg decodes values nested in records and ranges with the connection's codecs and in
        # binary (its ignore_custom_codec flag does not reach them), so this connection goes back
        # to plain codecs for the statement and is discarded afterwards; the next connection has
        # the text codecs again. Costs a few round trips, for records and ranges only.
        self._plain.add(conn)
        for name in (*sorted(PG_TEXT_TYPES), "interval"):
            await conn.reset_type_codec(name, schema="pg_catalog")
        return await _statement(conn, sql)

    async def explain(self, sql: str) -> dict[str, Any]:
        """``EXPLAIN (VERBOSE, FORMAT JSON)`` of a read query, in a read-only session: the plan dict."""
        check_read_query(sql)
        ms = self.settings.code_mode.query_timeout_ms
        records, _, _ = await self._with_deadline(
            ms, self._fetch_explain, "EXPLAIN (VERBOSE, FORMAT JSON) " + sql, ms
        )
        doc = records[0][0]
        data = json.loads(doc) if isinstance(doc, str) else doc
        return data[0] if isinstance(data, list) else data

    async def _fetch_explain(self, sql: str, ms: int) -> tuple[list[Any], tuple[Any, ...], bool]:
        return await self._fetch(sql, 1, ms)

    async def catalog_query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A trusted catalog query with parameters, as the reader in a read-only session."""
        ms = self.settings.code_mode.query_timeout_ms

        async def go() -> list[tuple[Any, ...]]:
            conn = await self._acquire()
            raw = conn
            if may_change_session(sql):
                self._dirty.add(raw)
            begin = self._begin(ms)
            discard = True
            try:
                if begin is not None:
                    await conn.execute(begin)
                # Plain driver values (Decimal, datetime, ...): the pool's text codecs are bypassed.
                rows = await conn._execute(sql, list(params), 0, None, ignore_custom_codec=True)
                discard = raw.is_in_transaction() != (begin is not None)
                return [tuple(r) for r in rows]
            except pgerr.PostgresError as e:
                discard = raw.is_closed()
                raise map_pg_error(e, timeout_ms=ms, target=self._target) from e
            except _CONNECTION_ERRORS as e:
                raise map_pg_error(e, target=self._target) from e
            finally:
                self._release(conn, discard=discard)

        return await self._with_deadline(ms, go)

    # -- introspection for tests and diagnostics ------------------------------------------

    @property
    def pool(self) -> ReaderPool | None:
        return self._pool
