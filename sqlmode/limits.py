"""Per-principal limits on the HTTP tier, so that one credential cannot starve the others.

- Requests: a token bucket of ``server.requests_per_minute`` per principal; past it the request gets
  HTTP 429 with ``Retry-After`` before any MCP work is done.
- Sessions: at most ``server.max_sessions_per_credential`` open MCP sessions per credential (429
  with ``Retry-After`` for one more), ``server.max_sessions`` in all, each closed after
  ``server.session_idle_timeout_seconds`` without a request.
- Validations: a bucket of ``server.validations_per_minute`` and at most
  ``server.max_concurrent_validations`` analyses in flight per principal; past either, validate_code
  answers the tool error RATE_LIMITED with the seconds to wait. A slot is held until the analysis
  thread has finished, past its deadline too (see workers.py).

The principal is the authenticated user (static token or JWT subject); without ``[auth]`` (loopback
development) it is the client address. Counters live in this process: several server processes
behind a balancer each enforce the limits on their own share.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from .config import ServerConfig
from .errors import RateLimitedError

__all__ = ["HttpLimits", "PrincipalLimits", "TokenBucket"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

# Buckets of principals idle long enough to be full again are dropped past this many keys.
_MAX_KEYS = 10_000
# A refused request is answered after a pause (at most its Retry-After, at most this long): a client
# that floods with a few connections is slowed to a few requests a second, and each refusal costs the
# server a sleeping task, not a busy event loop. Past this many paused answers, refusals are immediate.
TARPIT_MAX_S = 1.0
TARPIT_MAX_WAITING = 256


class TokenBucket:
    """``per_minute`` events a minute per key, bursts up to ``per_minute``; O(1) memory a key."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> int:
        """0 when the event may happen (and counts it), else the whole seconds until it may."""
        now = self._clock()
        tokens, at = self._state.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._state[key] = (tokens - 1.0, now)
            if len(self._state) > _MAX_KEYS:
                self._prune(now)
            return 0
        self._state[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def _prune(self, now: float) -> None:
        full = [k for k, (t, at) in self._state.items() if t + (now - at) * self.rate >= self.capacity]
        for k in full:
            del self._state[k]


class PrincipalLimits:
    """The counters of one server process."""

    def __init__(self, cfg: ServerConfig, clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.requests = TokenBucket(cfg.requests_per_minute, clock)
        self.validations = TokenBucket(cfg.validations_per_minute, clock)
        self._lanes: dict[str, _Lane] = {}

    async def validation_slot(self, key: str) -> Callable[[], None]:
        """Wait for one of ``key``'s validation slots; the returned callable gives it back (once).

        At most ``max_concurrent_validations`` analyses of a principal run at a time and
        ``max_queued_validations`` more wait their turn; past that, or past the rate,
        RateLimitedError at once.
        """
        wait = self.validations.take(key)
        if wait:
            raise RateLimitedError(
                f"This principal validated more than {self.cfg.validations_per_minute} queries in a minute "
                "(server.validations_per_minute).",
                retry_after=wait,
            )
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(self.cfg.max_concurrent_validations)
        if lane.waiting >= self.cfg.max_queued_validations and lane.sem.locked():
            raise RateLimitedError(
                f"{self.cfg.max_concurrent_validations + lane.waiting} validations of this principal are "
                "already running or waiting (server.max_concurrent_validations, "
                "server.max_queued_validations).",
                retry_after=1,
                hint="Validate one query at a time: wait for the previous validate_code to answer.",
            )
        lane.waiting += 1
        try:
            await lane.sem.acquire()
        finally:
            lane.waiting -= 1
        lane.running += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            lane.running -= 1
            lane.sem.release()
            if lane.running == 0 and lane.waiting == 0 and self._lanes.get(key) is lane:
                del self._lanes[key]

        return release


class _Lane:
    """One principal's validations: a semaphore and how many wait for it."""

    def __init__(self, size: int):
        self.sem = asyncio.Semaphore(size)
        self.waiting = 0
        self.running = 0


def principal_key(scope: Scope) -> tuple[str, str] | None:
    """(principal, credential) of an HTTP request: the authenticated user, else the client address."""
    user = scope.get("user")
    if isinstance(user, AuthenticatedUser):
        access = user.access_token
        return f"user:{access.subject or access.client_id}", f"cred:{access.token}"
    client = scope.get("client")
    if client:
        return f"addr:{client[0]}", f"addr:{client[0]}"
    return None


class HttpLimits:
    """ASGI wrapper of the MCP endpoint (inside authentication): request rate and session quota.

    ``live_sessions`` returns the ids of the sessions the SDK still holds open, to forget the
    ones it closed (idle timeout, DELETE); sessions are attributed to a credential from the
    ``mcp-session-id`` header of the response that opened them.
    """

    def __init__(
        self,
        app: ASGIApp,
        limits: PrincipalLimits,
        live_sessions: Callable[[], set[str] | None],
        *,
        require_user: bool,
    ):
        self.app = app
        self.limits = limits
        self._live_sessions = live_sessions
        self._require_user = require_user
        self._sessions: dict[str, set[str]] = {}  # credential -> session ids it opened
        self._waiting = 0
        self._opening: dict[str, int] = {}  # credential -> opening requests not yet answered

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        key = principal_key(scope)
        if key is None or (self._require_user and not isinstance(scope.get("user"), AuthenticatedUser)):
            await self.app(scope, receive, send)  # unauthenticated: the auth layer answers 401
            return
        principal, credential = key
        wait = self.limits.requests.take(principal)
        if wait:
            await self._pause(wait)
            await _too_many(
                send,
                wait,
                f"More than {self.limits.cfg.requests_per_minute} requests a minute from this principal "
                f"(server.requests_per_minute). Retry after {wait} s.",
            )
            return
        headers = dict(scope.get("headers") or [])
        if scope.get("method") != "POST" or b"mcp-session-id" in headers:
            await self.app(scope, receive, send)
            return
        # A request without a session may open one. Sessionless protocol versions (2026-07-28) do not,
        # so their requests in flight are not counted as openings; a session id in any answer is.
        version = headers.get(b"mcp-protocol-version", b"").decode("latin-1")
        counted = version not in MODERN_PROTOCOL_VERSIONS
        open_now = self._open_sessions(credential)
        opening_now = self._opening.get(credential, 0)
        quota = self.limits.cfg.max_sessions_per_credential
        if len(open_now) + opening_now >= quota:
            wait = max(1, min(60, math.ceil(self.limits.cfg.session_idle_timeout_seconds)))
            await self._pause(wait)
            await _too_many(
                send,
                wait,
                f"This credential already has {len(open_now)} open MCP sessions "
                f"(server.max_sessions_per_credential = {quota}). Close one (HTTP DELETE) or reuse it; "
                f"idle sessions close after {self.limits.cfg.session_idle_timeout_seconds:g} s.",
            )
            return
        done = [not counted]
        if counted:
            self._opening[credential] = opening_now + 1
        try:
            await self.app(scope, receive, self._recording(send, credential, done))
        finally:
            self._opened(credential, done)

    async def _pause(self, retry_after: int) -> None:
        if self._waiting >= TARPIT_MAX_WAITING:
            return
        self._waiting += 1
        try:
            await asyncio.sleep(min(float(retry_after), TARPIT_MAX_S))
        finally:
            self._waiting -= 1

    def _open_sessions(self, credential: str) -> set[str]:
        mine = self._sessions.get(credential)
        if not mine:
            return set()
        live = self._live_sessions()
        if live is not None:
            mine &= live
            if mine:
                self._sessions[credential] = mine
            else:
                self._sessions.pop(credential, None)
        return mine

    def _opened(self, credential: str, done: list[bool]) -> None:
        """The opening request is answered: it counts as a session (recorded) or not at all."""
        if done[0]:
            return
        done[0] = True
        left = self._opening.get(credential, 1) - 1
        if left > 0:
            self._opening[credential] = left
        else:
            self._opening.pop(credential, None)

    def _recording(self, send: Any, credential: str, done: list[bool]) -> Any:
        async def wrapped(message: Message) -> None:
            if message.get("type") == "http.response.start":
                if message.get("status", 500) < 400:
                    for name, value in message.get("headers") or []:
                        if name.lower() == b"mcp-session-id":
                            self._sessions.setdefault(credential, set()).add(value.decode("latin-1"))
                self._opened(credential, done)
            await send(message)

        return wrapped


async def _too_many(send: Any, retry_after: int, message: str) -> None:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": -32000,
                "message": f"RATE_LIMITED: {message}",
                "data": {"retry_after": retry_after},
            },
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", str(retry_after).encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
