"""`sqlmode serve` over stdio pipes through the event loop's pipe transports (sqlmode/stdio.py).

Many calls in flight at once, results far larger than a pipe's buffer: every request is answered
exactly once, every frame is one whole JSON line. A file as stdout falls back to the SDK's transport.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.server.conftest import SQLMODE, subprocess_env

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
CALLS = 24


def call(rid: int, tool: str, args: dict[str, Any]) -> bytes:
    msg = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": tool, "arguments": args}}
    return (json.dumps(msg) + "\n").encode()


def big_query(i: int) -> str:
    # 1,000 rows (the row limit) of about 100 bytes each: ~100 KB a result, larger than a pipe buffer.
    return f"SELECT id, name, email, region, segment FROM customers WHERE id > {i} ORDER BY id"


def serving_io(stderr: str) -> str:
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    return str(next(r["io"] for r in records if r.get("event") == "serving"))


async def read_answers(stdout: asyncio.StreamReader, ids: set[int]) -> dict[int, dict[str, Any]]:
    answers: dict[int, dict[str, Any]] = {}
    while not ids <= answers.keys():
        line = await asyncio.wait_for(stdout.readline(), 120)
        assert line.endswith(b"\n"), line[-200:]  # EOF mid-frame or a torn frame
        msg = json.loads(line)  # every frame is one whole JSON document
        if "id" not in msg:
            continue  # a notification
        assert msg["id"] not in answers, f"answered twice: {msg['id']}"
        answers[msg["id"]] = msg
    return answers


async def test_concurrent_calls_with_large_results_over_pipes(
    config_file: Callable[..., Path], tmp_path: Path
) -> None:
    errlog = tmp_path / "stderr.log"
    with errlog.open("w") as err:
        proc = await asyncio.create_subprocess_exec(
            *SQLMODE,
            "serve",
            "--config",
            str(config_file()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=subprocess_env(),
            limit=1 << 24,
        )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write((json.dumps(INIT) + "\n" + json.dumps(INITIALIZED) + "\n").encode())
        await read_answers(proc.stdout, {0})
        # Every validation at once, written as one burst.
        proc.stdin.write(b"".join(call(i + 1, "validate_code", {"code": big_query(i)}) for i in range(CALLS)))
        await proc.stdin.drain()
        validated = await read_answers(proc.stdout, set(range(1, CALLS + 1)))
        execs = b""
        for i in range(CALLS):
            v = validated[i + 1]["result"]["structuredContent"]
            assert v["is_valid"], v
            args = {"code": v["normalized_code"], "approval_token": v["approval_token"]}
            execs += call(1000 + i, "execute_code", args)
        # Executions interleaved with more validations, still all in flight together.
        extra = b"".join(call(2000 + i, "validate_code", {"code": big_query(i)}) for i in range(CALLS))
        proc.stdin.write(execs + extra)
        await proc.stdin.drain()
        ids = {1000 + i for i in range(CALLS)} | {2000 + i for i in range(CALLS)}
        answers = await read_answers(proc.stdout, ids)
        for i in range(CALLS):
            result = answers[1000 + i]["result"]
            assert not result.get("isError"), result["content"]
            rows = result["structuredContent"]["rows"]
            assert len(rows) == 1000 and result["structuredContent"]["truncated"] is True
            assert [r[0] for r in rows] == list(range(i + 1, i + 1001))  # this call's rows, in order
            assert answers[2000 + i]["result"]["structuredContent"]["is_valid"]
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert serving_io(errlog.read_text()) == "pipes"


async def test_stdout_to_a_file_falls_back_to_the_sdk_transport(
    config_file: Callable[..., Path], tmp_path: Path
) -> None:
    # A file is not what the loop's pipe transports serve: the SDK's own transport writes it.
    out = tmp_path / "out.jsonl"
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    with out.open("wb") as stdout:
        proc = await asyncio.create_subprocess_exec(
            *SQLMODE,
            "serve",
            "--config",
            str(config_file()),
            stdin=asyncio.subprocess.PIPE,
            stdout=stdout,
            stderr=asyncio.subprocess.PIPE,
            env=subprocess_env(),
        )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in (INIT, INITIALIZED, listing)).encode())
        await proc.stdin.drain()
        for _ in range(1200):  # the answers, before the client hangs up
            if out.read_text().count("\n") >= 2:
                break
            await asyncio.sleep(0.05)
        proc.stdin.close()
        err = (await asyncio.wait_for(proc.stderr.read(), 60)).decode()
        assert await asyncio.wait_for(proc.wait(), 60) == 0, err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    answers = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert [m["id"] for m in answers] == [0, 1]
    assert {t["name"] for t in answers[1]["result"]["tools"]} >= {"validate_code", "execute_code"}
    assert serving_io(err) == "threads"


async def test_the_handshake_is_answered_while_the_service_opens_and_a_failed_open_answers_with_its_error(
    config_file: Callable[..., Path],
) -> None:
    # A "database" that accepts connections and never answers: the service cannot open until the
    # test hangs up on it. The handshake and the tool list do not wait for it; a tool call does,
    # and once the opening fails every call is answered with the error until the client hangs up.
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    cfg = config_file({"database": {"url": f"postgresql://nobody@127.0.0.1:{port}/db"}})
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    proc = await asyncio.create_subprocess_exec(
        *SQLMODE,
        "serve",
        "--config",
        str(cfg),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=subprocess_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        messages = (INIT, INITIALIZED, listing)
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages).encode())
        proc.stdin.write(call(2, "validate_code", {"code": "SELECT 1"}))
        await proc.stdin.drain()
        answers = await read_answers(proc.stdout, {0, 1})
        assert answers[0]["result"]["serverInfo"]["name"] == "sqlmode-analytics"
        assert {t["name"] for t in answers[1]["result"]["tools"]} >= {"validate_code", "execute_code"}
        # The service cannot open before the test hangs up on the silent database; it reaches it
        # (after the handshake: the analyzer and the drivers are imported first).
        for _ in range(1200):
            if held:
                break
            await asyncio.sleep(0.05)
        assert held
        silent.close()
        for writer in held:
            writer.close()
        # The waiting call, and any later one, is answered with the reason as a tool error.
        first = (await read_answers(proc.stdout, {2}))[2]
        proc.stdin.write(call(3, "describe_schema", {}))
        proc.stdin.write(call(4, "validate_code", {"code": "SELECT 2"}))
        await proc.stdin.drain()
        later = await read_answers(proc.stdout, {3, 4})
        still_running = proc.returncode is None
        proc.stdin.close()  # the client hangs up: the process ends with the error and exit code 2
        assert await asyncio.wait_for(proc.wait(), 60) == 2
        err = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert still_running
    for answer in (first, later[4]):
        assert answer["result"]["isError"] is True, answer
        text = answer["result"]["content"][0]["text"]
        assert text.startswith("DATABASE_UNAVAILABLE: sqlmode could not start: "), text
        assert f"127.0.0.1:{port}" in text and "restart the MCP server" in text, text
        assert "structuredContent" not in answer["result"] or not answer["result"]["structuredContent"]
    # describe_schema answers its errors as tool errors too.
    assert later[3]["result"]["isError"] is True and "sqlmode could not start" in str(later[3]), later[3]
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    failed = [r for r in logs if r.get("event") == "open_failed"]
    assert len(failed) == 1 and failed[0]["code"] == "DATABASE_UNAVAILABLE", err
    assert f"127.0.0.1:{port}" in failed[0]["error"], failed
    # And the command's own last word, as for any start-up failure.
    assert "\nerror: " in err and "Traceback" not in err, err


async def test_a_long_message_is_written_in_pieces_whole_and_in_order(tmp_path: Path) -> None:
    """Longer than a piece and than the pipe: multi-byte characters across piece boundaries, a slow reader."""
    import os

    from sqlmode.stdio import WRITE_CHUNK_CHARS, _LineWriter, _WriteProtocol

    loop = asyncio.get_running_loop()
    r, w = os.pipe()
    transport, protocol = await loop.connect_write_pipe(_WriteProtocol, os.fdopen(w, "wb", buffering=0))
    writer = _LineWriter(asyncio.StreamWriter(transport, protocol, None, loop))
    unit = "aé😀\n" + "x" * (WRITE_CHUNK_CHARS - 5)  # a 4-byte character straddles every piece boundary
    messages = [unit * 10 + "end\n", "short\n", "ü" * (3 * WRITE_CHUNK_CHARS + 1) + "\n"]

    def slow_read() -> bytes:
        got = bytearray()
        with os.fdopen(r, "rb", buffering=0) as f:
            while chunk := f.read(4096):
                got += chunk
        return bytes(got)

    buffered: list[int] = []
    write = transport.write

    def recording_write(data: Any) -> None:
        write(data)
        buffered.append(transport.get_write_buffer_size())

    transport.write = recording_write  # type: ignore[method-assign]
    reading = loop.run_in_executor(None, slow_read)
    for m in messages:
        await writer.write(m)
        await writer.flush()
    transport.close()
    assert (await reading).decode("utf-8") == "".join(messages)
    # While the reader lags, the transport holds about a piece at most, never a message's remainder.
    assert max(buffered) <= 4 * WRITE_CHUNK_CHARS and len(messages[0]) > 8 * WRITE_CHUNK_CHARS
