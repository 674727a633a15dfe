"""The approval page of a stdio server: the routes served beside ``/mcp``, on a port of its own.

A stdio server's only channel is its client's pipe, which the model reads and writes; approvers need
a door the model does not hold. This serves :func:`approval_routes` (the same credentials, login
form, cookie, CSRF checks and headers as over HTTP) on ``approval.page_host``/``page_port``, in the
server's own event loop over its own state store, so a decision releases the waiting execute_code
directly. It writes nothing to stdout (uvicorn's loggers go to the JSON logs on stderr) and takes no
signal handlers (the stdio server owns the process and its shutdown).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn

from ..access import is_loopback
from ..auth import ConfigTokenVerifier, build_token_verifier
from ..config import Settings
from ..errors import ConfigError
from ..service import CodeModeService
from . import page_needed
from .approvals import approval_routes
from .hosts import HostCheck, page_hosts

__all__ = ["check_page_config", "page_needed", "stdio_page"]

log = logging.getLogger("sqlmode.web")

_WILDCARDS = ("0.0.0.0", "::", "")


def check_page_config(settings: Settings) -> ConfigTokenVerifier | None:
    """The credentials approvers log in with (None: only through the OIDC provider); ConfigError when
    the page cannot be served safely."""
    ap = settings.approval
    host = ap.page_host
    if not is_loopback(host) and not ap.page_allow_remote:
        raise ConfigError(
            f"approval.page_host is {host!r}, not a loopback address: a stdio server serves its approval "
            "page on loopback only, unless approval.page_allow_remote = true",
            key="approval.page_host",
            hint='Use page_host = "127.0.0.1"; to let other machines reach the page, set '
            "page_allow_remote = true (and put TLS in front of it, with approval.base_url).",
        )
    if host in _WILDCARDS and not ap.base_url:
        raise ConfigError(
            f"approval.page_host {host!r} listens on every interface, so links cannot name an address",
            key="approval.base_url",
            hint='Set approval.base_url to the address approvers open, e.g. "https://sqlmode.internal:8443".',
        )
    verifier = build_token_verifier(settings)
    if verifier is None and not settings.auth.oidc_issuer:
        raise ConfigError(
            "queries here wait for a human approver, and approvers log in to the approval page with [auth] "
            "credentials: none are configured",
            key="auth",
            hint='Add a token per approver, e.g. [auth.tokens."<a long random token>"] user = "ana", '
            'groups = ["approvers"] (or a JWT key, or an OIDC provider: auth.oidc_issuer); the stdio '
            "client itself needs none.",
        )
    return verifier


def _bind(host: str, port: int) -> socket.socket:
    """A bound socket, so "port in use" is a clear error before anything is served."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as e:
        raise ConfigError(
            f"cannot resolve approval.page_host {host!r}: {e.strerror or e}", key="approval.page_host"
        ) from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only; never a live listener
        sock.bind(addr)
        sock.set_inheritable(False)
    except OSError as e:
        sock.close()
        raise ConfigError(
            f"cannot serve the approval page on {host}:{port}: {e.strerror or e}",
            key="approval.page_port",
            hint="Another process holds that port (another sqlmode?): choose a free approval.page_port, "
            "or 0 for any free port (the links carry it).",
        ) from None
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The stdio server owns SIGINT/SIGTERM; uvicorn's handlers would swallow them.
        yield


@contextlib.asynccontextmanager
async def stdio_page(service: CodeModeService) -> AsyncIterator[str]:
    """Serve the approval page for ``service`` until exit; yield its base URL (``http://host:port``).

    Links in tool results name this URL unless ``approval.base_url`` says otherwise.
    """
    import asyncio

    settings = service.settings
    verifier = check_page_config(settings)
    ap = settings.approval
    sock = _bind(ap.page_host, ap.page_port)
    port = sock.getsockname()[1]
    url = f"http://{_url_host(ap.page_host)}:{port}"
    hosts = page_hosts(ap.page_host, settings.server.allowed_hosts, lambda: service.approvals.base_url)
    app = HostCheck(approval_routes(service, verifier), hosts)
    server = _Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=3,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        # uvicorn offers a flag, not an event, for "listening".
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
            raise ConfigError("the approval page stopped while starting", key="approval.page_port")
        if not ap.base_url:
            service.approvals.base_url = url
        log.info(
            "approval page listening",
            extra={"event": "listening", "transport": "approval-page", "url": url},
        )
        yield url
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
        sock.close()
