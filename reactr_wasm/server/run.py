"""Running the app: the event loop, a site on the configured address, the access log, signals, a graceful drain."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
from collections.abc import Callable, Iterator
from urllib.parse import quote

from aiohttp import web

from reactr_wasm.config import Config, ServerConfig
from reactr_wasm.errors import ConfigError
from reactr_wasm.scheduler.reactr import Reactr
from reactr_wasm.server.access_log import ACCESS_LOGGER, AccessLogger, write_waiting
from reactr_wasm.server.app import SHUTDOWN_GRACE, create_app
from reactr_wasm.server.connections import BACKLOG, connection_cap, raise_open_file_limit
from reactr_wasm.server.fastpath import DO_PREFIX, FastPathRunner
from reactr_wasm.server.log_repeats import RepeatFilter
from reactr_wasm.server.logformat import setup_logging
from reactr_wasm.server.redaction import Redactor, secret_values

log = logging.getLogger(__name__)


class ListenError(OSError):
    """The configured address cannot be listened on: in use, not a local address, no permission."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = os.strerror(error.errno) if error.errno else str(error)
        self.message = f"cannot listen on {where}: {reason[:1].lower()}{reason[1:]}"
        super().__init__(error.errno or errno.EINVAL, self.message)

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def _guarded_logs(config: Config) -> Iterator[None]:
    """While serving, every root handler masks secrets and cuts floods of repeated warnings.

    One RepeatFilter per handler: each handler filters a record once.
    """
    redactor = Redactor(secret_values(config))
    installed: list[tuple[logging.Handler, RepeatFilter]] = []
    for handler in logging.getLogger().handlers:
        repeats = RepeatFilter()
        handler.addFilter(redactor)  # first: repeats are told apart by the masked text
        handler.addFilter(repeats)
        installed.append((handler, repeats))
    try:
        yield
    finally:
        write_waiting()  # the access log's last lines, through the filters
        for handler, repeats in installed:
            repeats.flush(handler)
            handler.removeFilter(repeats)
            handler.removeFilter(redactor)


def _connection_cap(limits: ServerConfig) -> int:
    files = raise_open_file_limit()
    if files is not None and files[1] > files[0]:
        log.info("open-file limit raised from %d to %d", *files)
    cap = connection_cap(limits.max_connections, files[1] if files else None)
    log.debug("holding up to %d connections open", cap)
    return cap


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


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the event loop for ``server.loop``: uvloop's for "uvloop", and for "auto" when installed.

    Raises ConfigError for "uvloop" when uvloop is not installed.
    """
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError(
                    "server.loop is \"uvloop\" but uvloop is not installed: pip install 'reactr-wasm[fast]'"
                ) from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def _log_loop(loop: asyncio.AbstractEventLoop, choice: str) -> None:
    if type(loop).__module__.startswith("uvloop"):
        log.info("event loop: uvloop")
    else:
        hint = " (uvloop is not installed: pip install 'reactr-wasm[fast]' for it)" if choice == "auto" else ""
        log.info("event loop: asyncio%s", hint)


async def serve(
    reactr: Reactr,
    config: Config | None = None,
    *,
    app: web.Application | None = None,
    shutdown_event: asyncio.Event | None = None,
    handle_signals: bool = True,
    reuse_port: bool = False,
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``shutdown_event``), then drain and return.

    Draining stops accepting connections, waits up to ``server.drain_timeout``
    seconds for jobs and callbacks in flight, cancels what is left and closes.
    The soft open-file limit is raised to the hard one; while serving, the root
    logger's handlers mask secrets and cut floods of repeated warnings (when
    the root logger has none, INFO and up go to stderr in ``log.format``, as
    ``serve`` on the command line writes them); with
    ``log.access``, each request is logged on ``reactr_wasm.access``
    (``access_log.py``). Runs on the caller's event loop (see ``loop_factory``).
    ``reuse_port``: bind with ``SO_REUSEPORT``, to share the port with other
    processes (``serve --workers``, ``supervisor.py``); ``on_listening`` is called
    once the socket listens. Raises ListenError when the address cannot be listened on.
    """
    config = config if config is not None else Config()
    if not logging.getLogger().handlers:  # embedded, logging not set up: still say where it listens
        setup_logging("info", config.log.format)
    with _guarded_logs(config):
        await _serve(reactr, config, app, shutdown_event, handle_signals, reuse_port, on_listening)
    log.info("stopped")


async def _serve(
    reactr: Reactr, config: Config, app: web.Application | None, shutdown_event: asyncio.Event | None,
    handle_signals: bool, reuse_port: bool, on_listening: Callable[[], None] | None,
) -> None:  # fmt: skip
    app = app if app is not None else create_app(reactr, config)
    stop = shutdown_event if shutdown_event is not None else asyncio.Event()
    access = logging.getLogger(ACCESS_LOGGER) if config.log.access else None
    if access is None:
        log.info("access log off (--access-log or [log] access = true: a line per request)")
    runner = FastPathRunner(
        app, config.server, _connection_cap(config.server), handle_signals=False,
        access_log=access, access_log_class=AccessLogger,
        shutdown_timeout=min(SHUTDOWN_GRACE, config.server.drain_timeout),
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    _log_loop(loop, config.server.loop)
    await runner.setup()
    signals: list[signal.Signals] = []
    try:
        site = web.TCPSite(runner, config.server.host, config.server.port, backlog=BACKLOG, reuse_port=reuse_port)
        try:
            await site.start()
        except OSError as error:
            raise ListenError(config.server.host, config.server.port, error) from None
        log.info("listening on %s", ", ".join(f"{host}:{port}" for host, port, *_ in runner.addresses))
        _log_urls(reactr, runner)
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(signum, stop.set)
                    signals.append(signum)
        if on_listening is not None:
            on_listening()
        await stop.wait()
        log.info("shutting down: draining for up to %.1fs", config.server.drain_timeout)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await runner.cleanup()  # stops the site, then on_shutdown drains, then closes
