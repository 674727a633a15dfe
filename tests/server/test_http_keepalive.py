"""The HTTP tier keeps an idle connection open longer than MCP clients' own pools do.

An HTTP client pools a connection after a request and drops it once idle for its expiry (httpx, the
Python SDK's client: 5 s). uvicorn's default keep-alive is also 5 s: a client idle just that long
sends its next request into the server's close, gets a ReadError, and the SDK ends the whole
session ("Connection closed"). sqlmode serves with a longer keep-alive (server.HTTP_KEEP_ALIVE_S),
so the client always lets go first. Checked on a raw socket: a second request after 6 s of idle is
answered on the same connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from sqlmode.server import HTTP_KEEP_ALIVE_S, http_server_config

CLIENT_POOL_EXPIRY_S = 5.0  # httpx's default keepalive_expiry


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()
    return await asyncio.wait_for(reader.read(4096), 5)


async def test_an_idle_connection_outlives_the_clients_pool_expiry() -> None:
    assert HTTP_KEEP_ALIVE_S > CLIENT_POOL_EXPIRY_S
    server = uvicorn.Server(http_server_config(_ok, "127.0.0.1", 0))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert (await _ask(reader, writer)).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(CLIENT_POOL_EXPIRY_S + 1)
            # uvicorn's default (5 s) would have closed it by now: the read would return b"".
            assert (await _ask(reader, writer)).startswith(b"HTTP/1.1 200")
        finally:
            writer.close()
    finally:
        server.should_exit = True
        await task
