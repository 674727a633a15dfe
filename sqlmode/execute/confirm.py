"""Engine confirmation: the database describes the query, without running it, and must agree.

The analyzer reasons about names; the database decides what they mean. Before a token is
issued, :class:`EngineConfirmer` asks the engine about ``analysis.normalized_code``:

1. Its own parser: exactly one SELECT (else ROUND_TRIP_MISMATCH), and every call it sees
   must be one the analyzer's allowlist allows (else ENGINE_MISMATCH: the parsers disagree
   about what is called).
2. Its binding, read as data (plans.py): what the query reads and calls is the engine's word.
   How each engine gets it is the engine's business (``Engine.bound_access``: e.g.
   engines/_duckdb_check.py, engines/_postgres_check.py); the rules below are the same for all.
   A plan the reader cannot fully account for (an unknown operator or expression kind, a
   serialization error, a column it cannot place) is refused: ENGINE_REFUSED. Then:
   - a relation the analyzer did not see (a view expanding to other tables, a name that
     search_path resolves to another schema or catalog) is ENGINE_MISMATCH, unless it was
     reached through a view the analyzer saw and is itself exposed to Code Mode;
   - blocked tables and columns are checked again on the engine's sets (TABLE_BLOCKED,
     COLUMN_BLOCKED): whatever the engine bound that is blocked is refused, even if the
     analyzer missed it, and a view cannot launder it;
   - every function the plan calls is checked against the catalog (function_rules.py):
     FUNCTION_VOLATILE, FUNCTION_SHADOWED, FUNCTION_NOT_ALLOWED;
   - the estimates feed the risk level, a sentence of the explanation ("reads about 2.4M rows
     of orders"), the Cedar context (``estimated_rows``, ``estimated_cost``) and the config
     limits ``code_mode.max_estimated_rows`` / ``max_estimated_cost`` (ESTIMATED_*_TOO_HIGH).
     Where they cost a second plan (DuckDB's optimizer), they are asked for only when something
     reads them (:meth:`EngineConfirmer.wants_estimates`: a limit, an approval or elicitation
     risk level the plan can raise a query to, a Cedar rule that reads them or the risk, reads
     that wait for an approver (whose page shows them), or ``code_mode.plan_estimates =
     "always"``); without them the risk is the analyzer's, the
     explanation names what the plan reads without figures, and Cedar's context has no
     ``estimated_*`` (rules already test ``context has estimated_rows``).
3. If the database cannot describe the query (a privilege error, an unknown function, a
   timeout), the query is refused (ENGINE_REFUSED): fail closed. The engine's work runs under
   the executor's deadline, interrupt and memory limit, like execution.

On the analysis worker: where the executor lets another thread run its call
(``prepare_bound_plan``: DuckDB), the service gives the analysis worker a :class:`WorkerCheck`,
which runs the engine's call there as soon as the analysis passed, instead of a second trip
through the event loop to the executor's workers. Only a passing analysis of a read starts it; its
outcome is read only by :meth:`EngineConfirmer.confirm` for that analysis' very normalized text
(the cache, the rules and the refusals below are unchanged); anything else discards it unread.

Results are cached by (normalized code, snapshot content hash, estimates asked for) for
``database.schema_ttl_seconds``: the content hash, not the bounded schema hash, because a blocked
column added behind a view changes the verdict while an LLM sees the same schema (see
analyze/cache.py). Failures are not cached. Only reads are confirmed (writes take their own path).
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlglot import exp

from ..analyze.codes import VIOLATION_CODES, violation
from ..analyze.functions import policy_for
from ..analyze.names import unnamed_item_hint
from ..analyze.parse import sqlglot_dialect
from ..config import Settings
from ..engines.base import BoundAccess, Engine, EngineTraits, Executor, engine_for_url
from ..errors import NotAQueryError, PermissionDeniedError, SqlmodeError
from ..models import Action, Analysis, RiskLevel, Violation
from ..schema.functions import FunctionCatalog
from ..schema.snapshot import SchemaSnapshot
from .function_rules import check_calls
from .plans import PlanFacts

__all__ = [
    "Confirmation",
    "EngineConfirmer",
    "WorkerCheck",
    "dotted",
    "explain_or_refusal",
    "human",
    "planned_or_refusal",
    "table_lookup",
]

T = TypeVar("T")

# Risk from the largest step's row estimate.
RISK_MEDIUM_ROWS = 1_000_000
RISK_HIGH_ROWS = 100_000_000
CACHE_SIZE = 1024
# Risk levels the plan's estimates can raise a query to (the engine never rates one critical):
# a rule keyed on one of them needs the estimates.
PLAN_RISKS = frozenset({RiskLevel.LOW.value, RiskLevel.MEDIUM.value, RiskLevel.HIGH.value})
# Cedar Longs are 64-bit; estimates are clamped into range.
_MAX_LONG = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the engine said about one normalized query, and the verdict."""

    violations: tuple[Violation, ...] = ()
    tables: tuple[str, ...] = ()  # "schema.table" as the plan reads them
    columns: tuple[str, ...] = ()  # "table.column"
    functions: tuple[str, ...] = ()
    estimated_rows: float | None = None  # the largest step's row estimate
    estimated_cost: float | None = None  # PostgreSQL: total cost; DuckDB: rows moved by all steps
    reads: tuple[tuple[str, float], ...] = ()  # (table, rows read), largest first
    risk: RiskLevel = RiskLevel.LOW
    summary: str = ""
    elapsed_ms: float = 0.0
    cached: bool = False
    skipped: str = ""  # why nothing was asked (a write, a refused analysis)

    @property
    def ok(self) -> bool:
        return not self.violations

    def apply(self, analysis: Analysis) -> None:
        """Merge into ``analysis``: violations, risk level, explanation, and the estimates Cedar reads."""
        if self.skipped:
            return
        seen = {(v.code, v.message) for v in analysis.violations}
        analysis.violations.extend(v for v in self.violations if (v.code, v.message) not in seen)
        analysis.risk_level = RiskLevel.max(analysis.risk_level, self.risk)
        if self.summary:
            analysis.explanation = (analysis.explanation + " " + self.summary).strip()
        if self.estimated_rows is not None:
            analysis.estimated_rows = _long(self.estimated_rows)
        if self.estimated_cost is not None:
            analysis.estimated_cost = _long(self.estimated_cost)
        if self.violations:
            analysis.normalized_code = ""
            analysis.row_limit = 0


def _long(x: float) -> int:
    return int(min(max(x, 0.0), _MAX_LONG)) if math.isfinite(x) else _MAX_LONG


def human(n: float) -> str:
    """2400000 -> "2.4M", 30087 -> "30K", 950 -> "950"."""
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            v = n / size
            return f"{v:.1f}".rstrip("0").rstrip(".") + unit if v < 10 else f"{v:.0f}{unit}"
    return f"{n:.0f}"


# -- the confirmer -----------------------------------------------------------------------------


class WorkerCheck:
    """Runs the engine's call for a passing read on the analysis worker thread (at most once).

    Thread-safe. :meth:`take` (the confirmer's) ends it: nothing starts after it, and what was
    started is the taker's to use or discard. :meth:`close` takes and discards.
    """

    def __init__(self, prepare: Callable[[str], Any]):
        self._prepare = prepare
        self._lock = threading.Lock()
        self._closed = False
        self._pending: Any = None

    def __call__(self, analysis: Analysis) -> None:
        """On the analysis worker, with its verdict: a read that passed gets the engine's call."""
        if not analysis.ok or not analysis.normalized_code or analysis.action is not Action.READ:
            return
        with self._lock:
            if self._closed or self._pending is not None:
                return
            pending = self._prepare(analysis.normalized_code)
            if pending is None:
                return
            self._pending = pending
        pending.run()  # outside the lock: a timed-out caller's close() must not wait for it

    def take(self) -> Any:
        """What was started (``.sql``, ``.run()``, ``.discard()``), or None; nothing starts after."""
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, None
        return pending

    def close(self) -> None:
        pending = self.take()
        if pending is not None:
            pending.discard()


@dataclass(slots=True)
class _Cached:
    at: float
    result: Confirmation


class EngineConfirmer:
    """Confirms analyses against one database through its executor. One per service."""

    def __init__(
        self,
        settings: Settings,
        executor: Any,
        *,
        engine: Engine | None = None,
        ttl_seconds: float | None = None,
    ):
        self.settings = settings
        self.executor = executor
        self.engine = engine or engine_for_url(settings.database.url)
        self.ttl_seconds = float(ttl_seconds or settings.database.schema_ttl_seconds or 300)
        fc = settings.code_mode.functions
        self._policy = policy_for(self.engine.traits, tuple(sorted(fc.allow)), tuple(sorted(fc.deny)))
        self._cache: OrderedDict[tuple[str, str, bool], _Cached] = OrderedDict()
        self._catalog_lock = asyncio.Lock()
        cm = settings.code_mode
        #: What asks for the estimates whatever the policies say (see :meth:`wants_estimates`).
        self.config_wants_estimates = (
            cm.plan_estimates == "always"
            or cm.max_estimated_rows is not None
            or cm.max_estimated_cost is not None
            or bool(PLAN_RISKS & set(settings.approval.risk_levels))
            or bool(PLAN_RISKS & set(settings.server.elicit_risk_levels))
            # A read waiting for an approver shows them the estimates (approval/book.py).
            or "read" in settings.approval.actions
        )

    def wants_estimates(self, policy_reads_them: bool) -> bool:
        """Whether the plan's estimates are needed: the config's reasons, or the policies read them."""
        return self.config_wants_estimates or policy_reads_them

    def clear(self) -> None:
        """Forget cached confirmations."""
        self._cache.clear()

    def worker_check(
        self, snapshot: SchemaSnapshot, *, policy_reads_estimates: bool = True
    ) -> WorkerCheck | None:
        """The hook for the analysis worker (:class:`WorkerCheck`), or None if the executor has none."""
        prepare = getattr(self.executor, "prepare_bound_plan", None)
        if prepare is None:
            return None
        estimates = self.wants_estimates(policy_reads_estimates)
        content_hash = snapshot.content_hash

        def begin(sql: str) -> Any:
            if (sql, content_hash, estimates) in self._cache:  # confirmed already
                return None
            return prepare(sql, estimates=estimates)

        return WorkerCheck(begin)

    async def confirm(
        self,
        analysis: Analysis,
        snapshot: SchemaSnapshot,
        *,
        policy_reads_estimates: bool = True,
        early: WorkerCheck | None = None,
    ) -> Confirmation:
        """The engine's verdict on ``analysis`` (never raises; a failure is ENGINE_REFUSED).

        ``policy_reads_estimates``: whether the current policies read the estimates or the risk
        (the service knows; the default asks for them). ``early``: the analysis worker's hook; what
        it ran is used for this analysis' normalized code only, and discarded in every other case.
        """
        pending = early.take() if early is not None else None
        try:
            return await self._confirm_cached(analysis, snapshot, policy_reads_estimates, pending)
        finally:
            if pending is not None:
                pending.discard()  # a no-op once used

    async def _confirm_cached(
        self, analysis: Analysis, snapshot: SchemaSnapshot, policy_reads_estimates: bool, pending: Any
    ) -> Confirmation:
        if not analysis.ok or not analysis.normalized_code:
            return Confirmation(skipped="the analysis already refused the code")
        if analysis.action is not Action.READ:
            return Confirmation(skipped="only reads are confirmed")
        estimates = self.wants_estimates(policy_reads_estimates)
        key = (analysis.normalized_code, snapshot.content_hash, estimates)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit.at < self.ttl_seconds:
            self._cache.move_to_end(key)
            return _with(hit.result, cached=True)
        if pending is not None and pending.sql != analysis.normalized_code:
            pending = None  # another text (discarded by confirm): never read
        started = time.perf_counter()
        try:
            result, cacheable = await self._confirm(analysis, snapshot, estimates, pending)
        except Exception as e:  # fail closed on anything unexpected
            result = Confirmation(
                violations=(
                    violation(
                        "ENGINE_REFUSED",
                        f"The engine confirmation failed ({type(e).__name__}: {str(e)[:200]}).",
                    ),
                ),
                risk=RiskLevel.HIGH,
            )
            cacheable = False
        result = _with(result, elapsed_ms=round((time.perf_counter() - started) * 1000, 3))
        if cacheable:
            self._cache[key] = _Cached(now, result)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return result

    async def _confirm(
        self, analysis: Analysis, snapshot: SchemaSnapshot, estimates: bool, early: Any = None
    ) -> tuple[Confirmation, bool]:
        sql = analysis.normalized_code
        # Only engines whose executor prepares calls for other threads are handed one.
        kw = {"early": early} if early is not None else {}
        access = await self.engine.bound_access(
            sql,
            self.executor,
            snapshot=snapshot,
            policy=self._policy,
            written_functions=analysis.functions,
            load_catalog=lambda: self._functions(snapshot),
            estimates=estimates,
            **kw,
        )
        if access.refusal is not None:
            refusal = access.refusal
            if refusal.code == "ENGINE_REFUSED" and refusal.hint == VIOLATION_CODES["ENGINE_REFUSED"][1]:
                # "function ... does not exist" is mostly another dialect's function: name the engine's.
                traits = self.engine.traits
                instead = (
                    missing_function_hint(refusal.message, traits.missing_functions)
                    or next(
                        (hint for pattern, hint in traits.error_hints if re.search(pattern, refusal.message)),
                        None,
                    )
                    or output_alias_hint(refusal.message, analysis.normalized_code, traits)
                    or engine_named_hint(refusal.message, analysis.normalized_code, traits)
                )
                hint = f"{instead or refusal.hint} {self.engine.dialect_notes}"
                refusal = refusal.model_copy(update={"hint": hint})
            risk = RiskLevel.HIGH if refusal.code == "ENGINE_REFUSED" else RiskLevel.LOW
            return Confirmation(violations=(refusal,), risk=risk), access.cacheable
        facts: PlanFacts = access.facts
        catalog: FunctionCatalog = access.catalog
        out: list[Violation] = list(access.violations)
        if facts.problems:
            return _unreadable(facts.problems), True
        out += self._relations(analysis, snapshot, facts, catalog.database)
        out += self._columns(analysis, snapshot, facts)
        out += check_calls(
            access.parsed_calls | facts.functions,
            catalog,
            self.settings.code_mode.functions,
            from_plan=facts.functions - access.parsed_calls,
            written=analysis.functions,
        )
        show_cost = self.engine.traits.plan_cost_is_meaningful
        if out:
            # Refused for what it reads or calls: the estimates come from statistics over the very
            # values it was refused for (``WHERE tax_id < '5'`` estimates how many SSNs are below
            # '5'), so they would make the refusal's wording an oracle on blocked data.
            return _verdict(out, facts, show_cost, estimates=False), True
        if not access.estimates:
            cm = self.settings.code_mode
            if cm.max_estimated_rows is not None or cm.max_estimated_cost is not None:
                # Fail closed: a limit that cannot be checked refuses (an engine that ignored the ask).
                msg = "The database did not give the estimates the configured limits need."
                refused = (violation("ENGINE_REFUSED", msg),)
                return Confirmation(violations=refused, risk=RiskLevel.HIGH), False
            return _verdict(out, facts, show_cost, estimates=False, summary=True), True
        out += self._limits(facts)
        return _verdict(out, facts, show_cost), True

    # -- the function catalog ----------------------------------------------------------------

    async def _functions(self, snapshot: SchemaSnapshot) -> FunctionCatalog:
        """The snapshot's function catalog, loaded as the reader on first use (once per snapshot)."""
        if snapshot.functions is not None:
            return snapshot.functions
        async with self._catalog_lock:
            if snapshot.functions is None:
                snapshot.functions = await self.engine.function_catalog(self.executor)
            return snapshot.functions

    # -- the rules -----------------------------------------------------------------------------

    def _relations(
        self, analysis: Analysis, snapshot: SchemaSnapshot, facts: PlanFacts, default_catalog: str
    ) -> list[Violation]:
        seen = {t.lower() for t in analysis.tables}
        via_view = sorted(t for t in seen if (info := snapshot.table(t)) is not None and info.kind == "view")
        out: list[Violation] = []
        reported: set[str] = set()
        for scan in facts.scans:
            key = snapshot.key_of(scan.table, scan.schema)  # sales.orders when several schemas have one
            info = snapshot.table(key)
            where = dotted(scan.schema, scan.table)
            if where in reported:
                continue
            expected = (info.schema or "").lower() if info is not None else None
            other_schema = info is None or (expected and scan.schema and scan.schema != expected)
            # Only engines with several catalogs (attached databases) name one in a scan.
            other_catalog = (
                scan.catalog and default_catalog and scan.catalog.lower() != default_catalog.lower()
            )
            if snapshot.is_table_blocked(key) and not other_schema and not other_catalog:
                reported.add(where)
                through = f" through {', '.join(via_view)}" if via_view else ""
                out.append(
                    violation(
                        "TABLE_BLOCKED",
                        f"The database's plan reads the blocked table {scan.table}{through}.",
                        "The query reaches a blocked table indirectly; remove the view or table "
                        "that leads to it.",
                    )
                )
            elif other_schema or other_catalog:
                reported.add(where)
                shown = dotted(scan.catalog, where) if other_catalog else where
                checked = dotted(expected or "", scan.table) if info is not None else "no such table"
                out.append(
                    violation(
                        "ENGINE_MISMATCH",
                        f"The database resolves `{scan.table}` to {shown}; the analyzer checked "
                        f"{checked} (a search_path or schema shadowing the exposed table).",
                    )
                )
            elif (
                key not in seen
                and not (via_view and snapshot.is_table_exposed(key))
                # A partition of a table the query reads: the planner scans it for the parent.
                and not seen.intersection(snapshot.ancestors.get(key, ()))
            ):
                reported.add(where)
                through = f" through {', '.join(via_view)}" if via_view else ""
                out.append(
                    violation(
                        "ENGINE_MISMATCH",
                        f"The database's plan reads {scan.table}{through}, which the analyzer did "
                        "not see and which is not exposed to Code Mode.",
                    )
                )
        return out

    def _columns(self, analysis: Analysis, snapshot: SchemaSnapshot, facts: PlanFacts) -> list[Violation]:
        seen_tables = {t.lower() for t in analysis.tables}
        seen_columns = {c.lower() for c in analysis.columns}
        # Through a view, a base table's columns are the view's business: only blocked ones count.
        reads_view = any((info := snapshot.table(t)) is not None and info.kind == "view" for t in seen_tables)
        blocked: set[str] = set()
        unseen: set[str] = set()
        access_path = facts.access_path_columns
        for schema, name_of_table, column in [*facts.columns, *access_path]:
            table = snapshot.key_of(name_of_table, schema)
            info = snapshot.table(table)
            names = [c.name for c in info.columns] if (column == "*" and info is not None) else [column]
            for name in names:
                full = f"{table}.{name}".lower()
                if snapshot.is_column_blocked(table, name) and not snapshot.is_table_blocked(table):
                    blocked.add(full)
                elif (
                    not reads_view
                    and table in seen_tables
                    and full not in seen_columns
                    and name != "*"
                    and (schema, name_of_table, column) not in access_path
                ):
                    unseen.add(full)
        out = [
            violation(
                "COLUMN_BLOCKED",
                f"The database's plan reads the blocked column {c}.",
                "The query reaches a blocked column indirectly (a view or whole-row value); "
                "select only the columns you need from the exposed tables.",
            )
            for c in sorted(blocked)
        ]
        if unseen:
            out.append(
                violation(
                    "ENGINE_MISMATCH",
                    f"The database's plan reads {', '.join(sorted(unseen)[:5])}, which the analyzer "
                    "did not see the query use.",
                )
            )
        return out

    def _limits(self, facts: PlanFacts) -> list[Violation]:
        cm = self.settings.code_mode
        out = []
        if cm.max_estimated_rows is not None and facts.peak_rows > cm.max_estimated_rows:
            out.append(
                violation(
                    "ESTIMATED_ROWS_TOO_HIGH",
                    f"The database estimates about {human(facts.peak_rows)} rows at one step "
                    f"({facts.peak_node}); the limit is {human(cm.max_estimated_rows)}. Nothing was run.",
                )
            )
        if cm.max_estimated_cost is not None and facts.cost > cm.max_estimated_cost:
            out.append(
                violation(
                    "ESTIMATED_COST_TOO_HIGH",
                    f"The database's cost estimate is {human(facts.cost)}; the limit is "
                    f"{human(cm.max_estimated_cost)}. Nothing was run.",
                )
            )
        return out


# -- helpers -------------------------------------------------------------------------------------


def _with(c: Confirmation, **changes: Any) -> Confirmation:
    from dataclasses import replace

    return replace(c, **changes)


def dotted(*parts: str) -> str:
    return ".".join(p for p in parts if p)


async def planned_or_refusal(call: Awaitable[T]) -> tuple[T | None, BoundAccess | None]:
    """(what the engine's planning ``call`` returned, None), or (None, the refusal) when it cannot plan.

    The engine's parser not reading one SELECT is ROUND_TRIP_MISMATCH; any other failure (a
    binder or privilege error, a timeout) is ENGINE_REFUSED and not cached: it may pass later.
    The executor's error text is already fit for the caller (scrubbed: execute/errtext.py).
    """
    try:
        return await call, None
    except NotAQueryError as e:
        msg = f"The normalized SQL is not one SELECT to the database: {e.message}"
        return None, BoundAccess(refusal=violation("ROUND_TRIP_MISMATCH", msg))
    except SqlmodeError as e:
        msg = f"The database could not plan the query: {e.message}"
        # The reader role may lack a blocked column, and the database checks every column a `*`
        # expands to, also in a CTE or subquery whose reader names fewer.
        hint = _PRIVILEGE_HINT if isinstance(e, PermissionDeniedError) else None
        return None, BoundAccess(refusal=violation("ENGINE_REFUSED", msg, hint), cacheable=False)


# The function a database's "does not exist" error names: PostgreSQL's `function f(integer) does not
# exist`, DuckDB's `Scalar Function with name f does not exist!`.
_MISSING_FUNCTION = re.compile(
    r"function (?:with name )?([A-Za-z_][\w$]*)(?:\(| does not exist)", re.IGNORECASE
)


def missing_function_hint(message: str, missing: Mapping[str, str]) -> str | None:
    """What to write instead of a function the database says does not exist, when the engine knows it."""
    found = _MISSING_FUNCTION.search(message)
    return missing.get(found.group(1).lower()) if found else None


# The column a database's binder could not find: PostgreSQL's `column "n" does not exist`, DuckDB's
# `Referenced column "n" not found`.
_MISSING_COLUMN = re.compile(r'column "([^"]+)" (?:does not exist|not found)')


def output_alias_hint(message: str, code: str, traits: EngineTraits) -> str | None:
    """When the column the database could not find is an output column's alias in ``code``
    (``count(*) AS n ... HAVING n > 1``): the engine binds WHERE and HAVING to input columns only
    (PostgreSQL), so the hint says to repeat the expression. Else None."""
    found = _MISSING_COLUMN.search(message)
    if found is None or not code:
        return None
    name = found.group(1)
    try:
        trees = sqlglot_dialect(traits.sqlglot_dialect).parse(code)
    except Exception:  # only the wording of a refusal depends on it
        return None
    for alias in (a for tree in trees if tree is not None for a in tree.find_all(exp.Alias)):
        ident = alias.args.get("alias")
        written = ident.name if isinstance(ident, exp.Identifier) else alias.alias
        quoted = isinstance(ident, exp.Identifier) and ident.quoted
        if written == name or (not quoted and written.lower() == name.lower()):
            return (
                f"`{name}` is the alias of an output column ({alias.this.sql(traits.sqlglot_dialect)[:80]}), "
                f"and {traits.display_name} does not let WHERE or HAVING use output aliases: repeat the "
                "expression there, or compute it in a subquery or CTE and filter outside it."
            )
    return None


# The same, where the name is written bare or qualified (PostgreSQL: `column t.strpos does not exist`)
# or as DuckDB's `does not have a column named "n"`.
_MISSING_NAME = re.compile(
    r'column (?:"([^"]+)"|([A-Za-z_][\w$]*(?:\.[A-Za-z_][\w$]*)*)) (?:does not exist|not found)'
    r'|does not have a column named "([^"]+)"'
)


def engine_named_hint(message: str, code: str, traits: EngineTraits) -> str | None:
    """When the column the database could not find may be meant as a select item without ``AS``
    (``SELECT t.count FROM (SELECT count(*) FROM orders) t`` on DuckDB, which names that item
    "count_star()"): say to name it. Else None."""
    found = _MISSING_NAME.search(message)
    if found is None or not code:
        return None
    name = next(g for g in found.groups() if g)
    try:
        trees = sqlglot_dialect(traits.sqlglot_dialect).parse(code)
    except Exception:  # only the wording of a refusal depends on it
        return None
    for tree in trees:
        if tree is not None:
            hint = unnamed_item_hint(tree, name, traits.sqlglot_dialect, by_call=False)
            if hint is not None:
                return hint
    return None


_PRIVILEGE_HINT = (
    "The database role may read only the tables and columns you are shown, and it checks every "
    "column a * expands to, also inside a CTE or subquery: name the columns you need instead of *."
)


async def explain_or_refusal(executor: Executor, sql: str) -> tuple[Any, BoundAccess | None]:
    """(the engine's plan of ``sql``, None), or (None, the refusal) when it cannot plan it."""
    return await planned_or_refusal(executor.explain(sql))


def table_lookup(snapshot: SchemaSnapshot) -> Any:
    def lookup(schema: str, table: str) -> tuple[list[str], float | None] | None:
        info = snapshot.table(table, schema or None)
        if info is None or (schema and info.schema and info.schema.lower() != schema):
            return None
        return [c.name for c in info.columns], (float(info.row_count) if info.row_count else None)

    return lookup


def _unreadable(problems: list[str]) -> Confirmation:
    """Fail closed: a plan sqlmode cannot fully account for is refused."""
    shown = "; ".join(dict.fromkeys(problems[:3]))
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    msg = f"sqlmode cannot account for everything the database's plan reads: {shown}{more}."
    return Confirmation(violations=(violation("ENGINE_REFUSED", msg),), risk=RiskLevel.HIGH)


def _verdict(
    violations: list[Violation],
    facts: PlanFacts,
    show_cost: bool,
    *,
    estimates: bool = True,
    summary: bool = False,
) -> Confirmation:
    if not estimates:
        # ``summary``: what the plan reads, without figures (none were asked for).
        return Confirmation(
            violations=tuple(violations),
            tables=tuple(sorted({dotted(s.schema, s.table) for s in facts.scans})),
            columns=tuple(sorted(f"{t}.{c}" for _, t, c in facts.columns)),
            functions=tuple(sorted(dotted(s, n) for s, n in facts.functions)),
            summary=_reads_summary(facts) if summary else "",
        )
    reads: dict[str, float] = {}
    for scan in facts.scans:
        reads[scan.table] = reads.get(scan.table, 0.0) + scan.rows
    ordered = tuple(sorted(reads.items(), key=lambda kv: -kv[1]))
    risk = RiskLevel.LOW
    if facts.peak_rows >= RISK_HIGH_ROWS:
        risk = RiskLevel.HIGH
    elif facts.peak_rows >= RISK_MEDIUM_ROWS:
        risk = RiskLevel.MEDIUM
    return Confirmation(
        violations=tuple(violations),
        tables=tuple(sorted({dotted(s.schema, s.table) for s in facts.scans})),
        columns=tuple(sorted(f"{t}.{c}" for _, t, c in facts.columns)),
        functions=tuple(sorted(dotted(s, n) for s, n in facts.functions)),
        estimated_rows=facts.peak_rows,
        estimated_cost=facts.cost,
        reads=ordered,
        risk=risk,
        summary=_summary(ordered, facts, show_cost),
    )


def _reads_summary(facts: PlanFacts) -> str:
    tables = list(dict.fromkeys(s.table for s in facts.scans))
    if not tables:
        return "The database plans to read no stored table."
    shown = tables[:4] + ([f"{len(tables) - 4} more tables"] if len(tables) > 4 else [])
    listed = ", ".join(shown[:-1]) + (" and " if len(shown) > 1 else "") + shown[-1]
    return f"The database plans to read {listed}."


def _rows(n: float) -> str:
    return f"about {human(n)} row{'' if round(n) == 1 else 's'}"


def _summary(reads: tuple[tuple[str, float], ...], facts: PlanFacts, show_cost: bool) -> str:
    parts = [f"{_rows(rows)} of {table}" for table, rows in reads[:4]]
    if len(reads) > 4:
        parts.append(f"{len(reads) - 4} more tables")
    if not parts:
        head = "The database plans to read no stored table"
    else:
        listed = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
        head = f"The database estimates it scans {listed}"
    tail = f"; the largest step handles {_rows(facts.peak_rows)}"
    if show_cost:
        tail += f" (estimated cost {human(facts.cost)})"
    return head + tail + "."
