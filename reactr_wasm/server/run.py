"""Running the app: a site on the configured address, signals, and a graceful drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..config import Config
from ..scheduler.reactr import Reactr
from .app import DO_PREFIX, SERVER, SHUTDOWN_GRACE, create_app, new_request_id
from .responses import HTTPError, error_response

log = logging.getLogger(__name__)


class _Connection(RequestHandler):
    """A connection whose own refusals are the API's JSON errors, with X-Request-Id.

    aiohttp answers a request HTTP cannot parse (a line or header over 8190
    bytes, framing headers in conflict), or an exception no route caught, in
    its protocol layer, before any route or ``Server.guard``: as plain text.
    """

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)  # logs; raises when an answer is under way
        text = " ".join(message.split()) if message and status != 500 else plain.reason  # never a traceback
        response = error_response(HTTPError(status, text or "bad request"))
        response.headers["X-Request-Id"] = new_request_id()
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    """An AppRunner whose server hands ``POST /do/{job}`` straight to its route.

    aiohttp's Application routing (resolve, match info, middleware checks)
    costs ~15 µs per request here — more than the Wasm job it routes to. The
    hottest route skips it; every other request goes through the app as usual.
    """

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._do = app[SERVER].guard(app[SERVER].do)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the Application builds the Server; only its connections' class differs
        through_app = server.request_handler
        do = self._do

        async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
            path = request.path
            name = path[len(DO_PREFIX):]
            if request.method == "POST" and path.startswith(DO_PREFIX) and name and "/" not in name:
                return await do(request)  # type: ignore[arg-type]
            return await through_app(request)

        server.request_handler = dispatch
        return server


def _log_urls(reactr: Reactr, runner: web.AppRunner) -> None:
    """Log each runnable's URL, as ``spin up`` lists its routes: ``  NAME  POST http://HOST:PORT/do/NAME``."""
    if not runner.addresses:
        return
    host, port = runner.addresses[0][:2]
    host = f"[{host}]" if ":" in host else host  # IPv6
    names = reactr.names()
    width = max(map(len, names), default=0)
    lines = "".join(f"\n  {name.ljust(width)}  POST http://{host}:{port}{DO_PREFIX}{quote(name)}" for name in names)
    log.info("runnables:%s", lines or " none")


ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tf "%{X-Request-Id}o"'


async def serve(
    reactr: Reactr,
    config: Config | None = None,
    *,
    app: web.Application | None = None,
    shutdown_event: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``shutdown_event``), then drain and return.

    Draining stops accepting connections, waits up to ``server.drain_timeout``
    seconds for jobs and callbacks in flight, cancels what is left and closes.
    """
    config = config if config is not None else Config()
    app = app if app is not None else create_app(reactr, config)
    stop = shutdown_event if shutdown_event is not None else asyncio.Event()
    runner = _Runner(
        app, handle_signals=False, access_log_format=ACCESS_LOG_FORMAT,
        shutdown_timeout=min(SHUTDOWN_GRACE, config.server.drain_timeout),
    )
    await runner.setup()
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    try:
        site = web.TCPSite(runner, config.server.host, config.server.port)
        await site.start()
        log.info("listening on %s", ", ".join(f"{host}:{port}" for host, port, *_ in runner.addresses))
        _log_urls(reactr, runner)
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(signum, stop.set)
                    signals.append(signum)
        await stop.wait()
        log.info("shutting down: draining for up to %.1fs", config.server.drain_timeout)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await runner.cleanup()  # stops the site, then on_shutdown drains, then closes
    log.info("stopped")
