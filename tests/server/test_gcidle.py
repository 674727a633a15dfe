"""Garbage collection between requests (gcidle.py): cyclic garbage a request leaves is freed once
the server is idle, no young-generation pass runs inside a request, and a server that is never idle
is still collected (the raised threshold bounds the garbage held)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from mcp import Client
from mcp.server.mcpserver import MCPServer

from sqlmode.gcidle import COLLECTOR, IdleCollector
from sqlmode.server import build_server


class Node:
    """A parse-tree-like node: it points to its parent, so only the collector frees a tree of them."""

    def __init__(self, parent: Node | None = None):
        self.parent = parent
        self.children: list[Node] = []


def cyclic_tree(n: int) -> Node:
    root = Node()
    for _ in range(n):
        root.children.append(Node(root))
    return root


def _server(collector: IdleCollector, refs: list[weakref.ref[Node]]) -> MCPServer:
    server = MCPServer("gc")
    server.middleware.append(collector.middleware)

    @server.tool()
    def parse(n: int) -> int:
        tree = cyclic_tree(n)
        refs.append(weakref.ref(tree))
        return len(tree.children)

    return server


async def test_garbage_is_collected_between_requests_not_during_them() -> None:
    saved = gc.get_threshold()
    collector = IdleCollector(delay=0.01)
    refs: list[weakref.ref[Node]] = []
    during: list[int] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and collector.in_flight and info["generation"] == 0:
            during.append(info["generation"])

    gc.collect()
    collector.start()
    gc.callbacks.append(callback)
    try:
        assert gc.get_threshold()[0] == max(saved[0], collector.busy_threshold)
        async with Client(_server(collector, refs)) as client:
            for _ in range(5):
                # 1,500 objects a call: twice the default threshold, so the interpreter's own
                # collector would have run inside these calls.
                assert (await client.call_tool("parse", {"n": 1500})).structured_content == {"result": 1500}
                assert refs[-1]() is not None  # the tree is garbage, but not collected yet
                await asyncio.sleep(0.1)  # idle: the collector runs
                assert refs[-1]() is None, "the request's cyclic garbage outlived an idle moment"
        assert during == []
        assert collector.passes[0] + collector.passes[1] + collector.passes[2] >= 5
    finally:
        gc.callbacks.remove(callback)
        collector.stop()
    assert gc.get_threshold() == saved


async def test_a_server_that_is_never_idle_is_still_collected() -> None:
    saved = gc.get_threshold()
    collector = IdleCollector(delay=0.01, busy_threshold=5_000)
    collector.start()
    held = asyncio.Event()
    refs: list[weakref.ref[Node]] = []

    async def endless_request(_ctx: Any) -> None:
        for _ in range(20):  # 20 x 1,000 young objects while a request is in flight
            refs.append(weakref.ref(cyclic_tree(1000)))
        held.set()

    try:
        await collector.middleware(None, endless_request)
        assert held.is_set()
        # The automatic collector ran inside the request at the raised threshold: early trees freed.
        assert refs[0]() is None
    finally:
        collector.stop()
    assert gc.get_threshold() == saved


async def test_no_collection_while_a_request_is_in_flight() -> None:
    collector = IdleCollector(delay=0.0)
    collector.start()
    release = asyncio.Event()

    async def slow(_ctx: Any) -> None:
        await release.wait()

    try:
        task = asyncio.create_task(collector.middleware(None, slow))
        await asyncio.sleep(0.01)
        cyclic_tree(collector.young * 2)
        assert collector.collect() is None  # one request in flight: not idle
        release.set()
        await task
        await asyncio.sleep(0.01)
        assert sum(collector.passes) == 1  # idle right after: collected then
    finally:
        collector.stop()


def test_a_disabled_collector_stays_disabled() -> None:
    saved = gc.get_threshold()
    gc.set_threshold(0)
    try:
        collector = IdleCollector()
        collector.start()
        assert gc.get_threshold()[0] == 0
        collector.stop()
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*saved)


async def test_sqlmode_servers_count_their_requests(shared_service: Any) -> None:
    assert COLLECTOR.middleware in build_server(shared_service).middleware
