"""MCP over stdio without a thread hop per message.

The SDK's ``stdio_server()`` reads and writes through ``anyio.wrap_file``: every line read and
every write and flush goes to a worker thread and back (about 0.4 ms a call on a busy 2-core
machine, for a few microseconds of work). When stdin and stdout are pipes or sockets (how MCP
clients spawn servers), :func:`stdio_streams` serves them through the event loop's own pipe
transports instead (``loop.connect_read_pipe`` / ``connect_write_pipe``): a write goes out with one
``os.write`` on the loop, and only a full pipe makes the writer wait (flow control, so a large
result never grows memory without bound).

The SDK still frames the messages: its ``stdio_server`` accepts explicit streams, and this module
hands it two small adapters. It claims fd 0 and 1 as the SDK does (the wire moves to private
duplicates; fd 0 reads the null device and fd 1 writes to stderr while serving, so a stray print or
a child process cannot tear a frame) and restores them on exit.

Anything else (a file, a terminal, a platform without these transports) falls back to the SDK's
own transport, unchanged.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

from mcp.server.stdio import stdio_server

__all__ = ["BEFORE_READY", "pipe_capable", "run_stdio", "serve_while_opening", "stdio_streams"]

# The longest line read from the client (one JSON-RPC message); validate_code's code is at most
# 100,000 characters, so a real request is far below this.
MAX_LINE_BYTES = 16 * 1024 * 1024
# Characters of a message encoded and written at a time (the pipe's usual capacity).
WRITE_CHUNK_CHARS = 64 * 1024


def pipe_capable(fd: int) -> bool:
    """True when ``fd`` is a pipe or a socket: what the event loop's pipe transports serve."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class _LineReader:
    """``async for line in reader``: the client's lines, as the SDK's reader expects them."""

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader

    def __aiter__(self) -> _LineReader:
        return self

    async def __anext__(self) -> str:
        while True:
            try:
                line = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as e:  # EOF: a last line without newline, or the end
                if not e.partial:
                    raise StopAsyncIteration from None
                line = e.partial
            except asyncio.LimitOverrunError as e:
                # Too long to be a request: drop it (the SDK answers nothing for an unreadable line,
                # as for any invalid JSON) and read on from the next one.
                await self._discard(e.consumed)
                continue
            return line.decode("utf-8", errors="replace")

    async def _discard(self, consumed: int) -> None:
        await self._reader.readexactly(consumed)
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as e:
                await self._reader.readexactly(e.consumed)
            except asyncio.IncompleteReadError:
                return


class _LineWriter:
    """``await write(text)`` then ``await flush()``: one write on the loop, waiting only on a full pipe.

    A long message (a large result) is encoded and handed over a piece at a time, waiting while
    the pipe is full: otherwise its UTF-8 copy, and a second copy in the transport's buffer when
    the client reads slower than this writes, would be held whole beside the text. The SDK writes
    one message at a time from one task, so pieces of two messages never interleave.
    """

    def __init__(self, writer: asyncio.StreamWriter):
        self._writer = writer

    async def write(self, text: str) -> None:
        if len(text) <= WRITE_CHUNK_CHARS:
            self._writer.write(text.encode("utf-8"))
            return
        for i in range(0, len(text), WRITE_CHUNK_CHARS):
            self._writer.write(text[i : i + WRITE_CHUNK_CHARS].encode("utf-8"))
            await self._writer.drain()

    async def flush(self) -> None:
        await self._writer.drain()


def _claim(fd: int, diversion: int) -> int:
    """Move the wire at ``fd`` to a private descriptor (returned) and point ``fd`` at ``diversion``."""
    private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.dup2(diversion, fd)
    return private


def _restore(fd: int, private: int) -> None:
    with suppress(OSError):
        os.set_blocking(private, True)  # the wire is the client's again, as it gave it
        os.dup2(private, fd)


@asynccontextmanager
async def stdio_streams() -> AsyncIterator[tuple[Any, Any]]:
    """The (read, write) message streams of MCP over this process's stdin and stdout."""
    if not (pipe_capable(0) and pipe_capable(1)):
        async with stdio_server() as streams:
            yield streams
        return
    loop = asyncio.get_running_loop()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        wire_in = _claim(0, null)
    finally:
        os.close(null)
    try:
        wire_out = _claim(1, 2)
    except OSError:
        _restore(0, wire_in)
        os.close(wire_in)
        raise
    transports: list[asyncio.BaseTransport] = []
    try:
        # closefd=False: the descriptors are closed below, after the wire is restored.
        reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0, closefd=False)
        )
        transports.append(read_transport)
        write_transport, protocol = await loop.connect_write_pipe(
            _WriteProtocol, os.fdopen(wire_out, "wb", buffering=0, closefd=False)
        )
        transports.append(write_transport)
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
        async with stdio_server(_LineReader(reader), _LineWriter(writer)) as streams:  # type: ignore[arg-type]
            yield streams
        with suppress(ConnectionError):
            await writer.drain()
    finally:
        for transport in transports:
            transport.close()
        _restore(0, wire_in)
        _restore(1, wire_out)
        os.close(wire_in)
        os.close(wire_out)


class _WriteProtocol(asyncio.streams.FlowControlMixin):
    """Flow control for the write pipe: ``drain()`` waits while the pipe is full."""


async def run_stdio(server: Any) -> None:
    """Serve ``server`` (an MCPServer) over stdio through :func:`stdio_streams`."""
    lowlevel = getattr(server, "_lowlevel_server", None)
    if lowlevel is None:  # an SDK without it: its own transport, with the thread hops
        await server.run_stdio_async()
        return
    async with stdio_streams() as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


# What is answered before the server's parts are open: the handshake, pings, cancellations and the
# tool list (static: built with the server). Everything else waits until they are.
BEFORE_READY = frozenset(
    {
        "initialize",
        "notifications/initialized",
        "notifications/cancelled",
        "ping",
        "server/discover",
        "tools/list",
    }
)


async def serve_while_opening(
    server: Any,
    opening: Callable[[], AbstractAsyncContextManager[Any]],
    on_failure: Callable[[Exception], bool] | None = None,
) -> None:
    """Serve ``server`` over stdio at once while ``opening()`` opens what its requests need.

    The client's handshake does not wait for policies to compile, the schema to be reflected or the
    database to be opened; every request outside :data:`BEFORE_READY` waits until ``opening()`` has
    entered. If it fails, ``on_failure(error)`` returning True keeps serving (the waiting requests go
    on, for the server to answer with the error) until the client hangs up; otherwise serving stops
    at once. Either way the error is raised. If the client hangs up first, the opening still
    finishes (or fails) before this returns, so its error is never lost. ``opening()``'s context is
    entered and left in one task.
    """
    ready = asyncio.Event()
    stop = asyncio.Event()
    kept = asyncio.Event()  # the opening failed and on_failure chose to keep serving

    async def gate(ctx: Any, call_next: Any) -> Any:
        if not ready.is_set() and ctx.method not in BEFORE_READY:
            await ready.wait()
        return await call_next(ctx)

    server.middleware.append(gate)

    async def hold() -> None:
        try:
            async with opening():
                ready.set()
                await stop.wait()
        except Exception as e:
            if on_failure is not None and on_failure(e):
                kept.set()
                ready.set()
            raise

    holder = asyncio.create_task(hold())
    serving = asyncio.create_task(run_stdio(server))
    try:
        await asyncio.wait({holder, serving}, return_when=asyncio.FIRST_COMPLETED)
        if holder.done() and kept.is_set():  # failed: serve its error until the client hangs up
            await asyncio.gather(serving, return_exceptions=True)
            holder.result()
        if holder.done():  # it ends before `stop` only by failing: end serving, raise its error
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            holder.result()
        stop.set()
        await holder  # the client hung up: let the opening settle and close
        serving.result()
    finally:
        stop.set()
        for task in (serving, holder):
            if not task.done():
                task.cancel()
        await asyncio.gather(serving, holder, return_exceptions=True)
