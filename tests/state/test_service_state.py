"""The service with and without a shared store: restarts, replicas (two services, one store), the kill
switch, action and risk at execution, store failures, configuration errors, injection."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sqlmode import AuditSink, PolicyEvaluator, StateStore
from sqlmode.config import Settings
from sqlmode.errors import (
    ApprovalError,
    ConfigError,
    SecretError,
    SqlmodeError,
    StateError,
    TokenInstanceError,
    TokenReplayError,
    TokenScopeChangedError,
)
from sqlmode.sample import long_tail_sql
from sqlmode.service import CodeModeService
from sqlmode.state import MemoryStateStore
from sqlmode.token import code_hash
from tests.plugins.postgres import create_database
from tests.server.conftest import AUTH

SQL = "SELECT region, count(*) AS n FROM customers GROUP BY region ORDER BY region"
REGIONS = [["APAC", 427], ["EMEA", 611], ["LATAM", 186], ["NA", 776]]  # the sample warehouse, scale 1


def records(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(x) for x in Path(settings.audit.path).read_text().splitlines()]


async def validate(settings: Settings, sql: str = SQL) -> tuple[str, str]:
    async with CodeModeService(settings) as svc:
        v = await svc.validate(sql, user="ana", session="s1")
        assert v.is_valid, v.violations
        return v.normalized_code, v.approval_token or ""


async def run(settings: Settings, code: str, token: str) -> list[list[Any]]:
    async with CodeModeService(settings) as svc:
        return (await svc.execute(code, token, user="ana", session="s1")).rows


@pytest.fixture
def sqlite_state(make_settings: Callable[..., Settings], tmp_path: Path) -> Callable[..., Settings]:
    def make(overrides: dict[str, Any] | None = None) -> Settings:
        from sqlmode.config import deep_merge

        return make_settings(
            deep_merge({"state": {"url": f"sqlite:///{tmp_path / 'state.db'}"}}, overrides or {})
        )

    return make


async def test_without_a_store_a_restart_voids_every_token(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    code, unused = await validate(settings)
    code, used = await validate(settings)
    async with CodeModeService(settings) as svc:  # "the restarted server"
        for token in (unused, used):
            with pytest.raises(TokenInstanceError) as e:
                await svc.execute(code, token, user="ana", session="s1")
            assert e.value.code == "TOKEN_OTHER_INSTANCE"
    # The same process still runs its own tokens, once.
    async with CodeModeService(settings) as svc:
        v = await svc.validate(SQL, user="ana", session="s1")
        assert (await svc.execute(code, v.approval_token or "", user="ana", session="s1")).rows == REGIONS
        with pytest.raises(TokenReplayError):
            await svc.execute(code, v.approval_token or "", user="ana", session="s1")
    assert [r["error"] for r in records(settings) if r["decision"] == "refused"] == [
        "TOKEN_OTHER_INSTANCE",
        "TOKEN_OTHER_INSTANCE",
        "TOKEN_ALREADY_USED",
    ]


async def test_with_a_store_a_token_survives_a_restart_and_runs_once(
    sqlite_state: Callable[..., Settings],
) -> None:
    settings = sqlite_state()
    code, token = await validate(settings)  # process A issues
    assert await run(settings, code, token) == REGIONS  # process B (a restart) runs it
    for _ in range(2):  # and any later process refuses the replay
        with pytest.raises(TokenReplayError):
            await run(settings, code, token)
    # A token minted by a store-less process is refused by a store-backed one: its nonce was never
    # shared, so its single use could not be promised.
    _, storeless = await validate(sqlite_state({"state": {"url": "memory://"}}))
    with pytest.raises(TokenInstanceError, match="server without shared state"):
        await run(settings, code, storeless)


async def test_the_kill_switch_stops_tokens_issued_before_it(sqlite_state: Callable[..., Settings]) -> None:
    settings = sqlite_state()
    code, token = await validate(settings)
    off = sqlite_state({"code_mode": {"enabled": False}})
    with pytest.raises(ApprovalError) as e:
        await run(off, code, token)
    assert e.value.code == "CODE_MODE_DISABLED"
    assert records(off)[-1]["decision"] == "refused" and records(off)[-1]["error"] == "CODE_MODE_DISABLED"
    assert not any(r["event"] == "executed" for r in records(off))
    # Not spent by the refusal: switched back on, the same token runs.
    assert await run(settings, code, token) == REGIONS


async def test_the_signed_action_and_risk_are_checked_at_execution(
    sqlite_state: Callable[..., Settings],
) -> None:
    settings = sqlite_state()
    long_sql = long_tail_sql("duckdb")
    async with CodeModeService(settings) as svc:
        v = await svc.validate(long_sql, user="ana", session="s1")
        assert v.is_valid and v.risk_level != "low"  # otherwise this test proves nothing
        snapshot = await svc.schema()

        def mint(code: str, action: str, risk: str) -> str:
            return svc.tokens.mint(
                code_hash=code_hash(code),
                user="ana",
                session="s1",
                schema_hash=snapshot.schema_hash,
                policy_hash=svc.evaluator.policy_hash,
                action=action,
                risk=risk,
            )[0]

        cases = [
            (v.normalized_code, "read", "low", f"approved risk low; this code is now {v.risk_level}"),
            (v.normalized_code, "write", v.risk_level, "approved a write query; this code is read"),
        ]
        for code, action, risk, message in cases:
            with pytest.raises(TokenScopeChangedError, match=message):
                await svc.execute(code, mint(code, action, risk), user="ana", session="s1")
        # The genuine token still runs: the refusals did not spend it.
        result = await svc.execute(v.normalized_code, v.approval_token or "", user="ana", session="s1")
        assert result.row_count > 0


async def test_a_failing_store_refuses_execution_and_says_so(
    pg_admin_url: str, make_settings: Callable[..., Settings]
) -> None:
    url = await create_database(pg_admin_url, "sqlmode_state_fail")
    settings = make_settings({"state": {"url": url, "schema_name": "st"}})
    async with CodeModeService(settings) as svc:
        v = await svc.validate(SQL, user="ana", session="s1")
        conn = await asyncpg.connect(url)
        await conn.execute("ALTER TABLE st.entries RENAME TO gone")  # the store breaks under us
        await conn.close()
        with pytest.raises(StateError) as e:
            await svc.execute(v.normalized_code, v.approval_token or "", user="ana", session="s1")
    assert e.value.code == "STATE_UNAVAILABLE" and "the state store postgresql://" in e.value.message
    last = records(settings)[-1]
    assert (last["event"], last["decision"], last["error"]) == ("execute", "refused", "STATE_UNAVAILABLE")
    assert not any(r["event"] == "executed" for r in records(settings))


async def test_an_unreachable_store_stops_start_up(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings({"state": {"url": "postgresql://u:pw@127.0.0.1:9/db", "timeout_ms": 500}})
    with pytest.raises(StateError, match=r"cannot open the state store postgresql://u:\*\*\*@127.0.0.1:9/db"):
        async with CodeModeService(settings):
            pass


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        (
            {"code_mode": {"engine_confirmation": False, "max_estimated_rows": 1000}},
            "code_mode",
            "max_estimated_rows needs engine_confirmation = true",
        ),
        (
            {"code_mode": {"engine_confirmation": False, "max_estimated_cost": 5.0}},
            "code_mode",
            "max_estimated_cost needs engine_confirmation = true",
        ),
        ({"state": {"url": "redis://localhost"}}, "state.url", "must be sqlite:///path, postgresql://"),
    ],
)
async def test_configuration_errors(
    make_settings: Callable[..., Settings], overrides: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        async with CodeModeService(make_settings(overrides)):
            pass
    assert message in e.value.message and f"[{key}" in e.value.message


async def test_http_serving_needs_a_durable_store_for_several_workers_and_an_audit_key(
    make_settings: Callable[..., Settings],
) -> None:
    from sqlmode.server import serve

    with pytest.raises(ConfigError, match="several workers need a shared state store") as e:
        await serve(make_settings({"server": {"workers": 3}, "auth": AUTH}), transport="http", port=0)
    assert e.value.key == "state.url"
    with pytest.raises(SecretError, match=r"\[audit.key\] is not set"):
        await serve(make_settings({"audit": {"key": ""}, "auth": AUTH}), transport="http", port=0)
    with pytest.raises(SecretError, match=r"must differ from code_mode\.token_secret"):
        settings = make_settings()
        settings.audit.key = settings.code_mode.token_secret
        async with CodeModeService(settings):
            pass


@pytest.mark.parametrize(
    ("read_only_mode", "delete_code"), [(True, "WRITE_NOT_ALLOWED"), (False, "DELETE_NOT_ALLOWED")]
)
async def test_allow_deletes_without_allow_writes_starts_and_refuses_every_write(
    make_settings: Callable[..., Settings], read_only_mode: bool, delete_code: str
) -> None:
    # policies/README.md: deletes need allow_writes too. It used to refuse to start instead.
    settings = make_settings(
        {
            "code_mode": {
                "allow_deletes": True,
                "allow_writes": False,
                "cedar_policies": {"read_only_mode": read_only_mode},
            }
        }
    )
    async with CodeModeService(settings) as svc:
        for sql, code in [
            ("DELETE FROM support_tickets WHERE id = 1", delete_code),
            ("UPDATE support_tickets SET status = 'x' WHERE id = 1", "WRITE_NOT_ALLOWED"),
        ]:
            v = await svc.validate(sql)
            assert not v.is_valid and v.approval_token is None
            assert [x.code for x in v.violations] == [code]
        v = await svc.validate(SQL)
        assert (await svc.execute(v.normalized_code, v.approval_token or "")).rows == REGIONS
        count = await svc.executor.run("SELECT count(*) FROM support_tickets WHERE id = 1")
    assert count.rows == [[1]]


# -- injection --------------------------------------------------------------------------------


class RecordingStore(MemoryStateStore):
    durable = True  # pretend: an embedder's shared store
    description = "recording"

    def __init__(self) -> None:
        super().__init__()
        self.consumed: list[str] = []
        self.closed = False

    async def consume_nonce(self, nonce: str, expires_at: float) -> bool:
        self.consumed.append(nonce)
        return await super().consume_nonce(nonce, expires_at)

    async def close(self) -> None:
        self.closed = True


class ListSink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def append_async(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return event


class OnlyAna:
    policy_hash = "only-ana-v1"

    def evaluate(self, principal: Any, analysis: Any) -> Any:
        from sqlmode.models import Decision, Violation

        if principal.user == "ana":
            return Decision(True, ("only-ana",), ("ana may",))
        return Decision(
            False, ("only-ana",), ("only ana",), (Violation(code="POLICY_DENIED", message="only ana"),)
        )


class CountingEngine:
    """The configured engine, keeping the executors the service opens through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.opened: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def open_executor(self, settings: Settings, snapshot: Any = None) -> Any:
        executor = await self.inner.open_executor(settings, snapshot)
        self.opened.append(executor)
        return executor


async def test_a_store_sink_evaluator_and_engine_built_elsewhere(
    make_settings: Callable[..., Settings],
) -> None:
    from sqlmode.engines import Engine, engine_for_url

    settings = make_settings({"audit": {"path": "", "key": ""}})  # nothing of its own to audit to
    store, sink, evaluator = RecordingStore(), ListSink(), OnlyAna()
    engine = CountingEngine(engine_for_url(settings.database.url))
    assert isinstance(store, StateStore) and isinstance(sink, AuditSink)
    assert isinstance(evaluator, PolicyEvaluator) and isinstance(engine, Engine)
    async with CodeModeService(settings, engine=engine, state=store, audit=sink, evaluator=evaluator) as svc:
        assert svc.engine is engine and svc.tokens.boot_id is None  # a durable store: no boot id
        assert engine.opened == [svc.executor]  # the read executor came from the given engine
        v = await svc.validate(SQL, user="ana")
        assert v.is_valid and (await svc.execute(v.normalized_code, v.approval_token or "", user="ana")).rows
        refused = await svc.validate(SQL, user="bob")
        assert not refused.is_valid and [x.code for x in refused.violations] == ["POLICY_DENIED"]
    # The owner's parts are not closed by the service; the executor it opened is.
    assert not store.closed
    with pytest.raises(SqlmodeError):
        await engine.opened[0].run("SELECT 1 AS one")
    assert len(store.consumed) == 1
    assert [(e["event"], e["decision"]) for e in sink.events] == [
        ("validate", "allowed"),
        ("execute", "run"),
        ("executed", "ok"),
        ("validate", "denied"),
    ]
    assert not settings.resolve_path("sqlmode-audit.jsonl").exists()


async def test_an_injected_store_that_fails_refuses(make_settings: Callable[..., Settings]) -> None:
    class Down(RecordingStore):
        async def consume_nonce(self, nonce: str, expires_at: float) -> bool:
            raise StateError("the state store recording failed: connection reset")

    async with CodeModeService(make_settings(), state=Down()) as svc:
        v = await svc.validate(SQL)
        with pytest.raises(SqlmodeError) as e:
            await svc.execute(v.normalized_code, v.approval_token or "")
    assert e.value.code == "STATE_UNAVAILABLE"


async def test_state_url_and_audit_key_come_from_the_environment(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SQLMODE_STATE__URL", f"sqlite:///{tmp_path / 'env-state.db'}")
    monkeypatch.setenv("SQLMODE_AUDIT_KEY", "from-the-environment-" + "e" * 20)
    settings = make_settings({"audit": {"key": None}})
    assert settings.state.url == f"sqlite:///{tmp_path / 'env-state.db'}"
    assert settings.audit.key == "from-the-environment-" + "e" * 20
    async with CodeModeService(settings) as svc:
        assert svc.state.durable and svc.state.description == f"sqlite:///{tmp_path / 'env-state.db'}"
        v = await svc.validate(SQL)
        await svc.execute(v.normalized_code, v.approval_token or "")
    from sqlmode.audit import AuditKeys, verify_audit_log

    keys = AuditKeys("a1", ("from-the-environment-" + "e" * 20).encode())
    assert verify_audit_log(settings.audit.path, keys).ok


async def test_a_full_memory_store_refuses_execution_and_spends_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    store = MemoryStateStore(max_entries=1)
    async with CodeModeService(settings, state=store) as svc:
        first = await svc.validate(SQL, user="ana", session="s1")
        second = await svc.validate(SQL, user="ana", session="s1")
        assert (
            await svc.execute(first.normalized_code, first.approval_token or "", user="ana", session="s1")
        ).rows
        with pytest.raises(StateError) as e:
            await svc.execute(second.normalized_code, second.approval_token or "", user="ana", session="s1")
        assert e.value.code == "STATE_FULL"
        with pytest.raises(TokenReplayError):  # the first token stays spent at the bound
            await svc.execute(first.normalized_code, first.approval_token or "", user="ana", session="s1")
        store.max_entries = 2  # room again (in production: a spent nonce expired): the second runs once
        rows = (
            await svc.execute(second.normalized_code, second.approval_token or "", user="ana", session="s1")
        ).rows
        assert rows == REGIONS
    runs = [
        (r["event"], r["decision"], r.get("error")) for r in records(settings) if r["event"] != "validate"
    ]
    assert runs == [
        ("execute", "run", None),
        ("executed", "ok", None),
        ("execute", "refused", "STATE_FULL"),
        ("execute", "refused", "TOKEN_ALREADY_USED"),
        ("execute", "run", None),
        ("executed", "ok", None),
    ]
