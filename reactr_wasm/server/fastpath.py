"""The hot path of ``POST /do/NAME?then=true``: past aiohttp's router, and jobs run in batches.

Two measured shortcuts, each kept out of the routes module so that one reads as routes:

- ``FastPathRunner``: aiohttp's Application routing (resolve, match info,
  middleware checks) costs ~15 µs per request here, more than the Wasm job it
  routes to. The runner's server hands ``POST /do/NAME`` straight to the route's
  own handler (``DO_ROUTE``, guarded like every route); every other request
  goes through the app as usual.
- ``ThenBatch``: under load one turn of the event loop reads many requests.
  Running their jobs back to back after the turn, rather than each in its own
  handler, keeps the Wasm engine's code and the HTTP stack's each warm in the
  CPU caches: a job then costs ~2 µs of server time instead of ~20 µs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reactr_wasm.config import ServerConfig
from reactr_wasm.scheduler.reactr import Reactr
from reactr_wasm.server.connections import Connections
from reactr_wasm.server.request_keys import STARTED

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Outcome = tuple[bool, Any, Exception | None]  # (ran, value, error) of a job run by ThenBatch

DO_PREFIX = "/do/"
# The guarded handler of POST /do/{job}, as the app registered it; the runner calls it directly.
DO_ROUTE: web.AppKey[Handler] = web.AppKey("reactr_do_route")


class ThenBatch:
    """``then=true`` jobs of one event loop, run back to back after the loop turn that read them."""

    def __init__(self, reactr: Reactr) -> None:
        self._reactr = reactr
        self._pending: list[tuple[str, bytes, asyncio.Future[Outcome]]] = []

    def run_soon(self, name: str, body: bytes) -> asyncio.Future[Outcome]:
        """``(ran, value, error)`` of ``Reactr.do_now`` for this job, once the batch has run.

        ``ran`` is False when the job must be queued instead (``Reactr.do``).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append((name, body, future))
        if len(self._pending) == 1:
            loop.call_soon(self._run)
        return future

    def _run(self) -> None:
        batch, self._pending = self._pending, []
        for name, body, future in batch:
            if future.cancelled():  # the client went away
                continue
            outcome: Outcome
            try:
                ran, value = self._reactr.do_now(name, body)
                outcome = (ran, value, None)
            except Exception as error:  # the job's error, answered by the handler
                outcome = (True, None, error)
            future.set_result(outcome)


class FastPathRunner(web.AppRunner):
    """An AppRunner whose server hands ``POST /do/{job}`` straight to its route.

    Its connections have deadlines and a cap (``connections.py``).
    """

    def __init__(self, app: web.Application, limits: ServerConfig, cap: int, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.keepalive_timeout, **kwargs)
        self._do = app[DO_ROUTE]
        self._limits, self._cap = limits, cap
        self._timed = kwargs.get("access_log") is not None  # the access log's clock: see access_log.AccessLogger

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts the app; aiohttp's server with the handler arguments
        through_app = plain.request_handler
        do = self._do
        timed, clock = self._timed, time.perf_counter

        async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
            if timed:
                request[STARTED] = clock()
            path = request.path
            name = path[len(DO_PREFIX) :]
            if request.method == "POST" and path.startswith(DO_PREFIX) and name and "/" not in name:
                return await do(request)  # type: ignore[arg-type]
            return await through_app(request)

        # Same server, our connection class: plain._kwargs are the handler arguments aiohttp gathered
        # (access log, keep-alive, the app's handler_args); it has no public getter for them.
        return Connections(
            dispatch, header_timeout=self._limits.header_timeout, body_timeout=self._limits.body_timeout,
            cap=self._cap, request_factory=plain.request_factory, handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(), **plain._kwargs,
        )  # fmt: skip


__all__ = ["DO_PREFIX", "DO_ROUTE", "FastPathRunner", "Outcome", "ThenBatch"]
