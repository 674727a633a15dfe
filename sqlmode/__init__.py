"""sqlmode: SQL Code Mode for MCP."""
