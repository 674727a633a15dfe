"""Garbage collection between requests rather than in the middle of one.

Every analysis leaves cyclic garbage (sqlglot's parse trees point to their parents), which only
the collector frees: with the interpreter's default thresholds a young-generation pass (0.3-0.6 ms
on a 2-core machine) ran about once per validate + execute, inside whichever request happened to
cross the threshold. Here the young generation is collected once no request has been in flight
for :data:`IDLE_DELAY_S` (an MCP client spends seconds between calls while the model thinks), and
the automatic threshold is raised to :data:`BUSY_THRESHOLD` as the bound for a server that is
never idle: the garbage held between passes stays a few megabytes, and the collector still runs
on its own when the requests never stop.

The work done is the same; where it lands moves. Older generations are collected at idle on the
interpreter's own schedule (every ``threshold1`` young passes, every ``threshold2`` middle ones),
so nothing that the default collector would free is left for longer than one idle moment.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

__all__ = ["BUSY_THRESHOLD", "COLLECTOR", "IDLE_DELAY_S", "IdleCollector"]

# No request in flight for this long: the client is between calls (a model is thinking, or
# the answer is being read).
IDLE_DELAY_S = 0.002
# Young objects allowed while requests keep coming, before the collector runs on its own
# (the interpreter's default is 700; one validate + execute leaves about 600 young objects).
BUSY_THRESHOLD = 20_000


class IdleCollector:
    """Counts requests in flight (as server middleware) and collects when none has been for a moment."""

    def __init__(self, delay: float = IDLE_DELAY_S, busy_threshold: int = BUSY_THRESHOLD):
        self.delay = delay
        self.busy_threshold = busy_threshold
        # The interpreter's thresholds, kept as the schedule of the idle passes.
        self.young, self.middle, self.old = gc.get_threshold()
        self.in_flight = 0
        self.passes = [0, 0, 0]  # collections made at idle, by generation
        self._timer: asyncio.TimerHandle | None = None
        self._started = False

    def start(self) -> None:
        """From now on the young generation waits for idle moments (call once start-up is done)."""
        if self.young > 0:  # a collector someone disabled stays so
            gc.set_threshold(max(self.young, self.busy_threshold), self.middle, self.old)
            self._started = True

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._started:
            gc.set_threshold(self.young, self.middle, self.old)
            self._started = False

    async def middleware(self, ctx: Any, call_next: Any) -> Any:
        self.in_flight += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            return await call_next(ctx)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0 and self._started:
                self._timer = asyncio.get_running_loop().call_later(self.delay, self.collect)

    def collect(self) -> int | None:
        """Collect what the default thresholds would have by now; the generation collected, or None."""
        self._timer = None
        if self.in_flight:
            return None
        young, middle, old = gc.get_count()
        if young <= self.young:
            return None
        # As the interpreter chooses once the young count passes its threshold: the oldest
        # generation whose count passed its own (its full passes also wait for a quarter of
        # the long-lived objects to be new; that figure is not readable from Python).
        gen = 2 if old > self.old else 1 if middle > self.middle else 0
        gc.collect(gen)
        self.passes[gen] += 1
        return gen


# The process's one collector (the heap is the process's): every MCPServer counts its requests in
# it; `sqlmode serve` starts it once start-up is done. Until then it only counts.
COLLECTOR = IdleCollector()
