"""The HTTP boundary in front of the MCP app: exact Origin checks and one access-log line a request.

Origins are compared as (scheme, host, port) against ``server.allowed_origins``, nothing else
passes: a browser page on any other origin (another port of localhost included) gets 403 before
authentication or MCP see the request. Requests without an Origin header (every non-browser MCP
client) are not affected; the Host check (DNS rebinding) stays with the SDK.

Access log: ``sqlmode.access`` writes one structured line per HTTP request (``event:
"http_request"``) and per tool call (``event: "tool_call"``, written by the server), in the
JSON-lines format of every other sqlmode log on stderr.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

from .errors import ConfigError

__all__ = ["ACCESS_LOG", "HttpBoundary", "canonical_origin", "is_loopback", "parse_origins"]

ACCESS_LOG = logging.getLogger("sqlmode.access")

_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def canonical_origin(value: str) -> Origin | None:
    """(scheme, host, port) of a serialized origin ``scheme://host[:port]``; None if it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def origin_text(origin: Origin) -> str:
    """The serialization browsers send: default ports omitted, IPv6 hosts in brackets."""
    scheme, host, port = origin
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" + ("" if port == _DEFAULT_PORTS[scheme] else f":{port}")


def parse_origins(values: Iterable[str]) -> dict[Origin, str]:
    """``server.allowed_origins`` as canonical origins; a ConfigError names an entry that is not one."""
    out: dict[Origin, str] = {}
    for value in values:
        origin = canonical_origin(value) if "*" not in value else None
        if origin is None:
            raise ConfigError(
                f"server.allowed_origins entry {value!r} is not an origin",
                key="server.allowed_origins",
                hint="Write each origin exactly as a browser sends it, scheme://host[:port], e.g. "
                '"http://localhost:6274"; wildcards are not accepted.',
            )
        out[origin] = origin_text(origin)
    return out


def _principal(scope: dict[str, Any]) -> str | None:
    user = scope.get("user")
    if isinstance(user, AuthenticatedUser):
        return user.access_token.subject or user.access_token.client_id
    return None


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for k, v in scope.get("headers") or ():
        if k.lower() == name:
            return v.decode("latin-1")
    return None


class HttpBoundary:
    """ASGI middleware: the exact Origin check, then the app, then one access-log line."""

    def __init__(self, app: Any, allowed_origins: Iterable[str]):
        self.app = app
        self.allowed = parse_origins(allowed_origins)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 0}

        async def send_and_note(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            origin = _header(scope, b"origin")
            if origin is not None:
                canonical = canonical_origin(origin)
                allowed = self.allowed.get(canonical) if canonical is not None else None
                if allowed is None:
                    await _refuse(send_and_note, 403, "Invalid Origin header")
                    return
                # The SDK compares Origin strings once more; hand it the configured spelling.
                scope["headers"] = [
                    (k, allowed.encode("latin-1") if k.lower() == b"origin" else v)
                    for k, v in scope["headers"]
                ]
            await self.app(scope, receive, send_and_note)
        finally:
            extra: dict[str, Any] = {
                "event": "http_request",
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status["code"] or None,
                "principal": _principal(scope),
                "ms": round((time.perf_counter() - started) * 1000, 3),
            }
            session = _header(scope, b"mcp-session-id")
            if session:
                extra["mcp_session"] = session
            client = scope.get("client")
            if client:
                extra["client"] = client[0]
            ACCESS_LOG.info("http request", extra=extra)


async def _refuse(send: Any, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
