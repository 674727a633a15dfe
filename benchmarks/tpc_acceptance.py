"""How many TPC-H and TPC-DS queries validate_code accepts with the default limits.

    PYTHONPATH=$PWD python benchmarks/tpc_acceptance.py [duckdb] [postgres]

Goes through the whole service (analyzer, the database's own check, policies), on the TPC
schemas of tests/fixtures/legit/tpc filled with the corpus test's synthetic rows: a DuckDB
file and an embedded PostgreSQL. Prints every refusal and the acceptance per engine.
Acceptance, not speed: not part of benchmarks/run.py.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmode.config import settings_from_dict  # noqa: E402
from sqlmode.service import CodeModeService  # noqa: E402
from tests.analyze.test_corpus import BENCHES, corpus, load_statements  # noqa: E402

SECRET = "tpc-acceptance-" + "x" * 32


def _settings(url: str, folder: str) -> Any:
    return settings_from_dict(
        {
            "database": {"url": url},
            "code_mode": {"token_secret": SECRET},
            "audit": {"path": f"{folder}/audit.jsonl"},
        }
    )


async def _validate_all(engine: str, bench: str, settings: Any, tally: dict[str, Any]) -> None:
    async with CodeModeService(settings) as svc:
        for case in corpus(bench):
            v = await svc.validate(case.sql)
            tally["total"] += 1
            if v.is_valid:
                tally["accepted"] += 1
                continue
            tally["codes"].update(x.code for x in v.violations)
            print(f"  {engine} {case.name}: " + "; ".join(f"{x.code} {x.message}" for x in v.violations))


async def measure_duckdb() -> dict[str, Any]:
    import duckdb

    tally: dict[str, Any] = {"total": 0, "accepted": 0, "codes": collections.Counter()}
    for bench in BENCHES:
        folder = tempfile.mkdtemp(prefix="sqlmode-tpc-")
        path = f"{folder}/{bench}.duckdb"
        con = duckdb.connect(path)
        for statement in load_statements(bench):
            con.execute(statement)
        con.close()
        await _validate_all("duckdb", bench, _settings(f"duckdb:///{path}", folder), tally)
    return tally


async def measure_postgres() -> dict[str, Any]:
    import asyncpg

    from tests.plugins.postgres import apply_sample_grants, start_embedded_postgres, with_database

    tally: dict[str, Any] = {"total": 0, "accepted": 0, "codes": collections.Counter()}
    server = start_embedded_postgres()
    try:
        admin = await asyncpg.connect(server.admin_url)
        for bench in BENCHES:
            await admin.execute(f'CREATE DATABASE "tpc_{bench}"')
            url = with_database(server.admin_url, f"tpc_{bench}")
            conn = await asyncpg.connect(url)
            for statement in load_statements(bench):
                await conn.execute(statement)
            await conn.execute("ANALYZE")
            await conn.close()
            # As in production: the least-privilege reader role `sqlmode db grants --apply`
            # creates (sqlmode refuses to serve queries as the superuser).
            folder = tempfile.mkdtemp()
            reader = await apply_sample_grants(url, _settings(url, folder))
            await _validate_all("postgres", bench, _settings(reader, folder), tally)
        await admin.close()
    finally:
        server.stop()
    return tally


def main() -> None:
    engines = sys.argv[1:] or ["duckdb", "postgres"]
    for engine in engines:
        tally = asyncio.run(measure_duckdb() if engine == "duckdb" else measure_postgres())
        share = 100.0 * tally["accepted"] / max(tally["total"], 1)
        counts = f"{tally['accepted']}/{tally['total']}"
        print(f"{engine}: {counts} accepted ({share:.1f}%); refusals {dict(tally['codes'])}")


if __name__ == "__main__":
    main()
