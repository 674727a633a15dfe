"""The approval pages' own Host check (DNS rebinding), for both places they are served.

A page that answers any Host can be read by a site whose name an attacker rebinds to this
server's address: the browser then treats the page as the attacker's own origin. The MCP SDK's
check guards ``/mcp`` only, so the pages carry their own, over HTTP (``serve --transport http``)
and on a stdio server's loopback port alike. The names a page answers to:

- the configured ``server.allowed_hosts`` (``name:*`` = any port, as the SDK reads them);
- loopback names (127.0.0.1, localhost, [::1]) when the server listens on loopback, and the listen
  address itself when it is a specific one, at the port the request came in on (``scope["server"]``,
  so a port the OS chose is known);
- the host of the links the pages are reached by (``approval.base_url``, or the address derived
  from the bind when it is unset), read at each request since it is set once the port is bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from ..access import is_loopback

__all__ = ["REFUSAL", "HostCheck", "page_hosts"]

_WILDCARDS = ("0.0.0.0", "::", "")
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_DEFAULT_PORTS = {"http": 80, "https": 443}
REFUSAL = b"Misdirected request: unknown Host"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _at(name: str, port: int, scheme: str) -> set[str]:
    """``name`` at ``port`` as a Host header says it (no port when it is the scheme's default)."""
    out = {f"{_url_host(name)}:{port}"}
    if _DEFAULT_PORTS.get(scheme) == port:
        out.add(_url_host(name))
    return out


def _base_names(base_url: str | None) -> set[str]:
    if not base_url:
        return set()
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return set()
    if not parts.hostname or parts.hostname in _WILDCARDS:
        return set()
    return _at(parts.hostname, port or _DEFAULT_PORTS.get(parts.scheme, 80), parts.scheme)


def page_hosts(
    bind_host: str, allowed_hosts: Iterable[str], base_url: Callable[[], str | None]
) -> Callable[[int, str], tuple[set[str], tuple[str, ...]]]:
    """The Host names a page listening on ``bind_host`` answers to: (exact names, ``name:`` prefixes)
    for a request that came in on ``port`` over ``scheme``."""
    listen = {bind_host.strip("[]")} - set(_WILDCARDS)
    if is_loopback(bind_host):
        listen |= set(_LOOPBACK_NAMES)
    configured = [h.lower() for h in allowed_hosts]
    exact = {h for h in configured if not h.endswith(":*")}
    prefixes = tuple(h[:-1] for h in configured if h.endswith(":*"))  # keeps the colon

    def allowed(port: int, scheme: str) -> tuple[set[str], tuple[str, ...]]:
        names = set(exact) | _base_names(base_url())
        for n in listen:
            names |= _at(n, port, scheme)
        return {n.lower() for n in names}, prefixes

    return allowed


class HostCheck:
    """ASGI: refuse a Host the pages do not answer to (421), with the pages' security headers."""

    def __init__(self, app: Any, allowed: Callable[[int, str], tuple[set[str], tuple[str, ...]]]):
        self.app = app
        self.allowed = allowed

    def accepts(self, scope: dict[str, Any]) -> bool:
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "").lower()
        if not host:
            return False  # HTTP/1.0 without Host: no name to trust
        scheme = str(scope.get("scheme", "http"))
        server = scope.get("server") or (None, None)
        port = server[1] if isinstance(server[1], int) else _DEFAULT_PORTS.get(scheme, 80)
        names, prefixes = self.allowed(port, scheme)
        return host in names or (host.startswith(prefixes) and host.rsplit(":", 1)[-1].isdigit())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self.accepts(scope):
            await send(
                {
                    "type": "http.response.start",
                    "status": 421,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"x-frame-options", b"DENY"),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": REFUSAL})
            return
        await self.app(scope, receive, send)
