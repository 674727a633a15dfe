"""Analysis off the event loop: a bounded worker pool with a deadline.

The analyzer is CPU-bound Python: run on the event loop, one large query (a 90 KB OR-chain) held
every other client's request for seconds. Here each analysis runs on one of
``server.analysis_workers`` workers and must finish within ``server.analysis_timeout_ms`` of
starting; past it the caller gets AnalysisTimeoutError, a refusal, never a pass. Waiting for a free
worker does not count against the deadline (under legitimate load queries queue rather than fail),
but a job that cannot start within ``QUEUE_LIMIT_FACTOR`` deadlines is refused too.

- Threads (the default: CLI, library): a thread cannot be stopped, so an abandoned analysis finishes
  in the background; callers that cap work per principal hold the slot until it does.
- Processes (``sqlmode serve --transport http``, ``server.analysis_processes``): no interpreter lock
  shared with the event loop, a lower CPU priority than the server, and the deadline is enforced
  inside the worker (a timer signal stops the analysis), so an abusive query frees its worker on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
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
_log = logging.getLogger("sqlmode.workers")

# A job that waited this many deadlines for a worker without starting is refused.
QUEUE_LIMIT_FACTOR = 10
# Worker processes run at a lower CPU priority than the server: a long analysis then slows other
# analyses, never the event loop that answers every other request.
WORKER_NICENESS = 10


class _Expired(Exception):
    """The job waited too long for a worker: it never started."""


# A BaseException, not an Exception: the analyzer's fail-closed handler must not catch it.
class _DeadlinePassed(BaseException):
    """Raised inside a worker process by its timer when the analysis runs past the deadline."""


# The analyzer of a worker process, built once by its initializer.
_WORKER_ANALYZER: Analyzer | None = None


def _init_worker(settings: Settings) -> None:
    global _WORKER_ANALYZER
    with contextlib.suppress(OSError):  # not permitted here: the workers keep the server's priority
        os.nice(WORKER_NICENESS)
    from .analyze import Analyzer

    _WORKER_ANALYZER = Analyzer(settings)


def _on_alarm(signum: int, frame: Any) -> None:
    raise _DeadlinePassed


def _analyze_in_worker(
    start_by: float, timeout_s: float, code: str, snapshot: Any, explanation: bool = True
) -> Any:
    if time.time() > start_by:
        raise _Expired
    assert _WORKER_ANALYZER is not None
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return _WORKER_ANALYZER.analyze(code, snapshot, explanation=explanation)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _warm(snapshot: Any) -> None:
    # A first analysis fills the analyzer's caches; the pause keeps this worker busy, so that the
    # next warm-up job starts another one.
    assert _WORKER_ANALYZER is not None
    _WORKER_ANALYZER.analyze("SELECT 1", snapshot)
    time.sleep(0.05)


class AnalysisPool:
    """``await pool.analyze(analyzer, code, snapshot)`` on a worker, refused past the deadline.

    With ``processes`` (the settings the workers build their own analyzer from) the workers are
    processes.
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

    def _refusal(self) -> AnalysisTimeoutError:
        return AnalysisTimeoutError(
            f"The analysis did not finish within {self.timeout_ms} ms, so the query is refused."
        )

    async def analyze(
        self,
        analyzer: Analyzer,
        code: str,
        snapshot: Any,
        on_done: Callable[[], None] | None = None,
        *,
        explanation: bool = True,
        then: Callable[[Any], None] | None = None,
    ) -> Any:
        """``analyzer.analyze(code, snapshot)`` on a worker (a process's own analyzer in process mode).

        ``on_done`` is called, on the event loop, once the worker is finished with the job.
        ``then`` is called with the analysis on the worker thread, within the deadline, before the
        event loop hears of it (thread workers only: a worker process cannot reach this one).
        """
        timeout_s = self.timeout_ms / 1000
        queue_s = timeout_s * QUEUE_LIMIT_FACTOR
        loop = asyncio.get_running_loop()
        if self.processes:
            fut = loop.run_in_executor(
                self._executor,
                _analyze_in_worker,
                time.time() + queue_s,
                timeout_s,
                code,
                snapshot,
                explanation,
            )
            if on_done is not None:
                fut.add_done_callback(lambda _f: on_done())
            try:
                # The worker enforces the deadline itself; this bound only guards against a stuck one.
                return await asyncio.wait_for(asyncio.shield(fut), queue_s + timeout_s + 5)
            except (TimeoutError, _Expired, _DeadlinePassed):
                fut.add_done_callback(_consume)
                raise self._refusal() from None
            except asyncio.CancelledError:
                fut.add_done_callback(_consume)
                raise
        started: list[float] = []
        submitted = time.monotonic()

        def job() -> Any:
            if time.monotonic() - submitted > queue_s:
                raise _Expired
            started.append(time.monotonic())
            analysis = analyzer.analyze(code, snapshot, explanation=explanation)
            if then is not None:
                try:
                    then(analysis)
                except Exception:  # it only saves time: the verdict stands without it
                    _log.warning("the analysis' follow-up failed", exc_info=True)
            return analysis

        fut = loop.run_in_executor(self._executor, job)
        if on_done is not None:
            fut.add_done_callback(lambda _f: on_done())
        try:
            while True:
                # While queued, look again every 50 ms; once started, wait out the deadline.
                wait = 0.05 if not started else started[0] + timeout_s - time.monotonic()
                done, _ = await asyncio.wait({fut}, timeout=max(wait, 0))
                if done:
                    return fut.result()
                if started and time.monotonic() >= started[0] + timeout_s:
                    raise self._refusal()
        except _Expired:
            raise self._refusal() from None
        except BaseException:
            fut.add_done_callback(_consume)
            raise

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
