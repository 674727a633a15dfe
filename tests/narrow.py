"""Narrowing helpers for tests: what a test expects of a loosely typed value, checked at run time."""

from __future__ import annotations

from typing import get_args

from mcp.types import TextContent, TextResourceContents

from sqlmode.models import Dialect


def block_text(block: object) -> str:
    """The text of one MCP content block (tool result, resource or prompt message); else the test fails."""
    assert isinstance(block, TextContent | TextResourceContents), f"not a text block: {block!r}"
    return block.text


def as_dialect(name: str) -> Dialect:
    """Test parameters are plain strings; an unknown name fails here, not deep in the code under test."""
    for known in get_args(Dialect):
        if known == name:
            return known
    raise ValueError(f"not a dialect: {name!r}")
