"""The HMAC-chained audit log: durable appends, tamper detection, keys, `sqlmode audit verify`."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import multiprocessing
from pathlib import Path

import pytest
from click.testing import CliRunner

from sqlmode.audit import AuditKeys, AuditLog, canonical, head_path, keys_from_config, verify_audit_log
from sqlmode.cli import main
from sqlmode.errors import AuditError
from tests.narrow import block_text

KEY = AuditKeys("a1", b"k" * 40)


def write_log(path: Path, n: int = 5, keys: AuditKeys = KEY) -> list[dict]:
    log = AuditLog(path, keys=keys, replica="r1")
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
    assert all(b["prev"] == a["mac"] for a, b in itertools.pairwise(recs))
    assert {r["replica"] for r in recs} == {"r1"} and {r["kid"] for r in recs} == {"a1"}
    # Each line is exactly the canonical bytes of its record.
    assert [canonical(r) + b"\n" for r in recs] == (tmp_path / "a.jsonl").read_bytes().splitlines(
        keepends=True
    )
    report = verify_audit_log(tmp_path / "a.jsonl", KEY)
    assert report.ok and report.records == 5 and report.exit_code == 0, report.render()


def test_a_record_with_a_lone_surrogate_is_written_and_verifies(tmp_path: Path) -> None:
    # Text from invalid UTF-8 (argv decodes it to surrogates) or a JSON "\ud800" escape has no UTF-8
    # form: the record is written with non-ASCII escaped (it failed as "cannot write audit log").
    path = tmp_path / "a.jsonl"
    log = AuditLog(path, keys=KEY, replica="r1")
    try:
        log.append({"event": "validate", "code": "SELECT 'é'"})
        odd = log.append({"event": "validate", "code": "SELECT \udcff 'é'"})
        log.append({"event": "validate", "code": "SELECT 'é'"})
    finally:
        log.close()
    raw = path.read_bytes().splitlines()
    assert raw[1].isascii() and b"\\udcff" in raw[1] and json.loads(raw[1])["code"] == odd["code"]
    assert "é".encode() in raw[0] and "é".encode() in raw[2]  # ordinary records keep their UTF-8 form
    report = verify_audit_log(path, KEY)
    assert report.ok and report.records == 3, report.render()


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    first = write_log(path, 2)
    second = write_log(path, 2)
    assert second[0]["seq"] == 3 and second[0]["prev"] == first[-1]["mac"]
    assert verify_audit_log(path, KEY).ok


def _edit(path: Path) -> None:
    ls = lines(path)
    rec = json.loads(ls[2])
    rec["user"] = "mallory"
    ls[2] = canonical(rec).decode() + "\n"
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


def _non_canonical(path: Path) -> None:
    # The same record, pretty-printed: equal as JSON, not as bytes.
    ls = lines(path)
    ls[2] = json.dumps(json.loads(ls[2]), indent=None) + "\n"
    path.write_text("".join(ls))


def _duplicate_key(path: Path) -> None:
    # A second "user" after the MACed one: naive readers take the last value.
    ls = lines(path)
    ls[2] = ls[2].rstrip("\n")[:-1] + ',"user":"mallory"}\n'
    path.write_text("".join(ls))


def _rechained_with_the_public_algorithm(path: Path) -> None:
    # The attack of issue 12: rewrite a field, then recompute every later link with a key the
    # attacker chose (or the old public sha256): without the audit key nothing verifies.
    wrong = AuditKeys("a1", b"x" * 40)
    recs = [json.loads(x) for x in lines(path)]
    recs[1]["user"] = "mallory"
    prev = "0" * 64
    out = []
    for r in recs:
        r["prev"] = prev
        body = {k: v for k, v in r.items() if k != "mac"}
        r["mac"] = wrong.mac(body)
        prev = r["mac"]
        out.append(canonical(r).decode() + "\n")
    path.write_text("".join(out))
    head_path(path).write_bytes(canonical(wrong.anchor(path.name, recs[-1]["seq"], prev)) + b"\n")


def _truncate_and_drop_anchor(path: Path) -> None:
    path.write_text("".join(lines(path)[:-2]))
    head_path(path).unlink()


def _stale_anchor(path: Path) -> None:
    # An anchor copied earlier (authentic, but three records old) put back after cutting the tail.
    ls = lines(path)
    old = KEY.anchor(path.name, 2, json.loads(ls[1])["mac"])
    head_path(path).write_bytes(canonical(old) + b"\n")


def _forged_anchor(path: Path) -> None:
    path.write_text("".join(lines(path)[:-1]))
    latest, durable = head_path(path).read_text().splitlines()
    doc = json.loads(latest)
    doc["seq"], doc["mac"] = 4, json.loads(lines(path)[-1])["mac"]
    head_path(path).write_bytes(canonical(doc) + b"\n" + durable.encode() + b"\n")


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_edit, "line 3: record 3 was edited or forged"),
        (_remove_middle, "chain broken before record 4"),
        (_remove_last, "records 5..5 were removed from the end"),
        (_reorder, "line 2: chain broken before record 4"),
        (_insert, "line 3: chain broken before record 2"),
        (_garbage, "line 6: not a canonical JSON record"),
        (_non_canonical, "line 3: not a canonical JSON record"),
        (_duplicate_key, "line 3: duplicate key 'user'"),
        (_rechained_with_the_public_algorithm, "line 1: record 1 was edited or forged"),
        (_truncate_and_drop_anchor, "the anchor is missing"),
        (_stale_anchor, "stale anchor: it names record 2, but the chain ends at record 5"),
        (_forged_anchor, "the anchor was edited or forged"),
    ],
    ids=lambda x: x.__name__.strip("_") if callable(x) else None,
)
def test_tampering_is_detected_and_the_first_bad_record_named(tmp_path: Path, tamper, expected: str) -> None:
    path = tmp_path / "a.jsonl"
    write_log(path)
    tamper(path)
    report = verify_audit_log(path, KEY)
    assert not report.ok and report.exit_code == 1
    assert expected in report.problems[0], report.render()
    assert f"first bad record: {report.problems[0]}" in report.render()


def test_the_old_unkeyed_chain_does_not_verify_and_is_moved_aside(tmp_path: Path, caplog) -> None:
    # The sha256 chain of earlier versions, which anyone could recompute.
    path = tmp_path / "a.jsonl"
    rec = {"seq": 1, "at": "x", "event": "validate", "prev": "0" * 64}
    rec["hash"] = hashlib.sha256(canonical(rec)).hexdigest()
    path.write_bytes(canonical(rec) + b"\n")
    head_path(path).write_text(json.dumps({"seq": 1, "hash": rec["hash"]}))
    report = verify_audit_log(path, KEY)
    assert report.exit_code == 1 and "unknown audit key id None" in report.problems[0]
    # Opening it for appends moves it aside (kept, renamed) and starts a keyed chain.
    log = AuditLog(path, keys=KEY)
    log.append({"event": "validate"})
    log.close()
    moved = [p.name for p in tmp_path.iterdir() if ".unkeyed-" in p.name]
    assert len(moved) == 2 and any(m.endswith(".head") for m in moved)
    assert (
        json.loads(
            next(
                p for p in tmp_path.iterdir() if p.name in moved and not p.name.endswith(".head")
            ).read_text()
        )["hash"]
        == rec["hash"]
    )
    assert verify_audit_log(path, KEY).ok
    assert "older unkeyed format" in caplog.text


def test_a_log_ending_in_garbage_is_not_continued(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_log(path, 2)
    path.write_bytes(path.read_bytes() + b"garbage\n")
    with pytest.raises(AuditError, match="cannot continue"):
        AuditLog(path, keys=KEY)


def test_rotation_old_records_verify_under_a_previous_key(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_log(path, 2, AuditKeys("a1", b"k" * 40))
    rotated = AuditKeys("a2", b"n" * 40, {"a1": b"k" * 40})
    recs = write_log(path, 2, rotated)
    assert recs[0]["kid"] == "a2"
    assert verify_audit_log(path, rotated).ok
    # Without the old key the first records are unverifiable, which is tampering as far as we can tell.
    report = verify_audit_log(path, AuditKeys("a2", b"n" * 40))
    assert report.exit_code == 1 and "record 1 names an unknown audit key id 'a1'" in report.problems[0]


def test_one_record_behind_anchor_is_a_crash_note(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_log(path)
    ls = lines(path)
    head_path(path).write_bytes(canonical(KEY.anchor(path.name, 4, json.loads(ls[3])["mac"])) + b"\n")
    report = verify_audit_log(path, KEY)
    assert report.ok and any("one record behind" in n for n in report.notes), report.render()


def test_a_log_whose_anchor_vanished_is_not_reopened(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_log(path)
    head_path(path).unlink()
    with pytest.raises(AuditError, match=r"anchor .* is missing"):
        AuditLog(path, keys=KEY)


def test_without_a_configured_key_a_key_file_beside_the_log_is_used(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog(path)
    log.append({"event": "validate"})
    log.close()
    key_file = tmp_path / "a.jsonl.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert verify_audit_log(path).ok  # reads the key file
    key = AuditKeys("a1", key_file.read_text().strip().encode())
    rec = json.loads(path.read_text())
    assert (
        rec["mac"]
        == hmac.new(key.key, canonical({k: v for k, v in rec.items() if k != "mac"}), "sha256").hexdigest()
    )


def _append_many(path: str, who: str, n: int) -> None:
    log = AuditLog(path, keys=KEY, replica=who)
    for i in range(n):
        log.append({"event": "validate", "user": who, "i": i})
    log.close()


def test_two_processes_appending_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    AuditLog(path, keys=KEY).close()  # the anchor exists before the writers race
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(path), who, 40)) for who in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    report = verify_audit_log(path, KEY)
    assert report.ok and report.records == 80, report.render()


def test_write_failure_raises_audit_error() -> None:
    # /dev/full accepts the open and fails every write with ENOSPC: a real full disk.
    log = AuditLog("/dev/full", keys=KEY)
    with pytest.raises(AuditError, match="cannot write audit log"):
        log.append({"event": "validate"})
    log.close()


def test_unopenable_log_raises_audit_error(tmp_path: Path) -> None:
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(AuditError, match="cannot open audit log"):
        AuditLog(tmp_path / "dir.jsonl", keys=KEY)


# -- the CLI --------------------------------------------------------------------------------

KEY_TEXT = "k" * 40


def _cfg(tmp_path: Path, log: Path, key: str = KEY_TEXT) -> Path:
    cfg = tmp_path / "sqlmode.toml"
    cfg.write_text(f'[database]\nurl = "duckdb:///w.duckdb"\n[audit]\npath = "{log}"\nkey = "{key}"\n')
    return cfg


def test_cli_audit_verify_ok_and_tampered(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    write_log(path)
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify", "--config", str(_cfg(tmp_path, path))])
    assert ok.exit_code == 0, ok.output
    assert ok.output == f"{path}: OK, 5 records, chain intact\n"
    _reorder(path)
    bad = runner.invoke(main, ["audit", "verify", "--config", str(_cfg(tmp_path, path))])
    assert bad.exit_code == 1
    head, first = bad.output.splitlines()[:2]
    assert head.startswith(f"{path}: TAMPERED (")
    assert first == (
        "first bad record: line 2: chain broken before record 4 (a record was removed, inserted or reordered)"
    )


def test_cli_audit_verify_wrong_key_is_tampered_and_env_key_works(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "a.jsonl"
    write_log(path)
    cfg = tmp_path / "bare.toml"
    cfg.write_text('[database]\nurl = "duckdb:///w.duckdb"\n')
    monkeypatch.setenv("SQLMODE_AUDIT_KEY", "z" * 40)
    r = CliRunner().invoke(main, ["audit", "verify", "--config", str(cfg), str(path)])
    assert r.exit_code == 1 and "line 1: record 1 was edited or forged" in r.output
    monkeypatch.setenv("SQLMODE_AUDIT_KEY", KEY_TEXT)
    r = CliRunner().invoke(main, ["audit", "verify", "--config", str(cfg), str(path)])
    assert r.exit_code == 0, r.output


def test_cli_audit_verify_defaults_to_the_configured_log(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.jsonl"
    path.parent.mkdir()
    write_log(path, 3)
    cfg = tmp_path / "sqlmode.toml"
    cfg.write_text(
        f'[database]\nurl = "duckdb:///w.duckdb"\n[audit]\npath = "logs/audit.jsonl"\nkey = "{KEY_TEXT}"\n'
    )
    r = CliRunner().invoke(main, ["audit", "verify", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert str(path) in r.output and "3 records" in r.output


@pytest.mark.parametrize("what", ["missing log", "no key"])
def test_cli_audit_verify_missing_or_unverifiable_is_exit_2(tmp_path: Path, what: str, monkeypatch) -> None:
    monkeypatch.delenv("SQLMODE_AUDIT_KEY", raising=False)
    path = tmp_path / "a.jsonl"
    if what == "missing log":
        cfg = _cfg(tmp_path, tmp_path / "nope.jsonl")
        expected = "CANNOT VERIFY: cannot read: No such file or directory"
    else:
        write_log(path)
        cfg = tmp_path / "bare.toml"
        cfg.write_text(f'[database]\nurl = "duckdb:///w.duckdb"\n[audit]\npath = "{path}"\n')
        expected = "CANNOT VERIFY: [audit.key] is not set and there is no key file"
    r = CliRunner().invoke(main, ["audit", "verify", "--config", str(cfg)])
    assert r.exit_code == 2
    assert expected in r.output


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
    assert verify_audit_log(settings.audit.path, keys_from_config(settings.audit)).ok
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
        assert {
            "seq",
            "at",
            "replica",
            "kid",
            "user",
            "groups",
            "session",
            "code_hash",
            "prev",
            "mac",
        } <= set(r)
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
        assert v.is_error and block_text(v.content[0]).startswith("AUDIT_FAILED:")
        assert v.structured_content is None and "approval_token" not in block_text(v.content[0])
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
