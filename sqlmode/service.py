"""CodeModeService: the one place that knows the order of the pipeline.

    async with CodeModeService.from_config("sqlmode.toml") as service:
        v = await service.validate(sql, user="ana", session="s1")
        if v.is_valid:
            result = await service.execute(v.normalized_code, v.approval_token, user="ana", session="s1")

validate: analyze -> policy -> (valid) mint token bound to code hash, user, session,
schema hash and policy hash -> audit. execute: re-analyze (the schema or policy may
have changed) -> check the token -> kill switch -> re-check analysis, action, risk and
policy -> consume the token's nonce in the state store -> audit the intent -> run the
normalized code under limits -> audit the outcome. An audit or state store failure refuses
the call.

Parts built elsewhere come in by injection (``engine``, ``state``, ``audit``, ``evaluator``);
the service opens and closes only what it built itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime
from os import PathLike
from typing import Any

from .analyze import Analyzer
from .analyze.cache import AnalysisCache, config_hash
from .analyze.pivot import expand_pivots, only_unlisted_pivots
from .approval import ApprovalBook, needs_approval
from .approval.notify import notify_approvers
from .audit import AuditSink, open_audit_sink
from .config import Settings, load_config
from .engines import Engine, engine_for_url
from .errors import (
    AnalysisTimeoutError,
    ApprovalError,
    ApprovalPending,
    AuditError,
    ConfigError,
    SqlmodeError,
    TokenCodeMismatchError,
    TokenReplayError,
    TokenScopeChangedError,
)
from .execute import open_executor
from .execute.confirm import EngineConfirmer, WorkerCheck
from .models import (
    Action,
    Analysis,
    ApprovalNeeded,
    Decision,
    Principal,
    QueryResult,
    RiskLevel,
    ValidationResult,
    Violation,
)
from .policy import PolicyEvaluator, build_evaluator, principal_from_config
from .schema import SchemaSnapshot, parse_shown_name, reflect_schema, render_schema, render_table, shown_names
from .schema.names import check_config_names
from .state import StateStore, open_state_store
from .token import TokenClaims, TokenService, code_hash
from .workers import AnalysisPool

log = logging.getLogger("sqlmode.service")


class CodeModeService:
    """The validate/execute pipeline over one configured database. Use as an async context manager."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        state: StateStore | None = None,
        audit: AuditSink | None = None,
        evaluator: PolicyEvaluator | None = None,
        allow_ephemeral_secret: bool = True,
    ):
        """``engine`` (an :class:`~sqlmode.engines.Engine`; default: the one registered for
        ``database.url``'s scheme), ``state``, ``audit`` and ``evaluator`` built elsewhere replace
        what the config would build; the owner of a state store, sink or evaluator opens and closes
        it. The service opens its executors through the engine and closes them."""
        self.settings = settings
        self._allow_ephemeral_secret = allow_ephemeral_secret
        self.engine: Engine = engine if engine is not None else engine_for_url(settings.database.url)
        self._given_state = state
        self._given_audit = audit
        self._given_evaluator = evaluator
        self._stack: AsyncExitStack | None = None
        self._snapshot: SchemaSnapshot | None = None
        self._snapshot_at = 0.0
        self._schema_lock = asyncio.Lock()
        self.analyzer: Analyzer
        self.evaluator: PolicyEvaluator
        self.tokens: TokenService
        self.audit: AuditSink
        self.state: StateStore
        self.approvals: ApprovalBook
        self._background: set[asyncio.Task[Any]] = set()
        self.executor: Any = None  # an Executor, opened through self.engine
        self._write_executor: Any = None
        # The database confirms each analysis (None when code_mode.engine_confirmation is off).
        self.confirmer: EngineConfirmer | None = None

    @classmethod
    def from_config(
        cls, path: str | PathLike[str] | None = None, *, allow_ephemeral_secret: bool = True, **overrides: Any
    ) -> CodeModeService:
        """A service for the TOML config at ``path`` (default: $SQLMODE_CONFIG, else the sample)."""
        return cls(load_config(path, **overrides), allow_ephemeral_secret=allow_ephemeral_secret)

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> CodeModeService:
        stack = AsyncExitStack()
        try:
            await self._open(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def _open(self, stack: AsyncExitStack) -> None:
        s = self.settings
        if s.database.build_sample:
            from .sample import ensure_sample_db

            if await asyncio.to_thread(ensure_sample_db, s):
                log.info("built the sample warehouse at %s", s.database.duckdb_path)
        if self._given_state is not None:
            self.state = self._given_state
        else:
            self.state = await open_state_store(s)
            stack.push_async_callback(self.state.close)
        self.approvals = ApprovalBook(s.approval, self.state)
        # Without durable shared state a spent nonce is forgotten at exit: a boot id signed into
        # every token voids them all with the process instead.
        boot_id = None if self.state.durable else secrets.token_hex(8)
        self.tokens = TokenService.from_settings(
            s, allow_ephemeral=self._allow_ephemeral_secret, boot_id=boot_id
        )
        self.analyzer = Analyzer(s, self.engine)
        # execute_code reuses validate_code's analysis of the same text (analyze/cache.py).
        self.analysis_cache = AnalysisCache()
        self._config_hash = config_hash(s)
        self.analysis_pool = AnalysisPool(s.server.analysis_workers, s.server.analysis_timeout_ms)
        stack.callback(self.analysis_pool.close)
        self.evaluator = self._given_evaluator or build_evaluator(s)
        if self.engine.traits.executor_reflects:
            # The executor reads the schema on the connection it proves the query role with.
            try:
                self.executor = await stack.enter_async_context(open_executor(s, engine=self.engine))
            except ConfigError as e:
                # A name matching nothing is the first thing to fix (the role's proof reads the
                # names), worth a reflection of its own on this failure path.
                if e.code == "READER_ROLE_UNSAFE":
                    try:
                        snapshot = await reflect_schema(s)
                    except SqlmodeError:
                        raise e from None
                    check_config_names(s, snapshot)
                raise
            self._snapshot, self._snapshot_at = getattr(self.executor, "snapshot", None), time.monotonic()
        # A blocked or allowed name that matches nothing would silently not apply: refuse to start.
        check_config_names(s, self._snapshot if self._snapshot is not None else await self.refresh_schema())
        if self._given_audit is not None:
            self.audit = self._given_audit
        else:
            # A key file beside the log is allowed where an ephemeral token secret is (stdio, CLI).
            self.audit, opened = await open_audit_sink(s, allow_key_file=self._allow_ephemeral_secret)
            for sink in opened:
                stack.push_async_callback(sink.aclose)
        if self.executor is None:
            # Engines with roles prove at start-up that the query role reads nothing the snapshot blocks.
            reader = open_executor(s, self._snapshot, engine=self.engine)
            self.executor = await stack.enter_async_context(reader)
        if s.code_mode.engine_confirmation:
            self.confirmer = EngineConfirmer(s, self.executor, engine=self.engine)
        # allow_deletes alone changes nothing: deletes need allow_writes too (policies/README.md).
        if s.code_mode.allow_writes:
            from .execute import open_write_executor

            self._write_executor = await stack.enter_async_context(open_write_executor(s, engine=self.engine))

    # -- schema ---------------------------------------------------------------------------

    async def refresh_schema(self) -> SchemaSnapshot:
        """Reflect the database again now (on demand)."""
        async with self._schema_lock:
            reflect = getattr(self.executor, "reflect", None)
            snapshot = await (reflect() if reflect is not None else reflect_schema(self.settings))
            # A refresh may bring new tables, columns or views: the database must still stop the
            # query role at every blocked one, or nothing is served from the new snapshot.
            check = getattr(self.executor, "check_access", None)
            if check is not None:
                await check(snapshot)
            self._snapshot = snapshot
            self._snapshot_at = time.monotonic()
            return self._snapshot

    async def schema(self) -> SchemaSnapshot:
        """The current snapshot, re-reflected when older than database.schema_ttl_seconds."""
        ttl = self.settings.database.schema_ttl_seconds
        if self._snapshot is None or (ttl and time.monotonic() - self._snapshot_at > ttl):
            return await self.refresh_schema()
        return self._snapshot

    async def schema_text(self, table: str | None = None) -> str:
        """The bounded schema rendered for an LLM, or one table of it."""
        bounded = (await self.schema()).bounded()
        if table is None:
            if getattr(self.executor, "privileged", False):
                # database.allow_privileged_role: say so where every reader of the schema sees it.
                return (
                    "# WARNING: development mode (database.allow_privileged_role): the database "
                    "does not stop queries at blocked data.\n" + render_schema(bounded)
                )
            return render_schema(bounded)
        schema, name = parse_shown_name(table)
        key = bounded.key_of(name, schema)
        t = bounded.tables.get(key)
        if t is None:
            same = bounded.ambiguous(table)
            shown = repr(table if len(table) <= 80 else table[:80] + "...")  # never echo a long input
            raise SqlmodeError(
                f"no table {shown} in the schema you may query"
                + (f": several schemas have one, name it as {' or '.join(same)}" if same else ""),
                code="UNKNOWN_TABLE",
                hint="Tables: " + ", ".join(sorted(bounded.display_name(k) for k in bounded.tables)),
            )
        display, quote = shown_names(bounded)
        return render_table(t, display(key), display, quote=quote)

    # -- principals -----------------------------------------------------------------------

    def principal(
        self,
        user: str | None,
        session: str | None,
        groups: list[str] | tuple[str, ...] | None,
        external: bool = False,
    ) -> Principal:
        """Who asks (see :func:`~sqlmode.policy.request.principal_from_config`)."""
        return principal_from_config(self.settings, user, session, groups, external=external)

    # -- the pipeline -----------------------------------------------------------------------

    async def _analyze(
        self,
        code: str,
        snapshot: SchemaSnapshot,
        on_done: Callable[[], None] | None = None,
        *,
        pivots: bool = False,
        principal: Principal | None = None,
        explanation: bool = True,
        then: Callable[[Analysis], None] | None = None,
    ) -> Analysis:
        """The analyzer's verdict, computed on a worker under server.analysis_timeout_ms (or cached).

        With ``pivots``, a DuckDB PIVOT without IN list gets its values listed first: the
        distinct-values query passes the analyzer, the engine and (given a principal) the policy
        before it runs read-only under the usual limits (analyze/pivot.py).
        """
        cache, keys = self.analysis_cache, (snapshot.content_hash, self._config_hash)
        hit = cache.get(code, *keys, explanation=explanation)
        if hit is not None:
            if on_done is not None:
                on_done()
            analysis = hit
        else:
            analysis = await self.analysis_pool.analyze(
                self.analyzer, code, snapshot, on_done, explanation=explanation, then=then
            )
            cache.put(code, *keys, analysis, explanation=explanation)
        if not pivots or not self._unlisted_pivots(analysis):
            return analysis
        return await self._list_pivots(code, analysis, snapshot, principal)

    def _unlisted_pivots(self, analysis: Analysis) -> bool:
        """The analyzer refused only PIVOTs without IN list, on an engine whose values can be listed."""
        return self.engine.traits.pivot_without_values and only_unlisted_pivots(analysis)

    async def _list_pivots(
        self, code: str, analysis: Analysis, snapshot: SchemaSnapshot, principal: Principal | None
    ) -> Analysis:
        """``code`` with its PIVOTs' values listed (a distinct-values query runs), or why not."""

        async def check(sql: str) -> Analysis:
            a = await analyze(sql)
            await self._confirm(a, snapshot)
            if a.ok and principal is not None and not (d := self._decide(principal, a)).allowed:
                denied = Violation(code="POLICY_DENIED", message="; ".join(d.reasons) or "denied")
                a.violations.extend(d.violations or [denied])
            return a

        async def analyze(sql: str) -> Analysis:
            return await self.analysis_pool.analyze(self.analyzer, sql, snapshot, None)

        async def run(sql: str, max_rows: int) -> tuple[list[list[Any]], bool]:
            result = await self.executor.run(sql, max_rows=max_rows)
            return result.rows, result.truncated

        return await expand_pivots(code, analysis, check, analyze, run)

    async def use_analysis_processes(self) -> None:
        """Analyze in worker processes from now on (HTTP serving: no lock shared with the event loop)."""
        s = self.settings.server
        pool = AnalysisPool(s.analysis_workers, s.analysis_timeout_ms, processes=self.settings)
        try:
            await pool.start(await self.schema())
        except BaseException:
            pool.close()
            raise
        old, self.analysis_pool = self.analysis_pool, pool
        old.close()
        if self._stack is not None:
            self._stack.callback(pool.close)

    async def analyze(self, code: str) -> Analysis:
        snapshot = await self.schema()
        analysis = await self._analyze(code, snapshot, pivots=True)
        await self._confirm(analysis, snapshot)
        return analysis

    async def _confirm(
        self, analysis: Analysis, snapshot: SchemaSnapshot, early: WorkerCheck | None = None
    ) -> None:
        """The database describes the normalized query (cached); its verdict joins the analysis.

        Adds violations, raises the risk level with the plan's estimates, appends them to the
        explanation and sets estimated_rows / estimated_cost, which Cedar reads. ``early``: the
        analysis worker's hook (:meth:`_worker_check`), used here or discarded.
        """
        try:
            if self.confirmer is not None and analysis.ok:
                c = await self.confirmer.confirm(
                    analysis, snapshot, policy_reads_estimates=self._reads_estimates(), early=early
                )
                c.apply(analysis)
        finally:
            if early is not None:
                early.close()

    def _reads_estimates(self) -> bool:
        # An evaluator that does not say whether it reads the estimates is given them.
        return bool(getattr(self.evaluator, "reads_plan_estimates", True))

    def _worker_check(self, snapshot: SchemaSnapshot) -> WorkerCheck | None:
        """A hook for the analysis worker to run the engine's call once the analysis passed (thread
        workers only: a worker process cannot reach the executor)."""
        if self.confirmer is None or self.analysis_pool.processes:
            return None
        return self.confirmer.worker_check(snapshot, policy_reads_estimates=self._reads_estimates())

    async def validate(
        self,
        code: str,
        *,
        user: str | None = None,
        session: str | None = None,
        groups: list[str] | tuple[str, ...] | None = None,
        external: bool = False,
        on_analyzed: Callable[[], None] | None = None,
    ) -> ValidationResult:
        """Analyze, decide and (when allowed) sign ``code``. Never raises for bad SQL.

        ``on_analyzed`` is called once: when the analysis thread is done (past its deadline too), or
        at once when no analysis was started.
        """
        started = time.perf_counter()
        try:
            principal = self.principal(user, session, groups, external)
            snapshot = await self.schema()
        except BaseException:
            if on_analyzed is not None:  # no analysis was started
                on_analyzed()
            raise
        source: str | None = None
        early = self._worker_check(snapshot)
        try:
            analysis = await self._analyze(code, snapshot, on_analyzed, principal=principal, then=early)
            if self._unlisted_pivots(analysis):
                # Executing this very code lists the values again: the token names it too, so
                # execute checks the token before that query runs.
                analysis = await self._list_pivots(code, analysis, snapshot, principal)
                source = code_hash(code)
        except AnalysisTimeoutError as e:  # refused, with the hint, like any other violation
            analysis = Analysis(
                dialect=self.engine.traits.name,
                code=code,
                violations=[Violation(code=e.code, message=e.message, hint=e.hint)],
                risk_level=RiskLevel.CRITICAL,
            )
        except BaseException:
            if early is not None:
                early.close()
            raise
        await self._confirm(analysis, snapshot, early)  # before the policy decision and any token
        decision = self._decide(principal, analysis)
        violations = list(analysis.violations) + list(decision.violations)
        valid = not violations and decision.allowed and self.settings.code_mode.enabled
        if not self.settings.code_mode.enabled:
            violations.append(
                Violation(code="CODE_MODE_DISABLED", message="Code mode is disabled in this server's config.")
            )
        chash = code_hash(analysis.normalized_code or code)
        token: str | None = None
        expires: datetime | None = None
        approval: ApprovalNeeded | None = None
        ttl: int | None = None
        if valid and needs_approval(self.settings.approval, analysis, decision):
            ap = self.settings.approval
            approval = ApprovalNeeded(
                approvers=ap.approvers_group, required=ap.required, expires_seconds=ap.expires_seconds
            )
            # The token must outlive the person's decision, then leave the usual time to run.
            ttl = ap.expires_seconds + self.settings.code_mode.token_ttl_seconds
        if valid:
            token, expires = self.tokens.mint(
                ttl_seconds=ttl,
                code_hash=chash,
                user=principal.user,
                session=principal.session,
                schema_hash=snapshot.schema_hash,
                policy_hash=self.evaluator.policy_hash,
                action=analysis.action.value,
                risk=analysis.risk_level.value,
                source_hash=source,
            )
        result = ValidationResult(
            is_valid=valid,
            dialect=analysis.dialect,
            statement_type=analysis.statement_type,
            action=analysis.action,
            risk_level=analysis.risk_level,
            explanation=analysis.explanation,
            tables=analysis.tables,
            columns=analysis.columns,
            complexity=analysis.complexity,
            violations=violations,
            normalized_code=analysis.normalized_code,
            code_hash=chash,
            approval_token=token,
            expires_at=expires.isoformat() if expires else None,
            approval=approval,
        )
        await self._audit(
            "validate",
            principal,
            code=code,
            code_hash=chash,
            decision="allowed" if valid else "denied",
            policies=list(decision.policy_ids),
            violations=[v.code for v in violations],
            risk=analysis.risk_level.value,
            action=analysis.action.value,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return result

    def _decide(self, principal: Principal, analysis: Analysis) -> Decision:
        if not analysis.ok:
            return Decision(allowed=False, reasons=("the analyzer refused the code",))
        return self.evaluator.evaluate(principal, analysis)

    async def execute(
        self,
        code: str,
        approval_token: str,
        *,
        user: str | None = None,
        session: str | None = None,
        groups: list[str] | tuple[str, ...] | None = None,
        external: bool = False,
        max_rows: int | None = None,
        timeout_ms: int | None = None,
        approval: str | None = None,
    ) -> QueryResult:
        """Verify the token for this exact code and principal, re-check, run, audit.

        ``approval`` names how a person approved the run (e.g. elicitation); it goes into the audit record.
        A cancelled call (the MCP client cancelled the request) is audited as ``cancelled`` and re-raised.
        """
        started = time.perf_counter()
        principal = self.principal(user, session, groups, external)
        snapshot = await self.schema()
        chash = code_hash(code)  # until the analysis (which may be refused) gives the normalized code
        try:
            # No explanation: nobody reads one here (validate's cached analysis has it anyway).
            analysis = await self._analyze(code, snapshot, principal=principal, explanation=False)
            listed = self._unlisted_pivots(analysis)
            if listed:
                # Listing the values runs a query: only for an unspent token minted for this very code.
                spent = self._token(approval_token, chash, principal, snapshot, source=True)
                if await self.state.nonce_used(spent.nonce):
                    raise TokenReplayError("the approval token was already used")
                analysis = await self._list_pivots(code, analysis, snapshot, principal)
                if not analysis.ok:
                    raise self._no_longer_valid(analysis)
            chash = code_hash(analysis.normalized_code or code)
            # Token first: a forged or foreign token says so before anything else is revealed.
            try:
                claims = self._token(approval_token, chash, principal, snapshot)
            except TokenCodeMismatchError:
                if not listed:
                    raise
                raise TokenCodeMismatchError(
                    "the PIVOT's values are no longer the ones listed at validation (the data changed), "
                    "so its columns would differ from the approved query's"
                ) from None
            # The same engine verdict as at validation (a cache hit unless the schema moved).
            await self._confirm(analysis, snapshot)
            if not analysis.ok:
                raise self._no_longer_valid(analysis)
            # What the user was shown and approved: the action, and a risk level no lower than now.
            if claims.action != analysis.action.value:
                raise TokenScopeChangedError(
                    f"the token approved a {claims.action} query; this code is {analysis.action.value}"
                )
            if claims.risk not in RiskLevel.__members__.values() or (
                analysis.risk_level.rank > RiskLevel(claims.risk).rank
            ):
                raise TokenScopeChangedError(
                    f"the token approved risk {claims.risk}; this code is now {analysis.risk_level.value}"
                )
            decision = self.evaluator.evaluate(principal, analysis)
            if not decision.allowed:
                raise ApprovalError(
                    "the current policy refuses this code: "
                    + "; ".join(decision.reasons or decision.policy_ids),
                    violations=list(decision.violations),
                )
            if needs_approval(self.settings.approval, analysis, decision):
                approval = await self._human_approval(claims, principal, chash, snapshot, analysis, decision)
            # Last: the token is spent only by a call that is going to run (StateError if the store fails).
            if not await self.state.consume_nonce(claims.nonce, self.tokens.nonce_expiry(claims)):
                raise TokenReplayError("the approval token was already used")
        except SqlmodeError as e:
            await self._audit(
                "execute",
                principal,
                code=code,
                code_hash=chash,
                decision="pending" if isinstance(e, ApprovalPending) else "refused",
                error=e.code,
                **({"approval_id": e.data.get("id")} if isinstance(e, ApprovalPending) else {}),
            )
            raise
        await self._audit(
            "execute",
            principal,
            code=code,
            code_hash=chash,
            decision="run",
            approval=approval,
            nonce=claims.nonce,  # which approval was spent: one "run" per nonce, across replicas
            policies=list(decision.policy_ids),
            risk=analysis.risk_level.value,
            action=analysis.action.value,
        )
        try:
            if analysis.action in (Action.WRITE, Action.DELETE):
                if self._write_executor is None:  # unreachable past the analyzer and Cedar; fail closed
                    raise ApprovalError("writes are disabled on this server", code="WRITE_NOT_ALLOWED")
                await self._anchored()  # a write changes the database: its intent fully anchored first
                result = await self._write_executor.run_write(
                    analysis.normalized_code, max_affected=self.settings.code_mode.max_write_rows
                )
            else:
                result = await self.executor.run(
                    analysis.normalized_code, max_rows=max_rows, timeout_ms=timeout_ms
                )
        except asyncio.CancelledError:
            await self._audit_shielded(
                "executed",
                principal,
                code_hash=chash,
                decision="cancelled",
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
            raise
        except SqlmodeError as e:
            await self._audit(
                "executed",
                principal,
                code_hash=chash,
                decision="failed",
                error=e.code,
                message=e.message,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
            raise
        result.code_hash = chash
        await self._audit(
            "executed",
            principal,
            code_hash=chash,
            decision="ok",
            rows=result.row_count,
            # Writes: the rows the engine changed (RETURNING rows are not the count).
            **({"affected_rows": result.affected_rows} if hasattr(result, "affected_rows") else {}),
            truncated=result.truncated,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        # The intent's durable anchor was synced while the query ran (and the outcome was written):
        # no row leaves before it is on disk (AuditError otherwise).
        await self._anchored()
        return result

    def _token(
        self, token: str, chash: str, principal: Principal, snapshot: SchemaSnapshot, *, source: bool = False
    ) -> TokenClaims:
        """The token's claims for this code, principal, schema and policy; with code mode on."""
        claims = self.tokens.check(
            token,
            code_hash=chash,
            user=principal.user,
            session=principal.session,
            schema_hash=snapshot.schema_hash,
            policy_hash=self.evaluator.policy_hash,
            source=source,
        )
        # The kill switch stops tokens issued before it was thrown, too.
        if not self.settings.code_mode.enabled:
            raise ApprovalError(
                "code mode is disabled in this server's config; nothing runs",
                code="CODE_MODE_DISABLED",
                hint="An administrator turned code mode off; do not retry.",
            )
        return claims

    @staticmethod
    def _no_longer_valid(analysis: Analysis) -> ApprovalError:
        return ApprovalError(
            "the code no longer passes validation: "
            + "; ".join(f"{v.code}: {v.message}" for v in analysis.violations),
            violations=analysis.violations,
        )

    async def _human_approval(
        self,
        claims: Any,
        principal: Principal,
        chash: str,
        snapshot: SchemaSnapshot,
        analysis: Analysis,
        decision: Decision,
    ) -> str:
        """Wait for (or open) the human approval of this token's run; what the audit calls the approval.

        Raises ApprovalPending while undecided (first sight: at once; later calls after
        ``approval.wait_seconds``), HumanApprovalError when denied, expired, used or mismatched.
        """
        book = self.approvals
        rec, created = await book.open(
            nonce=claims.nonce,
            nonce_expires_at=self.tokens.nonce_expiry(claims),
            principal=principal,
            code_hash=chash,
            schema_hash=snapshot.schema_hash,
            policy_hash=self.evaluator.policy_hash,
            analysis=analysis,
            reasons=self.approval_reasons(analysis, decision),
        )
        if created:
            await self._audit(
                "approval_requested",
                principal,
                approval_id=rec["id"],
                code_hash=chash,
                risk=rec["risk"],
                action=rec["action"],
                approvers=rec["approvers_group"],
                required=rec["required"],
            )
            self._notify(rec)
        elif rec["status"] == "pending":
            rec = await book.wait(rec["id"], self.settings.approval.wait_seconds)
        if rec["status"] == "pending" and time.time() <= rec["expires_at"]:
            t = book.ticket(rec)
            raise ApprovalPending(
                f"a member of {t.approvers!r} must approve this query first; nothing ran",
                id=t.id,
                url=t.url,
                approvers=t.approvers,
                required=t.required,
                code_hash=chash,
            )
        used = await book.consume(rec["id"], code_hash=chash, requester=principal.user)
        approvers = [d["who"] for d in used["decisions"] if d["verdict"] == "approve"]
        await self._audit(
            "approval_used", principal, approval_id=used["id"], code_hash=chash, approvers=approvers
        )
        return f"human approval {used['id']} by {', '.join(approvers)}"

    def approval_reasons(self, analysis: Analysis, decision: Decision | None = None) -> list[str]:
        """Why ``analysis`` waits for a person, in the config's and the policies' words."""
        ap = self.settings.approval
        out = []
        if analysis.risk_level.value in ap.risk_levels:
            out.append(f"risk level {analysis.risk_level.value}")
        if analysis.action.value in ap.actions:
            out.append(f"action {analysis.action.value}")
        return out + list(decision.approval if decision is not None else ())

    def _notify(self, record: dict[str, Any]) -> None:
        """Tell approvers through ``approval.webhook_url`` in the background (never delays the caller)."""
        if not self.settings.approval.webhook_url:
            return
        task = asyncio.create_task(
            notify_approvers(self.settings.approval, record, self.approvals.url_of(record["id"]))
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def decide_approval(
        self, request_id: str, approver: Principal, verdict: str, comment: str = ""
    ) -> dict[str, Any]:
        """Record an approver's decision (audited, refused ones too); the updated request."""
        try:
            rec = await self.approvals.decide(request_id, approver, verdict, comment)
        except SqlmodeError as e:
            await self._audit(
                "approval_decision", approver, approval_id=request_id[:64], verdict=verdict, error=e.code
            )
            raise
        await self._audit(
            "approval_decision",
            approver,
            approval_id=request_id,
            verdict=verdict,
            status=rec["status"],
            code_hash=rec["code_hash"],
            requester=rec["requester"],
            comment=comment[:2000],
        )
        return rec

    async def record_declined(
        self,
        code: str,
        *,
        user: str | None = None,
        session: str | None = None,
        groups: list[str] | tuple[str, ...] | None = None,
        external: bool = False,
    ) -> SqlmodeError:
        """Audit that a person declined to run ``code``; the error to hand back (AuditError if unrecorded)."""
        err = ApprovalError(
            "the user declined to run this query; nothing was run",
            code="USER_DECLINED",
            hint="Ask the user what they want changed; do not run the same query again without asking.",
        )
        normalized = ""
        if self._snapshot is not None:
            # Off the event loop like every analysis; past the deadline the hash is the raw code's.
            with contextlib.suppress(AnalysisTimeoutError):
                normalized = (await self._analyze(code, self._snapshot)).normalized_code
        try:
            await self._audit(
                "execute",
                self.principal(user, session, groups, external),
                code=code,
                code_hash=code_hash(normalized or code),
                decision="declined",
                error=err.code,
            )
        except AuditError as e:
            return e
        return err

    async def _audit(self, event: str, principal: Principal, **fields: Any) -> None:
        """Append one record; the sink waits for the disk only for an intent (``audit.is_intent``)."""
        await self.audit.append_async(self._record(event, principal, fields))

    async def _anchored(self) -> None:
        """Wait for the sink's durable anchor to name the records synced so far (file sinks; AuditError).

        An intent's caller goes on once the log itself is synced; the anchor's own sync overlaps the
        query (docs/state-and-audit.md says why that keeps what ``audit verify`` can tell).
        """
        wait = getattr(self.audit, "anchored", None)
        if wait is not None:
            await wait()

    async def _audit_shielded(self, event: str, principal: Principal, **fields: Any) -> None:
        """For a cancelled task: the record is written even if the caller is cancelled again meanwhile."""
        await asyncio.shield(self.audit.append_async(self._record(event, principal, fields)))

    @staticmethod
    def _record(event: str, principal: Principal, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "event": event,
            "user": principal.user,
            "groups": list(principal.groups),
            "session": principal.session,
            **fields,
        }
