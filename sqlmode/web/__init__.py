"""HTTP pages beside ``/mcp``: the approval page and its API (server layer)."""

from __future__ import annotations

from typing import Any

__all__ = ["WebFront", "approval_routes"]


class WebFront:
    """ASGI: the approval pages for their paths, everything else (``/mcp``, lifespan) to ``app``.

    The pages sit in front of the MCP boundary on purpose: a browser form on this server's own page
    sends its Origin, which ``server.allowed_origins`` (meant for MCP clients) does not list.
    """

    def __init__(self, web: Any, app: Any):
        from .approvals import WEB_PREFIXES

        self.web = web
        self.app = app
        self.prefixes = WEB_PREFIXES

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(self.prefixes):
            await self.web(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def __getattr__(name: str) -> Any:
    # The pages (and their imports) load for HTTP serving only; a stdio server imports elicit alone.
    if name == "approval_routes":
        from .approvals import approval_routes

        return approval_routes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
