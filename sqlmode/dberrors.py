"""Database connection failures as one clear error with a specific hint, for every command.

A user pointing sqlmode at their own database meets the driver's errors first: a database that
does not exist, a wrong password, nothing listening, a malformed URL. Each becomes a
:class:`DatabaseUnavailableError` whose code says which (``DATABASE_NOT_FOUND``,
``DATABASE_AUTH_FAILED``, ``DATABASE_UNREACHABLE``, ``DATABASE_URL_INVALID``, ...) and whose hint
says what to do. Messages name the target as ``host:port/db`` (never the password).

Each engine explains its own driver's failures (``Engine.connect_error``); the helpers here are
shared by all of them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .engines.base import engine_for_url
from .errors import SqlmodeError

__all__ = ["URL_HINT", "explain_db_error", "loose_redact", "redact_url", "root_causes"]

URL_HINT = (
    "Write postgresql://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode @ : / # ? % in the password, "
    "e.g. @ as %40), or duckdb:///relative/file.duckdb, duckdb:////absolute/file.duckdb."
)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    try:
        p = urlsplit(url)
        if p.password is None:
            return url
        user = p.username or ""
        host = p.netloc.rpartition("@")[2]
        return p._replace(netloc=f"{user}:***@{host}").geturl()
    except ValueError:
        return url.split("@")[-1] if "@" in url else url


def loose_redact(url: str) -> str:
    """A URL that may not parse, shown without anything that could be part of a password."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def root_causes(e: BaseException) -> list[BaseException]:
    """The exception and what it wraps (a wrapper's .orig, __cause__, __context__), outermost first."""
    out: list[BaseException] = []
    todo: list[BaseException | None] = [e]
    while todo:
        x = todo.pop(0)
        if x is None or any(x is y for y in out):
            continue
        out.append(x)
        todo += [getattr(x, "orig", None), x.__cause__, x.__context__]
    return out


def explain_db_error(e: BaseException, url: str, *, doing: str = "connect to") -> SqlmodeError:
    """The clearest SqlmodeError for a failure talking to the database at ``url``."""
    if isinstance(e, SqlmodeError) and e.code != "SCHEMA_ERROR":
        return e
    try:
        engine = engine_for_url(url)
    except SqlmodeError as unknown:
        return unknown
    return engine.connect_error(e, url, doing)


def as_sqlmode_error(e: BaseException, url: str | None) -> SqlmodeError:
    """Any failure as one clear error: itself, the database's explained (``url``), else an internal one."""
    if isinstance(e, SqlmodeError):
        return e
    if url and _looks_like_db_error(e, url):
        return explain_db_error(e, url)
    return SqlmodeError(
        f"{type(e).__name__}: {e}",
        code="INTERNAL_ERROR",
        hint="Run again with `sqlmode -v ...` for the details, and report it if it is not your setup.",
    )


def _looks_like_db_error(e: BaseException, url: str) -> bool:
    try:
        drivers = engine_for_url(url).traits.driver_modules
    except SqlmodeError:
        drivers = ()
    mod = type(e).__module__
    return isinstance(e, OSError | TimeoutError) or mod.startswith(drivers)
