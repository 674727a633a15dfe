"""Analysis off the event loop: a bounded worker pool with a deadline (issue 18).

The analyzer is CPU-bound Python: run on the event loop, one large query (a 90 KB OR-chain) held
every other client's request for seconds. Here each analysis runs in one of
``server.analysis_workers`` threads and must finish within ``server.analysis_timeout_ms`` (queueing
included); past it the caller gets AnalysisTimeoutError, a refusal, never a pass. A thread cannot
be stopped, so an abandoned analysis finishes in the background; callers that also cap work per
principal (server.max_concurrent_validations) hold their slot until it does, which bounds how many
workers one principal can occupy.

Threads share the interpreter lock with the event loop, so under HTTP serving (``sqlmode serve
--transport http``, ``server.analysis_processes``) the workers are processes instead: an abusive
client's analyses then cost other clients CPU share only, not the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import AnalysisTimeoutError

if TYPE_CHECKING:
    from .analyze import Analyzer
    from .config import Settings

__all__ = ["AnalysisPool"]

T = TypeVar("T")


class _Expired(Exception):
    """The job's deadline passed while it waited for a worker: it never started."""


# The analyzer of a worker process, built once by its initializer.
_WORKER_ANALYZER: Analyzer | None = None


# Worker processes run at a lower CPU priority than the server: a long analysis then slows other
# analyses, never the event loop that answers every other request.
WORKER_NICENESS = 10


def _init_worker(settings: Settings) -> None:
    global _WORKER_ANALYZER
    with contextlib.suppress(OSError):  # not permitted here: the workers keep the server's priority
        os.nice(WORKER_NICENESS)
    from .analyze import Analyzer

    _WORKER_ANALYZER = Analyzer(settings)


def _analyze_in_worker(deadline: float, code: str, snapshot: Any) -> Any:
    if time.time() > deadline:
        raise _Expired
    assert _WORKER_ANALYZER is not None
    return _WORKER_ANALYZER.analyze(code, snapshot)


def _warm(snapshot: Any) -> None:
    # A first analysis fills the analyzer's caches; the pause keeps this worker busy, so that the
    # next warm-up job starts another one.
    assert _WORKER_ANALYZER is not None
    _WORKER_ANALYZER.analyze("SELECT 1", snapshot)
    time.sleep(0.05)


class AnalysisPool:
    """``await pool.run(fn, *args)``: ``fn`` on a worker thread, refused past the deadline.

    With ``processes`` (the settings the workers build their own analyzer from), ``analyze(code,
    snapshot)`` runs in worker processes instead.
    """

    def __init__(self, workers: int, timeout_ms: int, processes: Settings | None = None):
        self.timeout_ms = timeout_ms
        self.workers = workers
        self._executor: Executor
        if processes is None:
            self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sqlmode-analyze")
        else:
            # spawn, not fork: the parent holds DuckDB and event-loop threads that a fork would copy.
            self._executor = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(processes,),
            )
        self.processes = processes is not None

    async def start(self, snapshot: Any) -> None:
        """Start every worker now rather than on the first queries (a process takes a second or two)."""
        if self.processes:
            loop = asyncio.get_running_loop()
            warming = [loop.run_in_executor(self._executor, _warm, snapshot) for _ in range(self.workers)]
            await asyncio.gather(*warming)

    async def analyze(
        self, analyzer: Analyzer, code: str, snapshot: Any, on_done: Callable[[], None] | None = None
    ) -> Any:
        """``analyzer.analyze(code, snapshot)`` on a worker (a process's own analyzer in process mode)."""
        if self.processes:
            return await self._submit(
                _analyze_in_worker, time.time() + self.timeout_ms / 1000, code, snapshot, on_done=on_done
            )
        return await self.run(analyzer.analyze, code, snapshot, on_done=on_done)

    async def _submit(self, fn: Callable[..., T], *args: Any, on_done: Callable[[], None] | None) -> T:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, fn, *args)
        return await self._wait(fut, on_done)

    async def run(self, fn: Callable[..., T], *args: Any, on_done: Callable[[], None] | None = None) -> T:
        """Run ``fn(*args)`` on a worker; ``on_done`` is called when the thread is finished with it
        (after the deadline too), from the event loop."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.timeout_ms / 1000

        def job() -> T:
            if time.monotonic() > deadline:  # queued past its deadline: do not start it
                raise _Expired
            return fn(*args)

        fut = loop.run_in_executor(self._executor, job)
        return await self._wait(fut, on_done)

    async def _wait(self, fut: asyncio.Future[T], on_done: Callable[[], None] | None) -> T:
        if on_done is not None:
            fut.add_done_callback(lambda _f: on_done())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout_ms / 1000)
        except (TimeoutError, _Expired):
            fut.add_done_callback(_consume)
            raise AnalysisTimeoutError(
                f"The analysis did not finish within {self.timeout_ms} ms, so the query is refused."
            ) from None
        except asyncio.CancelledError:
            fut.add_done_callback(_consume)
            raise

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
