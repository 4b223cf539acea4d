"""Connections with limits: deadlines for slow clients and a cap on how many are open.

Every open connection holds a file descriptor, so a client that never
finishes its request holds one forever unless something ends it:

- ``server.header_timeout``: a connection gets this long to deliver a complete
  request head (request line and headers), counted from when it connects, and
  on a kept-alive connection from the first byte of its next request. Late:
  a 408 answer and the connection is closed.
- ``server.body_timeout``: the whole body must arrive this long after the
  head: a total deadline, not an idle gap, which a client sending one byte a
  second would reset forever. Late: reading the body raises ``BodyTimeout``,
  ``Server.do`` answers 408 and the connection is closed.
- the cap (``connection_cap``): a connection accepted while the cap is reached
  is closed at once, the newest first, so the clients already being served
  keep their place; the cap stays below the open-file limit, so ``accept()``
  never fails with "Too many open files".
- ``server.keepalive_timeout``: aiohttp's own idle timer, passed through.

One sweep a second (at most) checks every connection's deadlines rather than
a timer per request: a keep-alive ``POST /do`` pays only for the
``data_received`` override, a counter comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError

from reactr_wasm.server.responses import HTTPError, error_response, new_request_id

log = logging.getLogger(__name__)

TICK = 1.0  # longest pause between two sweeps of the deadlines, seconds
RESERVED_FILES = 64  # descriptors kept at least for all but client connections
BACKLOG = 128  # the listen queue; also how many connections asyncio accepts per wake-up
_QUOTED = re.compile(r"""[\s:]*b?['"].*""", re.DOTALL)  # where a parser error starts quoting the request


class BodyTimeout(TimeoutError):
    """A request body did not arrive within ``server.body_timeout``.

    A TimeoutError so that aiohttp, draining what is left of the body after the
    answer, stops at it quietly and closes the connection.
    """


def raise_open_file_limit() -> tuple[int, int] | None:
    """Raise the soft open-file limit to the hard one: the (old, new) soft limit; None where there is none."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as error:  # e.g. macOS refuses more than OPEN_MAX
        log.debug("cannot raise the open-file limit from %d to %d: %s", soft, wanted, error)
        return soft, soft
    return soft, wanted


def connection_cap(max_connections: int, open_files: int | None) -> int:
    """How many client connections to hold open: ``max_connections``, below the open-file limit.

    An eighth of the descriptors (at least ``RESERVED_FILES``) is kept for
    everything else: runnable files, outgoing HTTP, Redis and database
    connections, logs. So are two accept batches: asyncio accepts up to
    ``BACKLOG`` connections at a time and a connection is counted here one or
    two loop turns later, when it is made; over the cap, it is closed then.
    """
    if open_files is None or open_files <= 0:
        return max_connections
    reserved = max(RESERVED_FILES, open_files // 8) + 2 * BACKLOG
    return max(1, min(max_connections, open_files - reserved))


def _answer(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP response with the API's JSON error body, for a connection with no request to answer."""
    body = json.dumps({"code": status, "message": message}, separators=(",", ":")).encode()
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + body


def _reason(error: HttpProcessingError) -> str:
    """The parser's reason without the request bytes it quotes (they may hold credentials)."""
    lines = (error.message or "").strip().splitlines()
    reason = _QUOTED.sub("", lines[0]).rstrip(" :.") if lines else ""
    return reason or type(error).__name__


class Connections(web.Server):
    """aiohttp's low-level server, whose connections have deadlines and a cap (see the module docstring)."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        *,
        header_timeout: float,
        body_timeout: float,
        cap: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.header_timeout, self.body_timeout, self.cap = header_timeout, body_timeout, cap
        self.open: set[_Connection] = set()
        self.head_timeout_answer = _answer(
            408, "Request Timeout", f"request head not received within {header_timeout:g}s"
        )
        self._sweeper: asyncio.Task[None] | None = None

    def __call__(self) -> web.RequestHandler:  # the protocol factory: once per accepted connection
        if self._sweeper is None:
            self._sweeper = self._loop.create_task(self._sweep())
        return _Connection(self, loop=self._loop, **self._kwargs)

    def shed(self) -> None:
        log.warning("connection limit reached (%d open): closing new connections until some close", self.cap)

    async def shutdown(self, timeout: float | None = None) -> None:
        try:
            await super().shutdown(timeout)
        finally:
            if self._sweeper is not None:
                self._sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sweeper

    async def _sweep(self) -> None:
        tick = min(TICK, self.header_timeout / 4, self.body_timeout / 4)
        while True:
            await asyncio.sleep(tick)
            now = self._loop.time()
            for connection in list(self.open):
                try:
                    connection.check(now)
                except Exception:  # one odd connection must not stop the sweeps
                    log.exception("checking a connection's deadlines failed")


_data_received = web.RequestHandler.data_received


class _Connection(web.RequestHandler):
    """One client connection: aiohttp's handler plus its head and body deadlines."""

    __slots__ = ("_body_request", "_body_since", "_connections", "_head_since")

    def __init__(self, connections: Connections, **kwargs: Any) -> None:
        super().__init__(connections, **kwargs)
        self._connections = connections
        self._head_since: float | None = None  # when the head being awaited started; None: not awaiting one
        self._body_request: web.BaseRequest | None = None  # the request whose body is being timed
        self._body_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        connections = self._connections
        if len(connections.open) >= connections.cap:
            cast(asyncio.Transport, transport).abort()  # never started: connection_lost below skips aiohttp's teardown
            connections.shed()
            return
        connections.open.add(self)
        self._head_since = self._loop.time()
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self in self._connections.open:
            self._connections.open.remove(self)
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        _data_received(self, data)  # not super(): ~50 ns instead of ~300 ns, once per request
        if self._request_count != count:  # a request head is complete
            self._head_since = None
        elif self._head_since is None and self._waiter is not None:  # first bytes of the next head
            self._head_since = self._loop.time()

    def check(self, now: float) -> None:
        """Close the connection if its head is late; fail the body read if its body is."""
        connections = self._connections
        if self._head_since is not None and now - self._head_since >= connections.header_timeout:
            self._head_since = None
            log.warning(
                "closed a connection from %s: no complete request head within %gs (server.header_timeout)",
                self._client(),
                connections.header_timeout,
            )
            if self.transport is not None:
                self.transport.write(connections.head_timeout_answer)  # flushed before the close below
            self.force_close()
            return
        request = self._current_request
        if request is None or request.content.is_eof():
            self._body_request = None
        elif request is not self._body_request:  # first seen: the deadline runs from here, one tick late at most
            self._body_request, self._body_since = request, now
        elif now - self._body_since >= connections.body_timeout:
            self._body_since = float("inf")
            log.warning(
                "cut a request body from %s: not received within %gs (server.body_timeout)",
                self._client(),
                connections.body_timeout,
            )
            request.content.set_exception(
                BodyTimeout(f"request body not received within {connections.body_timeout:g}s")
            )

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """A request the parser rejects: one warning line, no traceback, nothing quoted from the request.

        Every answer from here is the API's JSON error with an X-Request-Id, as the routes give.
        """
        if not isinstance(exc, HttpProcessingError):
            plain = super().handle_error(request, status, exc, message)  # logs; raises when an answer is under way
            response = error_response(HTTPError(status, plain.reason or "internal server error"))
            response.headers["X-Request-Id"] = new_request_id()
            response.force_close()
            return response
        reason = _reason(exc)
        # Non-HTTP traffic on the port (TLS, scanners) is noise: debug, as aiohttp does.
        quiet = isinstance(exc, BadHttpMethod) and self._request_count == 1
        log.log(logging.DEBUG if quiet else logging.WARNING, "rejected a malformed request from %s: %s",
                self._client(), reason)  # fmt: skip
        response = error_response(HTTPError(status, f"malformed request: {reason}"))
        response.headers["X-Request-Id"] = new_request_id()
        response.force_close()
        return response

    def _client(self) -> str:
        peer = self.peername
        return str(peer[0]) if isinstance(peer, tuple) else str(peer or "unknown client")
