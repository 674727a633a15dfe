"""Helpers for the first-contact tests: run the real CLI, make real bad targets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]


def sqlmode(
    *args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``python -m sqlmode ARGS`` with a clean environment (no SQLMODE_* or CODE_MODE_SECRET leaks in)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SQLMODE_", "CODE_MODE_"))}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "sqlmode", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


def assert_clean_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, an ``error:`` line and a ``hint:`` line, the needles in stderr, and no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    assert r.stderr.startswith("error: ") or "\nerror: " in r.stderr, r.stderr
    assert "\nhint: " in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def sql(url: str, *statements: str) -> list[list[asyncpg.Record]]:
    conn = await asyncpg.connect(url)
    try:
        return [await conn.fetch(s) for s in statements]
    finally:
        await conn.close()


def socket_dir(url: str) -> str | None:
    return parse_qs(urlsplit(url).query).get("host", [None])[0]


@contextlib.asynccontextmanager
async def scram_roles(admin_url: str, *roles: str) -> AsyncIterator[None]:
    """Make ``roles`` authenticate with their password on the test server (it trusts everyone else).

    The rules go first in pg_hba.conf and are removed afterwards; other tests are unaffected.
    """
    ((hba,),) = await sql(admin_url, "SHOW hba_file")
    path = Path(hba[0])
    original = await asyncio.to_thread(path.read_text)
    rules = "".join(f"local all {r} scram-sha-256\nhost all {r} 127.0.0.1/32 scram-sha-256\n" for r in roles)
    await asyncio.to_thread(path.write_text, rules + original)
    await sql(admin_url, "SELECT pg_reload_conf()")
    try:
        yield
    finally:
        current = await asyncio.to_thread(path.read_text)
        await asyncio.to_thread(path.write_text, current.replace(rules, "", 1))
        await sql(admin_url, "SELECT pg_reload_conf()")
