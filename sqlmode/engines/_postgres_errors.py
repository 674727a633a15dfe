"""PostgreSQL connection failures as one clear error with a specific hint, and URL checks.

Each driver error becomes a :class:`DatabaseUnavailableError` whose code says which
(``DATABASE_NOT_FOUND``, ``DATABASE_AUTH_FAILED``, ``DATABASE_UNREACHABLE``,
``DATABASE_URL_INVALID``, ...) and whose hint says what to do. Messages name the target as
``host:port/db`` (never the password).
"""

from __future__ import annotations

import errno
import socket
from urllib.parse import parse_qs, unquote, urlsplit

from ..dberrors import URL_HINT, loose_redact, redact_url, root_causes
from ..errors import DatabaseUnavailableError, SqlmodeError

__all__ = ["check_postgres_url", "describe_target", "explain_postgres_error"]


def describe_target(url: str) -> str:
    """``host:port/db`` of a Postgres URL, for messages (no credentials)."""
    try:
        p = urlsplit(url)
        query = parse_qs(p.query)
        host = p.hostname or query.get("host", ["localhost (local socket)"])[0]
        port = p.port or int(query.get("port", ["5432"])[0])
    except ValueError:
        return redact_url(url)
    db = unquote(p.path.lstrip("/")) or (p.username or "")
    return f"{db!r} on the local socket {host}" if host.startswith("/") else f"{host}:{port}/{db}"


def _parts(url: str) -> tuple[str, int, str, str]:
    p = urlsplit(url)
    query = parse_qs(p.query)
    host = p.hostname or query.get("host", ["localhost"])[0]
    try:
        port = p.port or int(query.get("port", ["5432"])[0])
    except ValueError:
        port = 5432
    user = unquote(p.username or "") or query.get("user", [""])[0]
    db = unquote(p.path.lstrip("/")) or query.get("dbname", [""])[0] or user
    return host, port, user, db


def check_postgres_url(url: str) -> None:
    """Raise DATABASE_URL_INVALID, saying what is wrong, for a Postgres URL that cannot work."""

    def bad(why: str) -> DatabaseUnavailableError:
        return DatabaseUnavailableError(
            f"the database URL {loose_redact(url)} is malformed: {why}",
            code="DATABASE_URL_INVALID",
            hint=URL_HINT,
        )

    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme.split("+", 1)[0] not in ("postgres", "postgresql"):
        raise bad(f"it must start with postgresql:// (found {scheme + '://' if scheme else 'no scheme'})")
    try:
        p = urlsplit(url)
    except ValueError as e:
        raise bad(str(e)) from None
    if p.fragment or ("#" in url):
        raise bad("it contains '#' (in a password, write it as %23)")
    try:
        p.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        port = p.netloc.rpartition("@")[2].rpartition(":")[2]
        raise bad(
            f"the port {port!r} is not a number from 0 to 65535 (an unencoded ':' or '@' in the "
            "password also looks like this)"
        ) from None
    if p.netloc.count("@") > 1:
        raise bad("it contains more than one '@' (in a password, write @ as %40)")
    if p.path.count("/") > 1:
        raise bad(f"the database name {p.path[1:]!r} contains '/' (write one database name after the host)")


def explain_postgres_error(e: BaseException, url: str, doing: str) -> SqlmodeError:
    """The clearest SqlmodeError for a failure talking to the PostgreSQL database at ``url``."""
    try:
        check_postgres_url(url)
    except SqlmodeError as bad:
        return bad
    host, port, user, db = _parts(url)
    target = f"{db!r} on the local socket {host}" if host.startswith("/") else f"{host}:{port}/{db}"
    for x in root_causes(e):
        sqlstate = getattr(x, "sqlstate", None)
        text = str(x).strip() or type(x).__name__
        if sqlstate == "3D000":
            return DatabaseUnavailableError(
                f"could not {doing} {target}: database {db!r} does not exist",
                code="DATABASE_NOT_FOUND",
                hint=(
                    f"Create it (as an administrator: CREATE DATABASE {_ident(db)}; or the shell: "
                    f"createdb -h {host} -p {port} {db}), or fix the database name in the URL."
                ),
            )
        if sqlstate in ("28P01", "28000"):
            what = "the password was refused" if sqlstate == "28P01" else text
            return DatabaseUnavailableError(
                f"could not {doing} {target} as {user or 'the default user'!r}: {what}",
                code="DATABASE_AUTH_FAILED",
                hint=(
                    "Check the user name and password in the URL (percent-encode special characters, "
                    "e.g. @ as %40), and that the server's pg_hba.conf lets this user connect."
                ),
            )
        if sqlstate == "42501" or (sqlstate or "").startswith("28"):
            return DatabaseUnavailableError(
                f"could not {doing} {target} as {user!r}: {text}",
                code="DATABASE_AUTH_FAILED",
                hint="Connect as a role with the needed rights (for `db grants --apply`: an administrator).",
            )
        if isinstance(x, socket.gaierror):
            return DatabaseUnavailableError(
                f"could not {doing} {target}: the host name {host!r} cannot be resolved",
                code="DATABASE_UNREACHABLE",
                hint="Check the host name in the URL (a typo, or a name only known inside another network).",
            )
        if isinstance(x, ConnectionRefusedError) or (
            isinstance(x, OSError) and x.errno in (errno.ECONNREFUSED, errno.ENOENT)
        ):
            return DatabaseUnavailableError(
                f"could not {doing} {target}: nothing listens at {host}:{port}",
                code="DATABASE_UNREACHABLE",
                hint=f"Start PostgreSQL, or fix the host and port in the URL (is a server at {host}:{port}?)",
            )
        if isinstance(x, TimeoutError) or (
            isinstance(x, OSError) and x.errno in (errno.ETIMEDOUT, errno.EHOSTUNREACH)
        ):
            return DatabaseUnavailableError(
                f"could not {doing} {target}: no answer from {host}:{port} in time",
                code="DATABASE_UNREACHABLE",
                hint="Check that the host is reachable from here (firewall, VPN) and the port is right.",
            )
        if sqlstate is not None and sqlstate.startswith(("08", "53", "57")):
            return DatabaseUnavailableError(
                f"could not {doing} {target}: {text}",
                code="DATABASE_UNREACHABLE",
                hint="The server refused or dropped the connection; check its state and connection limits.",
            )
    first = e if not isinstance(e, SqlmodeError) else (e.__cause__ or e)
    return DatabaseUnavailableError(
        f"could not {doing} {target}: {type(first).__name__}: {first}",
        hint="Check the URL and that the server accepts connections from here (run with -v for details).",
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"' if not name.isidentifier() or name != name.lower() else name
