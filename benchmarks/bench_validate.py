"""Validation cost: sqlglot's parse alone vs the full analysis vs the whole validate_code path.

Side by side in one run, per dialect:
- floors: sqlglot ``parse_one`` (sqlglotc-compiled), the engine's own parser (pglast / DuckDB
  ``extract_statements``), an fsync of one audit-sized line;
- components: ``Analyzer.analyze``, the Cedar decision, token mint + verify, one audit append;
- the whole path: ``CodeModeService.validate`` (analysis, engine confirmation, Cedar, token,
  audit), and beside it the same with the audit log off (the engine confirmation's share is
  bench_confirm.py's).
Corpora: typical analyst queries over the sample warehouse, six-table TPC-H queries; growth with
schema size (10, 100, 1,000 tables) and with query size.

    python benchmarks/bench_validate.py [--quick]
"""

from __future__ import annotations

import os
import tempfile
import time
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

import sqlglot
from common import Budget, Results, Stats, Target, abench, ainterleaved, bench
from env import BenchEnv
from queries import (
    TPCH,
    TPCH_DDL,
    TYPICAL,
    TYPICAL_NAME,
    grown_query,
    synthetic_ddl,
    synthetic_query,
    synthetic_six_table_query,
    synthetic_tables,
    tpch_tables,
)

from sqlmode.analyze import Analyzer
from sqlmode.schema import SchemaSnapshot
from sqlmode.service import CodeModeService

GROUP = "validation"
T_ANALYZE = Target("<", 1.0, "ms", "analysis target")
T_TPCH = Target("<", 3.0, "ms", "analysis target")


# Settings for corpora outside the sample warehouse: nothing blocked, limits out of the way, so the
# figures measure the cost of analysing the query and not an early refusal.
def open_policy(url: str) -> dict[str, Any]:
    """Config overrides for ``url`` with nothing blocked and the limits out of the way."""
    return {
        "database": {"url": url, "tables": []},
        "code_mode": {"blocked_tables": [], "blocked_fields": [], "max_joins": 32, "max_complexity": 100000},
    }


# A Postgres URL the analyzer only reads the dialect from (nothing connects to it).
PG_DIALECT_URL = "postgresql://bench@127.0.0.1:1/analysis_only"


def engine_parser(dialect: str) -> Any:
    """The engine's own parser as a callable: pglast for Postgres, DuckDB's extract_statements."""
    if dialect == "postgres":
        import pglast

        return pglast.parser.parse_sql
    import duckdb

    con = duckdb.connect(":memory:")
    return con.extract_statements


def _valid(analysis: Any) -> bool:
    return bool(getattr(analysis, "ok", not getattr(analysis, "violations", [])))


async def _service_validate(service: CodeModeService, sql: str) -> Any:
    return await service.validate(sql, user=None, session="bench")


async def typical_corpus(env: BenchEnv, results: Results, dialect: str, settings: Any) -> None:
    """Floors, components and the whole path for the sample-warehouse corpus in one dialect."""
    b = results.budget
    d = dialect
    corpus = TYPICAL[:2] if results.tiny else TYPICAL[:4] if results.quick else TYPICAL
    async with CodeModeService(settings) as service:
        snapshot = await service.schema()
        analyzer = service.analyzer
        principal = service.principal(None, "bench", None)
        eparse = engine_parser(d)
        per_query: dict[str, dict[str, float]] = {}
        later: tuple[str, Budget, Stats] = ("", b, Stats(0, 0, 0, 0, 0, 0, 0, 0, 0))
        for name, sql in corpus:
            head = name == TYPICAL_NAME
            bb = b if head else b.scaled(0.5)
            s_parse = bench(partial(sqlglot.parse_one, sql, read=d), bb)
            s_analyze = bench(partial(analyzer.analyze, sql, snapshot), bb)
            s_validate = await abench(lambda sql=sql: _service_validate(service, sql), bb)
            analysis = analyzer.analyze(sql, snapshot)
            v = await _service_validate(service, sql)
            per_query[name] = {
                "parse_ms": s_parse.median,
                "analyze_ms": s_analyze.median,
                "validate_ms": s_validate.median,
                "valid": bool(v.is_valid),
                "chars": len(sql),
            }
            if not v.is_valid:
                results.error(
                    "bench_validate",
                    f"{d}/{name} was rejected: {[x.code for x in v.violations]} (timed anyway)",
                )
            if not head:
                continue
            p = f"validate.{d}.typical"
            results.add(f"{p}.parse", GROUP, f"{d}: sqlglot parse alone (typical query)", s_parse)
            s_eparse = bench(partial(eparse, sql), bb)
            results.add(f"{p}.engine_parse", GROUP, f"{d}: engine parser alone", s_eparse)
            results.add(
                f"{p}.analyze",
                GROUP,
                f"{d}: full analysis, repeated SQL (typical query)",
                s_analyze,
                floor=f"{p}.parse",
                target=T_ANALYZE,
                headline=True,
            )
            s_cedar = bench(partial(service.evaluator.evaluate, principal, analysis), bb)
            # Components of this query's path; the Cedar and token targets are bench_governance.py's.
            results.add(f"{p}.cedar", GROUP, f"{d}: Cedar decision for this query", s_cedar)
            s_token = bench(lambda: _mint_verify(service, snapshot, principal), bb)
            results.add(f"{p}.token", GROUP, f"{d}: token mint + verify for this query", s_token)
            results.add(
                f"{p}.validate",
                GROUP,
                f"{d}: validate_code in process, repeated SQL (typical query)",
                s_validate,
                floor=f"{p}.parse",
                note="the same SQL every call (caches warm); the novel figure is bench_novel.py's",
            )
            later = (sql, bb, s_validate)
        vals = [q["validate_ms"] for q in per_query.values()]
        anas = [q["analyze_ms"] for q in per_query.values()]
        results.add(
            f"validate.{d}.corpus.analyze",
            GROUP,
            f"{d}: analysis, median over {len(per_query)} analyst queries",
            value=median(anas),
            target=T_ANALYZE,
            range_ms=[min(anas), max(anas)],
            queries=per_query,
        )
        results.add(
            f"validate.{d}.corpus.validate",
            GROUP,
            f"{d}: validate_code, repeated SQL, median over {len(per_query)} analyst queries",
            value=median(vals),
            range_ms=[min(vals), max(vals)],
        )
    sql, bb, _ = later
    await variants(results, settings, d, sql, bb)


def _mint_verify(service: CodeModeService, snapshot: SchemaSnapshot, principal: Any) -> None:
    kw = {
        "code_hash": "0" * 64,
        "user": principal.user,
        "session": principal.session,
        "schema_hash": snapshot.schema_hash,
        "policy_hash": service.evaluator.policy_hash,
    }
    token, _ = service.tokens.mint(**kw, action="read", risk="low")
    service.tokens.verify(token, **kw)


def _variant(settings: Any, **code_mode: Any) -> Any:
    out = settings.model_copy(deep=True)
    for k, v in code_mode.items():
        if k == "audit":
            out.audit.enabled = v
        else:
            setattr(out.code_mode, k, v)
    return out


async def variants(results: Results, settings: Any, dialect: str, sql: str, budget: Budget) -> None:
    """validate_code with and without the audit log, side by side in rotation (same query again).

    The engine confirmation's share (confirmation target) is bench_confirm.py's.
    """
    p = f"validate.{dialect}.typical"
    async with (
        CodeModeService(settings) as full,
        CodeModeService(_variant(settings, audit=False)) as no_audit,
    ):
        st = await ainterleaved(
            [
                ("full", lambda: _service_validate(full, sql), None),
                ("no_audit", lambda: _service_validate(no_audit, sql), None),
            ],
            budget,
        )
    results.add(
        f"{p}.validate_warm",
        GROUP,
        f"{dialect}: validate_code with the audit log on (in rotation)",
        st["full"],
    )
    results.add(
        f"{p}.validate_no_audit",
        GROUP,
        f"{dialect}: validate_code with the audit log off (typical query)",
        st["no_audit"],
        floor=f"{p}.validate_warm",
        headline=True,
        note="not a supported configuration; shows what the fsync'ed audit record costs",
    )


def audit_floor(results: Results, env: BenchEnv) -> None:
    """An fsync'ed append of one audit-sized line (the floor of the audit step) vs sqlmode's AuditLog.

    Both in the folder the services' audit logs use, so the file system is the same.
    """
    from sqlmode.audit import AuditLog

    b = results.budget.scaled(0.5)
    with tempfile.TemporaryDirectory(dir=env.audit_dir()) as tmp:
        line = b'{"event":"validate","user":"local","session":"bench","code":"' + b"x" * 200 + b'"}\n'
        with open(Path(tmp) / "raw.jsonl", "ab") as fh:

            def raw() -> None:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())

            s_raw = bench(raw, b, batch=False)
        results.add("validate.audit.fsync", GROUP, "floor: write + fsync of one 250-byte line", s_raw)
        log = AuditLog(Path(tmp) / "audit.jsonl")
        try:
            event = {
                "event": "validate",
                "user": "local",
                "session": "bench",
                "code": "x" * 200,
                "decision": "allowed",
            }
            s_log = bench(lambda: log.append(event), b, batch=False)
        finally:
            log.close()
        results.add(
            "validate.audit.append",
            GROUP,
            "AuditLog.append (hash chain, fsync, head anchor)",
            s_log,
            floor="validate.audit.fsync",
        )


def tpch_schema_path(env: BenchEnv) -> Path:
    """The TPC-H tables, empty, in a DuckDB file (built once)."""
    import duckdb

    path = env.work_dir / "tpch-schema.duckdb"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        con = duckdb.connect(str(tmp))
        for ddl in TPCH_DDL:
            con.execute(ddl)
        con.close()
        tmp.rename(path)
    return path


def tpch(results: Results, env: BenchEnv) -> Path:
    """Analysis of six-table TPC-H queries (both dialects); returns the TPC-H DuckDB file."""
    b = results.budget.scaled(0.5)
    tables = tpch_tables()
    path = tpch_schema_path(env)
    for d in ("duckdb", "postgres"):
        url = f"duckdb:///{path}" if d == "duckdb" else PG_DIALECT_URL
        settings = env.settings(d, url=url, overrides=open_policy(url))
        analyzer = Analyzer(settings)
        snap = SchemaSnapshot.build(d, "tpch", tables)
        per: dict[str, Any] = {}
        for name, sql in TPCH[:1] if results.tiny else TPCH[:2] if results.quick else TPCH:
            s_p = bench(partial(sqlglot.parse_one, sql, read=d), b)
            s_a = bench(partial(analyzer.analyze, sql, snap), b)
            per[name] = {
                "parse_ms": s_p.median,
                "analyze_ms": s_a.median,
                "valid": _valid(analyzer.analyze(sql, snap)),
            }
            if name == "q5_six_tables":
                results.add(
                    f"validate.{d}.tpch_q5.parse", GROUP, f"{d}: sqlglot parse, TPC-H Q5 (6 tables)", s_p
                )
                results.add(
                    f"validate.{d}.tpch_q5.analyze",
                    GROUP,
                    f"{d}: analysis, TPC-H Q5 (6 tables)",
                    s_a,
                    floor=f"validate.{d}.tpch_q5.parse",
                    target=T_TPCH,
                    headline=True,
                )
        six = [v["analyze_ms"] for k, v in per.items() if "six" in k]
        results.add(
            f"validate.{d}.tpch.analyze_max6",
            GROUP,
            f"{d}: analysis, slowest six-table TPC-H query",
            value=max(six),
            target=T_TPCH,
            queries=per,
        )
    return path


async def tpch_full(results: Results, env: BenchEnv, path: Path) -> None:
    """The whole validate_code path on TPC-H Q5 over the (empty) TPC-H schema in DuckDB."""
    settings = env.settings("duckdb", overrides=open_policy(f"duckdb:///{path}"))
    sql = TPCH[0][1]
    async with CodeModeService(settings) as service:
        s = await abench(lambda: _service_validate(service, sql), results.budget.scaled(0.5))
        v = await _service_validate(service, sql)
    results.add(
        "validate.duckdb.tpch_q5.validate",
        GROUP,
        "duckdb: validate_code, TPC-H Q5 (6 tables)",
        s,
        floor="validate.duckdb.tpch_q5.parse",
        valid=v.is_valid,
    )


def schema_growth(results: Results, env: BenchEnv) -> None:
    """Analysis cost of the same-shaped queries against snapshots of 10, 100 and 1,000 tables."""
    b = results.budget.scaled(0.4)
    settings = env.settings("duckdb", overrides=open_policy(f"duckdb:///{env.duckdb_path(1)}"))
    analyzer = Analyzer(settings)
    for n in (10, 100) if results.tiny else (10, 100, 1000):
        snap = SchemaSnapshot.build("duckdb", "synthetic", synthetic_tables(n))
        q2, q6 = synthetic_query(n), synthetic_six_table_query(n)
        s2 = bench(partial(analyzer.analyze, q2, snap), b)
        s6 = bench(partial(analyzer.analyze, q6, snap), b)
        results.add(
            f"validate.schema{n}.typical",
            GROUP,
            f"analysis, 2-table query, schema of {n:,} tables",
            s2,
            floor="validate.schema10.typical" if n > 10 else None,
            valid=_valid(analyzer.analyze(q2, snap)),
            headline=n == 1000,
        )
        results.add(
            f"validate.schema{n}.six",
            GROUP,
            f"analysis, 6-table query, schema of {n:,} tables",
            s6,
            floor="validate.schema10.six" if n > 10 else None,
            valid=_valid(analyzer.analyze(q6, snap)),
        )


async def schema_growth_full(results: Results, env: BenchEnv) -> None:
    """Reflection at start-up and the whole validate path over DuckDB files of 10..1,000 tables."""
    import duckdb

    sizes = (10,) if results.tiny else (10, 100) if results.quick else (10, 100, 1000)
    for n in sizes:
        path = env.work_dir / f"synthetic-{n}.duckdb"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            con = duckdb.connect(str(tmp))
            for ddl in synthetic_ddl(n):
                con.execute(ddl)
            con.close()
            tmp.rename(path)
        settings = env.settings("duckdb", overrides=open_policy(f"duckdb:///{path}"))
        t0 = time.perf_counter()
        async with CodeModeService(settings) as service:
            opened = (time.perf_counter() - t0) * 1000
            q = synthetic_query(n)
            s = await abench(lambda q=q, svc=service: _service_validate(svc, q), results.budget.scaled(0.4))
        results.add(
            f"validate.schema{n}.validate",
            GROUP,
            f"validate_code, 2-table query, DuckDB of {n:,} tables",
            s,
            floor=f"validate.schema{n}.typical",
        )
        results.add(
            f"startup.schema{n}.open",
            "start-up",
            f"service open (reflection) of {n:,} tables",
            value=opened,
            note="one measurement",
        )


def query_growth(results: Results, env: BenchEnv, snapshot: SchemaSnapshot) -> None:
    """Parse and analysis time as the typical query grows (k computed columns and k predicates)."""
    b = results.budget.scaled(0.4)
    analyzer = Analyzer(env.settings("duckdb"))
    for k in (1, 4) if results.tiny else (1, 4, 16, 64):
        sql = grown_query(k)
        s_p = bench(partial(sqlglot.parse_one, sql, read="duckdb"), b)
        s_a = bench(partial(analyzer.analyze, sql, snapshot), b)
        results.add(f"validate.qsize{k}.parse", GROUP, f"parse, query with {k} columns + {k} predicates", s_p)
        results.add(
            f"validate.qsize{k}.analyze",
            GROUP,
            f"analysis, query with {k} columns + {k} predicates ({len(sql):,} chars)",
            s_a,
            floor=f"validate.qsize{k}.parse",
            chars=len(sql),
            us_per_char=round(s_a.median * 1000 / len(sql), 3),
            valid=_valid(analyzer.analyze(sql, snapshot)),
            headline=k == 64,
        )


async def run(env: BenchEnv, results: Results) -> None:
    """All validation figures (both dialects when PostgreSQL is available)."""
    audit_floor(results, env)
    settings = env.settings("duckdb")
    await typical_corpus(env, results, "duckdb", settings)
    pg = await env.postgres_reader_url()
    if pg is not None:
        await typical_corpus(env, results, "postgres", env.settings("postgres", url=pg))
    else:
        results.error("bench_validate", env.postgres_error or "no PostgreSQL: postgres figures skipped")
    path = tpch(results, env)
    await tpch_full(results, env, path)
    schema_growth(results, env)
    await schema_growth_full(results, env)
    async with CodeModeService(settings) as service:
        snapshot = await service.schema()
    query_growth(results, env, snapshot)


if __name__ == "__main__":
    from env import standalone

    standalone(run, __doc__)
