"""DuckDB's engine call runs on the analysis worker, and only for an analysis that passed.

With thread workers, the service hands the analysis job a hook (execute/confirm.py WorkerCheck):
once the analysis of a read passed, the same worker binds the normalized text itself, instead of a
second trip through the event loop to the executor's workers. What must hold: a refused analysis
never reaches the engine (no binding, so no binder text can reach the answer); the verdict is the
one the ordinary path gives; work whose analysis is not used is discarded unread; process workers
(which cannot reach the executor) keep the ordinary path. Observed through a spy that records
and delegates to the real executor, the verdict, and the DuckDB cursor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sqlmode.config import Settings
from sqlmode.engines._duckdb_exec import DuckDBExecutor, EarlyBoundPlan
from sqlmode.engines._duckdb_plan import read_bound_plan
from sqlmode.execute.confirm import WorkerCheck
from sqlmode.service import CodeModeService

READ = (
    "SELECT c.region, count(*) AS n FROM customers AS c JOIN orders AS o ON o.customer_id = c.id GROUP BY 1"
)

# Refused by the analyzer, each for another reason; several would bind (and one would have DuckDB's
# binder name the blocked column as a candidate) if they reached the engine.
REFUSED = {
    "blocked column": "SELECT name, ssn FROM customers",
    "blocked table": "SELECT * FROM credentials",
    "misspelt blocked column": "SELECT sn FROM customers",
    "write": "DELETE FROM orders",
    "two statements": "SELECT 1; SELECT 2",
    "syntax": "SELEC name FROM customers",
    "file read": "SELECT * FROM read_csv('/etc/passwd')",
}


@dataclasses.dataclass
class Spy:
    prepared: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (thread name, sql)
    pool_jobs: list[str] = dataclasses.field(default_factory=list)  # executor worker submissions


@contextmanager
def spying(svc: CodeModeService) -> Iterator[Spy]:
    """Record (and delegate) the worker-check preparations and the executor's own worker jobs."""
    executor = svc.executor
    assert isinstance(executor, DuckDBExecutor)
    spy = Spy()
    real_prepare = executor.prepare_bound_plan
    real_submit = executor._threads.submit

    def prepare(sql: str, *, estimates: bool) -> Any:
        spy.prepared.append((threading.current_thread().name, sql))
        return real_prepare(sql, estimates=estimates)

    def submit(fn: Any, *args: Any, **kwargs: Any) -> Any:
        spy.pool_jobs.append(getattr(fn, "__name__", ""))
        return real_submit(fn, *args, **kwargs)

    executor.prepare_bound_plan = prepare  # type: ignore[method-assign]
    executor._threads.submit = submit  # type: ignore[method-assign,assignment]
    try:
        yield spy
    finally:
        del executor.prepare_bound_plan
        del executor._threads.submit


async def test_a_passing_read_is_bound_on_the_analysis_worker_with_the_ordinary_verdict(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> None:
    async with CodeModeService(duck_settings(make_duck())) as svc:
        await svc.validate("SELECT 1 AS warm")  # the function catalog loads once per snapshot
        with spying(svc) as spy:
            v = await svc.validate(READ)
        assert v.is_valid and v.approval_token
        assert [sql for _, sql in spy.prepared] == [v.normalized_code]
        assert spy.prepared[0][0].startswith("sqlmode-analyze")
        assert "_bound_plan_sync" not in spy.pool_jobs  # no second hop to the executor's workers
        # The ordinary path (a fresh confirmation through the executor's workers) says the same.
        snapshot = await svc.schema()
        assert svc.confirmer is not None
        svc.confirmer.clear()
        analysis = svc.analyzer.analyze(READ, snapshot)
        with spying(svc) as spy:
            ordinary = await svc.confirmer.confirm(analysis, snapshot, policy_reads_estimates=False)
        assert spy.pool_jobs == ["_bound_plan_sync"] and not spy.prepared
        assert ordinary.ok
        assert sorted(v.tables) == ["customers", "orders"]
        assert ordinary.summary and ordinary.summary in v.explanation
        rows = await svc.execute(v.normalized_code, v.approval_token)
        assert sorted(r[0] for r in rows.rows) == ["AMER", "APAC", "EMEA", "LATAM"]


@pytest.mark.parametrize("name", sorted(REFUSED))
async def test_a_refused_analysis_never_reaches_the_engine(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings], name: str
) -> None:
    async with CodeModeService(duck_settings(make_duck())) as svc:
        with spying(svc) as spy:
            v = await svc.validate(REFUSED[name])
        assert not v.is_valid and v.violations and v.approval_token is None
        assert spy.prepared == [] and "_bound_plan_sync" not in spy.pool_jobs
        said = " ".join(f"{x.message} {x.hint or ''}" for x in v.violations) + v.explanation
        assert "Candidate" not in said and "Binder Error" not in said


async def test_a_confirmed_text_is_not_bound_again_and_another_text_is_bound_afresh(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> None:
    async with CodeModeService(duck_settings(make_duck())) as svc:
        first = await svc.validate(READ)
        with spying(svc) as spy:
            # Other code (spacing), the same normalized text: the confirmation cache answers.
            again = await svc.validate(READ.replace(" GROUP BY", "\n  GROUP BY"))
        assert again.is_valid and again.normalized_code == first.normalized_code
        assert spy.prepared == [] and spy.pool_jobs == []


async def test_work_for_another_text_is_discarded_unread(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> None:
    async with CodeModeService(duck_settings(make_duck())) as svc:
        executor = svc.executor
        assert isinstance(executor, DuckDBExecutor)
        other = executor.prepare_bound_plan("SELECT ssn FROM customers", estimates=False)
        assert other is not None
        reply = await executor.bound_plan("SELECT name FROM customers", estimates=False, early=other)
        assert read_bound_plan(reply.bound).columns == {("main", "customers", "name")}
        assert other.future.cancelled()
        other.run()  # too late: it never binds, and its cursor is closed
        assert other.future.cancelled()
        with pytest.raises(duckdb.Error):
            other.cursor.execute("SELECT 1")


async def test_after_take_nothing_starts_and_started_work_is_interrupted_on_close(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> None:
    async with CodeModeService(duck_settings(make_duck())) as svc:
        snapshot = await svc.schema()
        assert svc.confirmer is not None
        analysis = svc.analyzer.analyze(READ, snapshot)
        check = svc.confirmer.worker_check(snapshot)
        assert check is not None
        assert check.take() is None
        with spying(svc) as spy:
            check(analysis)  # the caller gave up (a timeout): nothing starts
        assert spy.prepared == []

        # Started work that nobody reads is interrupted (again until it stops: the first interrupt
        # may land before DuckDB started): binding 8,000 unions takes about a second.
        executor = svc.executor
        assert isinstance(executor, DuckDBExecutor)
        slow = " UNION ALL ".join(f"SELECT id + {i} AS x FROM customers" for i in range(8000))
        started: list[EarlyBoundPlan] = []
        loop = asyncio.get_running_loop()
        running = asyncio.Event()

        def prepare(sql: str) -> EarlyBoundPlan | None:
            pending = executor.prepare_bound_plan(sql, estimates=False)
            if pending is not None:
                started.append(pending)
                loop.call_soon_threadsafe(running.set)
            return pending

        check = WorkerCheck(prepare)
        long = dataclasses.replace(analysis, normalized_code=slow)
        worker = loop.run_in_executor(None, check, long)
        await asyncio.wait_for(running.wait(), 10)
        check.close()
        await asyncio.wait_for(worker, 30)
        assert isinstance(started[0].future.exception(), duckdb.InterruptException)


async def test_process_workers_keep_the_ordinary_path(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings]
) -> None:
    overrides = {"server": {"analysis_workers": 1}}
    async with CodeModeService(duck_settings(make_duck(), overrides)) as svc:
        await svc.use_analysis_processes()
        await svc.validate("SELECT 1 AS warm")  # the function catalog loads once per snapshot
        with spying(svc) as spy:
            v = await svc.validate(READ)
        assert v.is_valid and sorted(v.tables) == ["customers", "orders"]
        assert spy.prepared == [] and spy.pool_jobs == ["_bound_plan_sync"]


@pytest.mark.parametrize("when", ["before it ran", "while it runs", "after it ran"])
async def test_the_executor_takes_the_same_work_whenever_it_is_asked(
    make_duck: Callable[..., Path], duck_settings: Callable[..., Settings], when: str
) -> None:
    async with CodeModeService(duck_settings(make_duck())) as svc:
        executor = svc.executor
        assert isinstance(executor, DuckDBExecutor)
        sql = "SELECT name, region FROM customers LIMIT 5"
        pending = executor.prepare_bound_plan(sql, estimates=True)
        assert pending is not None
        loop = asyncio.get_running_loop()
        runner = None
        if when == "after it ran":
            pending.run()
        elif when == "while it runs":
            runner = loop.run_in_executor(None, pending.run)
        else:
            loop.call_later(0.05, pending.run)  # on the loop's thread, while bound_plan waits
        reply = await executor.bound_plan(sql, estimates=True, early=pending)
        if runner is not None:
            await runner
        assert read_bound_plan(reply.bound).columns == {
            ("main", "customers", "name"),
            ("main", "customers", "region"),
        }
        assert reply.physical is not None  # the estimates were asked for, and came with it
