"""A real ASGI app served by uvicorn on an ephemeral loopback port, for the length of a block."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


@asynccontextmanager
async def serving(app: Any, host: str = "127.0.0.1", **config: Any) -> AsyncIterator[int]:
    """Serve ``app`` on ``host`` at a free port; yield the port; stop the server afterwards."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_config=None, **config))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # uvicorn exposes a flag, not an event
            if task.done():
                task.result()  # it failed to start: say why
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task
