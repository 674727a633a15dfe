"""Narrowing helpers for tests: what a test expects of a loosely typed value, checked at run time."""

from __future__ import annotations

from mcp.types import TextContent, TextResourceContents

from sqlmode.engines import engine_named


def block_text(block: object) -> str:
    """The text of one MCP content block (tool result, resource or prompt message); else the test fails."""
    assert isinstance(block, TextContent | TextResourceContents), f"not a text block: {block!r}"
    return block.text


def as_dialect(name: str) -> str:
    """Test parameters are plain strings; an unknown engine fails here, not deep in the code under test."""
    return engine_named(name).traits.name
