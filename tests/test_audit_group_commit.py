"""Group commit of the audit log: an intent is on disk before its query runs; everything else within
``audit.flush_window_ms`` or at the next intent; crashes lose only what the window allows, and the
chain still verifies. Real files, real processes, real PostgreSQL; timings are never asserted."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sqlmode.audit import AuditKeys, AuditLog, head_path, is_intent, keys_from_config, verify_audit_log
from sqlmode.audit.postgres import PostgresAuditSink, verify_postgres_audit
from sqlmode.config import Settings
from sqlmode.errors import AuditError
from tests.plugins.postgres import create_database

KEY = AuditKeys("a1", b"k" * 40)
VALIDATE = {"event": "validate", "user": "ana", "decision": "allowed", "code": "SELECT 1"}
INTENT = {"event": "execute", "user": "ana", "decision": "run", "code": "SELECT 1"}


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def anchors(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    latest, durable = head_path(path).read_text().splitlines()
    return json.loads(latest), json.loads(durable)


async def until(cond: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll ``cond`` (a sink's durable position: nothing to wait on) until true or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    return cond()


@pytest.mark.parametrize(
    ("event", "intent"),
    [
        (INTENT, True),
        (VALIDATE, False),
        ({**INTENT, "decision": "refused"}, False),
        ({"event": "executed", "decision": "ok"}, False),
        ({"event": "approval_decision", "verdict": "approve"}, False),
    ],
)
def test_only_the_record_before_a_run_is_an_intent(event: dict[str, Any], intent: bool) -> None:
    assert is_intent(event) is intent


# -- the file -----------------------------------------------------------------------------------


async def test_an_intent_is_synced_before_append_returns_and_covers_earlier_records(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, keys=KEY, flush_window_ms=10_000)  # the window never ends within this test
    try:
        first = [await log.append_async(VALIDATE) for _ in range(3)]
        # Written (a killed process loses nothing) but not synced: no sync ran, the durable anchor is back.
        assert [r["seq"] for r in records(path)] == [1, 2, 3]
        assert log.syncs == 0 and log.durable_seq == 0 and anchors(path)[1]["seq"] == 0
        assert anchors(path)[0]["seq"] == 3  # the latest anchor moves with every record
        intent = await log.append_async(INTENT)
        assert log.syncs == 1 and log.durable_seq == intent["seq"] == 4 > first[-1]["seq"]
        # The durable anchor follows the log's sync (never ahead of it); anchored() waits for it.
        assert anchors(path)[1]["seq"] in (0, 4)
        await log.anchored()
        assert anchors(path)[1]["seq"] == 4 and anchors(path)[1]["mac"] == intent["mac"]
        # durable=True forces the wait for any record; durable=False defers even an intent.
        forced = await log.append_async(VALIDATE, durable=True)
        assert log.syncs == 2 and log.durable_seq == forced["seq"]
        await log.append_async(INTENT, durable=False)
        assert log.syncs == 2 and log.durable_seq == forced["seq"]
    finally:
        await log.aclose()
    # Closing syncs the rest; both anchors name the last record.
    assert anchors(path)[1]["seq"] == anchors(path)[0]["seq"] == 6
    report = verify_audit_log(path, KEY)
    assert report.ok and report.records == 6 and not report.notes, report.render()


async def test_other_records_are_synced_within_the_window_without_another_append(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, keys=KEY, flush_window_ms=10)
    try:
        rec = await log.append_async(VALIDATE)
        assert log.durable_seq == 0
        # The flush is armed for one window from now (what bounds the loss), and it fires by itself.
        loop = asyncio.get_running_loop()
        assert log._timer is not None and log._timer.when() - loop.time() <= 0.010
        assert await until(lambda: log.durable_seq == rec["seq"])
        assert log.syncs == 1 and anchors(path)[1]["seq"] == rec["seq"]
    finally:
        await log.aclose()


async def test_a_zero_window_syncs_every_record(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl", keys=KEY, flush_window_ms=0)
    try:
        for i in range(3):
            rec = await log.append_async(VALIDATE)
            assert log.syncs == i + 1 and log.durable_seq == rec["seq"]
    finally:
        await log.aclose()


async def test_many_concurrent_tasks_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, keys=KEY, flush_window_ms=5)

    async def task(i: int) -> list[int]:
        out = []
        for j in range(20):
            rec = await log.append_async(INTENT if j % 5 == 4 else {**VALIDATE, "task": i, "j": j})
            if j % 5 == 4:  # every intent is durable when its append returns
                assert log.durable_seq >= rec["seq"]
            out.append(rec["seq"])
        return out

    try:
        seqs = await asyncio.gather(*(task(i) for i in range(50)))
    finally:
        await log.aclose()
    assert sorted(s for t in seqs for s in t) == list(range(1, 1001))
    assert log.syncs < 1000  # grouped: far fewer syncs than records
    report = verify_audit_log(path, KEY)
    assert report.ok and report.records == 1000 and not report.notes, report.render()


def _append_async_many(path: str, who: str, n: int) -> None:
    async def run() -> None:
        log = AuditLog(path, keys=KEY, replica=who, flush_window_ms=2)
        try:
            for i in range(n):
                await log.append_async(INTENT if i % 10 == 9 else {**VALIDATE, "user": who, "i": i})
        finally:
            await log.aclose()

    asyncio.run(run())


def test_processes_appending_with_group_commit_keep_one_chain_and_a_forward_durable_anchor(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.jsonl"
    AuditLog(path, keys=KEY).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_async_many, args=(str(path), who, 60)) for who in ("a", "b", "c")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    report = verify_audit_log(path, KEY)
    assert report.ok and report.records == 180 and not report.notes, report.render()
    assert {r["replica"] for r in records(path)} == {"a", "b", "c"}
    latest, durable = anchors(path)
    assert latest["seq"] == durable["seq"] == 180


# -- crashes -------------------------------------------------------------------------------------


def _serve_then_hang(settings: Settings, out: Any) -> None:
    """Validate and execute through the service, say so, then validate more and wait to be killed."""
    from sqlmode.service import CodeModeService

    async def run() -> None:
        # A window longer than the test: whatever is synced, the intent's sync did it.
        log = AuditLog(settings.audit.path, keys=keys_from_config(settings.audit), flush_window_ms=3_600_000)
        async with CodeModeService(settings, audit=log) as svc:
            v = await svc.validate("SELECT id FROM products ORDER BY id LIMIT 2")
            result = await svc.execute(v.normalized_code, v.approval_token or "")
            out.send(("executed", result.rows, log.durable_seq, log.syncs))
            for i in range(3):
                await svc.validate(f"SELECT id FROM products WHERE id > {i}")
            out.send(("window", log.durable_seq, log.syncs))
            await asyncio.sleep(120)

    asyncio.run(run())


def test_a_process_killed_right_after_execute_keeps_its_intent_and_a_verifying_chain(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    path = Path(settings.audit.path)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_then_hang, args=(settings, child))
    proc.start()
    assert proc.pid is not None
    try:
        assert parent.poll(120), "the child did not execute"
        tag, rows, durable_at_execute, syncs = parent.recv()
        assert tag == "executed" and rows == [[1], [2]]
        assert parent.poll(60)
        _, durable_later, syncs_later = parent.recv()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    recs = records(path)
    assert [(r["event"], r["decision"]) for r in recs] == [
        ("validate", "allowed"),
        ("execute", "run"),
        ("executed", "ok"),
        *[("validate", "allowed")] * 3,
    ]
    # The intent (seq 2) was synced before the query ran: one sync, which covered the validation too;
    # the outcome and the later validations were only written (the window had not ended).
    assert durable_at_execute == 2 and syncs == 1 and (durable_later, syncs_later) == (2, 1)
    assert anchors(path)[1]["seq"] == 2 and anchors(path)[0]["seq"] == 6
    keys = keys_from_config(settings.audit)
    report = verify_audit_log(path, keys)
    assert report.ok and report.records == 6, report.render()

    # A host crash (power, kernel) at that moment may lose whatever was not synced: at worst the log
    # ends at the durable anchor. The intent survives and the chain still verifies, with a note.
    path.write_text("".join(x + "\n" for x in path.read_text().splitlines()[:2]))
    report = verify_audit_log(path, keys)
    assert report.ok and report.records == 2, report.render()
    assert any("names record 6 and the records end at 2" in n for n in report.notes), report.render()
    assert records(path)[-1]["decision"] == "run"


# -- verify: the durable anchor ------------------------------------------------------------------


def _write(path: Path, n: int) -> list[dict[str, Any]]:
    log = AuditLog(path, keys=KEY)
    try:
        return [log.append({**VALIDATE, "i": i}) for i in range(n)]
    finally:
        log.close()


def _set_anchors(path: Path, latest: tuple[int, str], durable: tuple[int, str]) -> None:
    lines = [
        json.dumps(KEY.anchor(path.name, *latest), sort_keys=True, separators=(",", ":")),
        json.dumps(KEY.anchor(path.name, *durable, durable=True), sort_keys=True, separators=(",", ":")),
    ]
    head_path(path).write_text("".join(x + "\n" for x in lines))


@pytest.mark.parametrize(
    ("latest", "durable", "ok", "expected"),
    [
        # A host crash: the log lost records 4..5 that the latest anchor names; the durable one holds.
        ((5, 5), (3, 3), True, "names record 5 and the records end at 3; the durable anchor names record 3"),
        # A host crash where the anchor file is older than the log's tail: nothing missing.
        ((1, 1), (1, 1), True, "names record 1 and the records end at 3"),
        # The durable anchor names a record the log no longer has: cut after it was synced.
        ((5, 5), (5, 5), False, "records 4..5 were removed from the end (the durable anchor names record 5"),
        # The durable anchor must name the record at its seq.
        ((3, 3), (2, 1), False, "(durable, line 2): the anchor does not match record 2"),
    ],
)
def test_verify_reads_a_host_crash_from_the_durable_anchor(
    tmp_path: Path, latest: tuple[int, int], durable: tuple[int, int], ok: bool, expected: str
) -> None:
    path = tmp_path / "a.jsonl"
    recs = _write(path, 5)
    mac = {r["seq"]: r["mac"] for r in recs}
    path.write_text("".join(x + "\n" for x in path.read_text().splitlines()[:3]))
    _set_anchors(path, (latest[0], mac[latest[1]]), (durable[0], mac[durable[1]]))
    report = verify_audit_log(path, KEY)
    assert report.ok is ok, report.render()
    assert any(expected in x for x in report.notes + report.problems), report.render()


def test_a_forged_durable_anchor_is_tampering(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    _write(path, 3)
    latest, durable = head_path(path).read_text().splitlines()
    doc = json.loads(durable)
    doc["seq"] = 1
    head_path(path).write_text(latest + "\n" + json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
    report = verify_audit_log(path, KEY)
    assert not report.ok and "(durable, line 2): the anchor was edited or forged" in report.problems[0]


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.fixture
async def audit_db(pg_admin_url: str) -> str:
    return await create_database(pg_admin_url, "sqlmode_audit_gc_test")


async def committed(url: str, replica: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT seq, line::json->>'event' AS event FROM sqlmode_audit.records WHERE replica = $1 "
            "ORDER BY seq",
            replica,
        )
        return [(r["seq"], r["event"]) for r in rows]
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_postgres_commits_an_intent_with_everything_queued_before_it(audit_db: str) -> None:
    sink = await PostgresAuditSink(audit_db, KEY, replica="r1", flush_window_ms=60_000).open()
    try:
        for _ in range(3):
            await sink.append_async(VALIDATE)
        assert await committed(audit_db, "r1") == [] and sink.batches == 0  # queued in memory
        rec = await sink.append_async(INTENT)
        # Seen from another connection: committed, in order, in one write.
        assert await committed(audit_db, "r1") == [
            (1, "validate"),
            (2, "validate"),
            (3, "validate"),
            (4, "execute"),
        ]
        assert rec["seq"] == sink.durable_seq == 4 and sink.batches == 1
        # A run's outcome is committed before the caller returns the rows: the queue is process memory.
        await sink.append_async({"event": "executed", "decision": "ok"})
        assert (await committed(audit_db, "r1"))[-1] == (5, "executed") and sink.batches == 2
    finally:
        await sink.aclose()
    assert (await verify_postgres_audit(audit_db, KEY)).ok


@pytest.mark.postgres
async def test_postgres_commits_other_records_within_the_window(audit_db: str) -> None:
    sink = await PostgresAuditSink(audit_db, KEY, replica="r1", flush_window_ms=10).open()
    try:
        await sink.append_async(VALIDATE)
        assert await until(lambda: sink.durable_seq == 1)
        assert await committed(audit_db, "r1") == [(1, "validate")]
    finally:
        await sink.aclose()


@pytest.mark.postgres
async def test_postgres_many_concurrent_tasks_keep_one_chain(audit_db: str) -> None:
    sink = await PostgresAuditSink(audit_db, KEY, replica="r1", flush_window_ms=5).open()

    async def task(i: int) -> None:
        for j in range(20):
            if j % 5 == 4:
                rec = await sink.append_async(INTENT)
                assert sink.durable_seq >= rec["seq"]
            else:
                await sink.append_async({**VALIDATE, "task": i, "j": j})

    try:
        await asyncio.gather(*(task(i) for i in range(50)))
    finally:
        await sink.aclose()
    assert [s for s, _ in await committed(audit_db, "r1")] == list(range(1, 1001))
    assert sink.batches < 1000
    report = await verify_postgres_audit(audit_db, KEY)
    assert report.ok and report.records == 1000, report.render()


# -- the service ---------------------------------------------------------------------------------


class _SeesTheLog:
    """The real executor, noting at each run what the audit log has on disk (the sink's own counter)."""

    def __init__(self, inner: Any, log: AuditLog):
        self._inner, self._log = inner, log
        self.at_run: list[tuple[int, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def run(self, sql: str, **kwargs: Any) -> Any:
        self.at_run.append((self._log.durable_seq, records(self._log.path)[-1]))
        return await self._inner.run(sql, **kwargs)


class _EngineSeeingTheLog:
    """The configured engine, handing the service an executor that notes what the log has on disk."""

    def __init__(self, inner: Any, log: AuditLog):
        self._inner, self._log = inner, log
        self.executors: list[_SeesTheLog] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def open_executor(self, settings: Settings, snapshot: Any = None) -> Any:
        executor = _SeesTheLog(await self._inner.open_executor(settings, snapshot), self._log)
        self.executors.append(executor)
        return executor


async def test_the_service_runs_a_query_only_after_its_intent_is_on_disk(
    make_settings: Callable[..., Settings],
) -> None:
    from sqlmode.engines import engine_for_url
    from sqlmode.service import CodeModeService

    settings = make_settings()
    log = AuditLog(settings.audit.path, keys=keys_from_config(settings.audit), flush_window_ms=1000)
    seeing = _EngineSeeingTheLog(engine_for_url(settings.database.url), log)
    try:
        async with CodeModeService(settings, engine=seeing, audit=log) as svc:
            for i in range(3):
                v = await svc.validate(f"SELECT id FROM products WHERE id > {i} ORDER BY id LIMIT 2")
                assert (await svc.execute(v.normalized_code, v.approval_token or "")).rows
                # The rows came back only once the durable anchor on disk names the intent too.
                intent = [r for r in records(Path(settings.audit.path)) if r["event"] == "execute"][-1]
                assert anchors(Path(settings.audit.path))[1]["seq"] >= intent["seq"]
    finally:
        await log.aclose()
    [executor] = seeing.executors  # the one read executor the service opened
    # At each run the last record is its intent, and it is synced (with everything before it).
    assert [(last["event"], last["decision"]) for _, last in executor.at_run] == [("execute", "run")] * 3
    assert all(durable == last["seq"] for durable, last in executor.at_run)
    assert verify_audit_log(settings.audit.path, keys_from_config(settings.audit)).ok


@pytest.mark.postgres
async def test_postgres_write_failure_refuses_the_intent_keeps_earlier_records_and_fails_closed(
    audit_db: str,
) -> None:
    sink = await PostgresAuditSink(audit_db, KEY, replica="r1", flush_window_ms=60_000).open()
    conn = await asyncpg.connect(audit_db)
    try:
        await sink.append_async({**VALIDATE, "n": 1})
        await sink.append_async({**VALIDATE, "n": 2})
        # The store refuses every insert (a real error from the database, not a stand-in).
        await conn.execute("ALTER TABLE sqlmode_audit.records ADD CONSTRAINT shut CHECK (false) NOT VALID")
        with pytest.raises(AuditError, match="cannot write to the audit store"):
            await sink.append_async(INTENT)
        # While it fails, every append waits for the store and fails with it (no silent queueing).
        with pytest.raises(AuditError, match="cannot write to the audit store"):
            await sink.append_async({**VALIDATE, "n": 3})
        assert await committed(audit_db, "r1") == []
        await conn.execute("ALTER TABLE sqlmode_audit.records DROP CONSTRAINT shut")
        rec = await sink.append_async(INTENT)
    finally:
        await conn.close()
        await sink.aclose()
    # The two validations whose callers went on are written first; the refused intent and the
    # refused validation are not in the chain (their calls failed), and the chain verifies.
    assert await committed(audit_db, "r1") == [(1, "validate"), (2, "validate"), (3, "execute")]
    assert rec["seq"] == 3
    report = await verify_postgres_audit(audit_db, KEY)
    assert report.ok and report.records == 3, report.render()


def test_a_log_used_from_one_event_loop_after_another_still_syncs(tmp_path: Path) -> None:
    # An embedder's asyncio.run per call: the first loop ends with its flush timer pending.
    log = AuditLog(tmp_path / "a.jsonl", keys=KEY, flush_window_ms=50)
    try:
        asyncio.run(log.append_async(VALIDATE))
        assert log.durable_seq == 0

        async def validate_then_wait() -> bool:
            await log.append_async(VALIDATE)
            return await until(lambda: log.durable_seq == 2)

        assert asyncio.run(validate_then_wait())
        rec = asyncio.run(log.append_async(INTENT))
        assert log.durable_seq == rec["seq"] == 3
    finally:
        log.close()


def syncing(log: AuditLog) -> bool:
    return log._sync_task is not None


async def test_closing_while_a_group_sync_runs_waits_for_it_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A slow disk: close() must not pull the file from under a sync still running on its thread.

    A group sync's tail arms the flush timer for records written while it ran; that timer could
    start a second sync while aclose() synced the rest, and close() then closed the file (and the
    anchor's descriptor, a number the OS may hand to another file) under it: "cannot sync audit
    log: I/O operation on closed file", and the log refused everything after.
    """
    real = os.fdatasync

    def slow_disk(fd: int) -> None:
        time.sleep(0.005)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow_disk)
    for i in range(40):  # the race is a matter of timing: many tries
        path = tmp_path / f"a{i}.jsonl"
        log = AuditLog(path, keys=KEY, flush_window_ms=1)
        await log.append_async(VALIDATE)
        assert await until(partial(syncing, log))  # the timer's sync is running
        for _ in range(3):  # written while it runs: the sync's tail arms the timer again
            await log.append_async(VALIDATE)
        await log.aclose()
        await asyncio.sleep(0.02)  # a sync still running on its thread would fail by now
        assert log._failed is None and log.durable_seq == 4
        report = verify_audit_log(path, KEY)
        assert report.ok and report.records == 4 and not report.notes, report.render()
        assert anchors(path)[1]["seq"] == 4
    assert not [r for r in caplog.records if "cannot sync" in r.getMessage()]
