"""The floor of an MCP server over stdio: the SDK's MCPServer with two tools that do nothing.

It answers ``validate_code`` and ``execute_code`` with constant, sqlmode-shaped results, so spawning it
and calling it measure the interpreter, the SDK and the stdio transport alone (bench_startup.py).

    python benchmarks/trivial_server.py     # serves stdio
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

app = MCPServer("trivial")


@app.tool()
def validate_code(code: str) -> dict[str, Any]:
    """Accept any code."""
    return {"is_valid": True, "normalized_code": code, "approval_token": "t"}


@app.tool()
def execute_code(code: str, approval_token: str) -> dict[str, Any]:
    """Return one constant row."""
    return {"columns": ["n"], "rows": [[1]], "row_count": 1}


if __name__ == "__main__":
    app.run("stdio")
