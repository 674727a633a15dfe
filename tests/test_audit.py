"""The hash-chained audit log: durable appends, tamper detection, `sqlmode audit verify`."""

from __future__ import annotations

import itertools
import json
import multiprocessing
from pathlib import Path

import pytest
from click.testing import CliRunner

from sqlmode.audit import AuditLog, head_path, verify_audit_log
from sqlmode.cli import main
from sqlmode.errors import AuditError


def write_log(path: Path, n: int = 5) -> list[dict]:
    log = AuditLog(path)
    try:
        return [
            log.append({"event": "validate", "user": "ana", "code": f"SELECT {i}", "n": i}) for i in range(n)
        ]
    finally:
        log.close()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_records_are_chained_and_verify_ok(tmp_path: Path) -> None:
    recs = write_log(tmp_path / "a.jsonl")
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(recs))
    report = verify_audit_log(tmp_path / "a.jsonl")
    assert report.ok and report.records == 5, report.render()


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    first = write_log(path, 2)
    second = write_log(path, 2)
    assert second[0]["seq"] == 3 and second[0]["prev"] == first[-1]["hash"]
    assert verify_audit_log(path).ok


def _edit(path: Path) -> None:
    ls = lines(path)
    rec = json.loads(ls[2])
    rec["user"] = "mallory"
    ls[2] = json.dumps(rec) + "\n"
    path.write_text("".join(ls))


def _remove_middle(path: Path) -> None:
    ls = lines(path)
    del ls[2]
    path.write_text("".join(ls))


def _remove_last(path: Path) -> None:
    path.write_text("".join(lines(path)[:-1]))


def _reorder(path: Path) -> None:
    ls = lines(path)
    ls[1], ls[3] = ls[3], ls[1]
    path.write_text("".join(ls))


def _insert(path: Path) -> None:
    ls = lines(path)
    ls.insert(2, ls[1])
    path.write_text("".join(ls))


def _garbage(path: Path) -> None:
    path.write_text("".join(lines(path)) + "not json\n")


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_edit, "record 3 was edited"),
        (_remove_middle, "chain broken before record 4"),
        (_remove_last, "records 5..5 were removed from the end"),
        (_reorder, "chain broken"),
        (_insert, "chain broken"),
        (_garbage, "not a JSON record"),
    ],
    ids=["edited", "removed", "removed-at-end", "reordered", "duplicated", "garbage"],
)
def test_tampering_is_detected(tmp_path: Path, tamper, expected: str) -> None:
    path = tmp_path / "a.jsonl"
    write_log(path)
    tamper(path)
    report = verify_audit_log(path)
    assert not report.ok
    assert any(expected in p for p in report.problems), report.render()


def test_a_rehashed_edit_still_breaks_the_chain(tmp_path: Path) -> None:
    # An editor who recomputes the edited record's own hash still breaks the next record's `prev`.
    from sqlmode.audit import _digest

    path = tmp_path / "a.jsonl"
    write_log(path)
    ls = lines(path)
    rec = json.loads(ls[1])
    rec["decision"] = "allowed"
    rec["hash"] = _digest(rec)
    ls[1] = json.dumps(rec) + "\n"
    path.write_text("".join(ls))
    report = verify_audit_log(path)
    assert any("chain broken before record 3" in p for p in report.problems), report.render()


def test_missing_anchor_is_a_note_not_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_log(path)
    head_path(path).unlink()
    report = verify_audit_log(path)
    assert report.ok and any("anchor" in n for n in report.notes)


def _append_many(path: str, who: str, n: int) -> None:
    log = AuditLog(path)
    for i in range(n):
        log.append({"event": "validate", "user": who, "i": i})
    log.close()


def test_two_processes_appending_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(path), who, 40)) for who in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    report = verify_audit_log(path)
    assert report.ok and report.records == 80, report.render()


def test_write_failure_raises_audit_error() -> None:
    # /dev/full accepts the open and fails every write with ENOSPC: a real full disk.
    log = AuditLog("/dev/full")
    with pytest.raises(AuditError, match="cannot write audit log"):
        log.append({"event": "validate"})
    log.close()


def test_unopenable_log_raises_audit_error(tmp_path: Path) -> None:
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(AuditError, match="cannot open audit log"):
        AuditLog(tmp_path / "dir.jsonl")


# -- the CLI --------------------------------------------------------------------------------


def test_cli_audit_verify_ok_and_tampered(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_log(path)
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "OK, 5 records" in ok.output
    _reorder(path)
    bad = runner.invoke(main, ["audit", "verify", str(path)])
    assert bad.exit_code == 1
    assert "TAMPERED" in bad.output and "chain broken" in bad.output


def test_cli_audit_verify_defaults_to_the_configured_log(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    path.parent.mkdir()
    write_log(path, 3)
    cfg = tmp_path / "sqlmode.toml"
    cfg.write_text('[database]\nurl = "duckdb:///w.duckdb"\n[audit]\npath = "logs/audit.jsonl"\n')
    r = CliRunner().invoke(main, ["audit", "verify", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert str(path) in r.output and "3 records" in r.output


def test_cli_audit_verify_missing_file_is_exit_2(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["audit", "verify", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 2
    assert "cannot read" in r.output


# -- the service audits every decision and run ---------------------------------------------------


def read_records(path: str) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


async def test_every_validation_and_execution_is_recorded(make_settings) -> None:
    from mcp import Client

    from sqlmode.server import build_server
    from sqlmode.service import CodeModeService

    settings = make_settings()
    sql = "SELECT region, count(*) AS n FROM customers GROUP BY region"
    async with CodeModeService(settings) as svc, Client(build_server(svc)) as c:
        v = (await c.call_tool("validate_code", {"code": sql})).structured_content
        await c.call_tool("validate_code", {"code": "SELECT ssn FROM customers"})
        await c.call_tool(
            "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
        )
        await c.call_tool(
            "execute_code", {"code": v["normalized_code"], "approval_token": v["approval_token"]}
        )
    assert verify_audit_log(settings.audit.path).ok
    recs = read_records(settings.audit.path)
    assert [(r["event"], r["decision"]) for r in recs] == [
        ("validate", "allowed"),
        ("validate", "denied"),
        ("execute", "run"),
        ("executed", "ok"),
        ("execute", "refused"),
    ]
    allowed, denied, run, ran, replay = recs
    for r in recs:
        assert {"seq", "at", "user", "groups", "session", "code_hash", "prev", "hash"} <= set(r)
    assert allowed["code"] == sql and allowed["code_hash"] == v["code_hash"] and allowed["risk"] == "low"
    assert allowed["policies"] and "duration_ms" in allowed
    assert denied["violations"] and denied["code"] == "SELECT ssn FROM customers"
    assert run["code"] == v["normalized_code"] and run["policies"] and run["approval"] == "token"
    assert ran["rows"] == 4 and ran["duration_ms"] > 0 and ran["truncated"] is False
    assert replay["error"] == "TOKEN_ALREADY_USED"


async def test_an_audit_write_failure_refuses_the_operation(make_settings) -> None:
    from mcp import Client

    from sqlmode.server import build_server
    from sqlmode.service import CodeModeService
    from sqlmode.token import code_hash

    settings = make_settings({"audit": {"path": "/dev/full"}})
    async with CodeModeService(settings) as svc, Client(build_server(svc)) as c:
        v = await c.call_tool("validate_code", {"code": "SELECT id FROM products"})
        assert v.is_error and v.content[0].text.startswith("AUDIT_FAILED:")
        assert v.structured_content is None and "approval_token" not in v.content[0].text
        # A token obtained elsewhere does not help either: the run is refused before the database.
        analysis = await svc.analyze("SELECT id FROM products")
        snapshot = await svc.schema()
        token, _ = svc.tokens.mint(
            code_hash=code_hash(analysis.normalized_code),
            user="local",
            session=svc.principal(None, None, None).session,
            schema_hash=snapshot.schema_hash,
            policy_hash=svc.evaluator.policy_hash,
            action="read",
            risk="low",
        )
        with pytest.raises(AuditError):
            await svc.execute(analysis.normalized_code, token)
