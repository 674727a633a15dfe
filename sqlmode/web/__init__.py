"""HTTP pages beside ``/mcp``: the approval page and its API (server layer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..service import CodeModeService

__all__ = ["WebFront", "approval_routes", "page_needed"]


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


def page_needed(service: CodeModeService) -> bool:
    """Whether any query can wait for an approver: ``[approval]`` rules or an ``@approval`` permit.

    Policies read at start-up count; a policy file edited later to add ``@approval`` needs a restart
    to bring the page up (its links would otherwise name no server).
    """
    ap = service.settings.approval
    if ap.risk_levels or ap.actions:
        return True
    loaded = getattr(service.evaluator, "loaded", None)
    metas = loaded.meta.values() if loaded is not None else ()
    return any(m.approval is not None and m.effect == "permit" for m in metas)


def __getattr__(name: str) -> Any:
    # The pages (and their imports) load for HTTP serving only; a stdio server imports elicit alone.
    if name == "approval_routes":
        from .approvals import approval_routes

        return approval_routes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
