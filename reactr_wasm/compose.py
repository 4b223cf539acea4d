"""The composition root: the one place that builds everything from a ``Config``.

It picks the implementations (today: the in-memory cache capability; later the
Redis backends, imported lazily here and nowhere else), builds the Wasm engine
and the scheduler, loads the runnables folder, and wires the HTTP app with hot
reload. Everything else receives what it needs as arguments.

Compiled-module disk cache: ``config.cache_dir`` when set, else
``<runnables_dir>/.reactr-cache`` (next to the modules it caches, so a second
start of the same folder skips compiling; the watcher ignores it: only
``*.wasm`` files are runnables), else none (``reactr-wasm run`` on one file
leaves nothing behind). The cache is keyed by content hash and wasmtime version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from .capabilities.cache import MemoryCache
from .config import Config
from .errors import ConfigError
from .scheduler.reactr import Reactr
from .server.watch import RunnableFolder
from .wasm.instance import Limits

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

CACHE_DIRNAME = ".reactr-cache"


def cache_dir_for(config: Config) -> Path | None:
    """Where compiled modules are cached on disk; None: not at all."""
    if config.cache_dir is not None:
        return config.cache_dir
    if config.runnables_dir is not None:
        return config.runnables_dir / CACHE_DIRNAME
    return None


def limits_for(config: Config, name: str) -> Limits:
    """The limits of runnable ``name``: its ``[runnables.NAME]`` overrides, else ``[limits]``."""
    own, common = config.runnable(name), config.limits
    return Limits(
        timeout_seconds=own.timeout if own.timeout is not None else common.timeout,
        memory_bytes=own.memory if own.memory is not None else common.memory,
        max_result_bytes=own.result_size if own.result_size is not None else common.result_size,
    )


def build_reactr(config: Config) -> Reactr:
    """A scheduler with its own engine (closed by ``Reactr.close()``) and no runnables yet."""
    return Reactr(cache=MemoryCache(), cache_dir=cache_dir_for(config))


def register_wasm(reactr: Reactr, config: Config, name: str, wasm: bytes, path: Path) -> None:
    """Compile ``wasm`` and serve it as ``name`` with its configured limits and pool.

    Replaces a runnable of the same name; its jobs in flight finish on the old
    version. Raises ModuleError naming the file and the reason.
    """
    own, limits = config.runnable(name), limits_for(config, name)
    runnable = reactr.engine.load(name, wasm, source=str(path), limits=limits, isolation=own.isolation)
    reactr.register(
        name,
        runnable,
        pool_size=own.pool_size,
        timeout=limits.timeout_seconds,
        max_queue=own.queue_size if own.queue_size is not None else config.limits.queue_size,
        prewarm=own.prewarm,
    )


def load_folder(reactr: Reactr, config: Config, directory: Path) -> RunnableFolder:
    """Serve every ``*.wasm`` of ``directory`` now; a bad module is logged and skipped."""
    folder = RunnableFolder(directory, partial(register_wasm, reactr, config), reactr.deregister)
    folder.poll(settle=False)
    for name in sorted(config.runnables.keys() - set(folder.served)):
        log.warning("%s: runnables.%s is configured but %s/%s.wasm is not served", config.source, name, directory, name)
    log.info("serving %d runnable(s) from %s: %s", len(folder.served), directory, ", ".join(folder.served) or "none")
    return folder


def build_app(reactr: Reactr, config: Config, folder: RunnableFolder | None = None) -> web.Application:
    """The HTTP app over ``reactr``; with ``folder``, hot reload runs while the app does."""
    from .server.app import create_app  # aiohttp loads only for the server, not for `run`

    app = create_app(reactr, config)
    if folder is not None:
        app.cleanup_ctx.append(folder.cleanup_ctx)
    return app


@dataclass
class Service:
    """Everything ``serve`` runs: the scheduler, the runnables folder and the app."""

    config: Config
    reactr: Reactr
    app: web.Application
    folder: RunnableFolder | None = field(default=None)

    def close(self) -> None:
        """Finish queued jobs and stop the scheduler and its engine (bounded by the drain timeout)."""
        self.reactr.close(timeout=self.config.server.drain_timeout)


def build_service(config: Config, *, watch: bool = True) -> Service:
    """Build the server from ``config``; ``config.runnables_dir`` must be set.

    Raises ConfigError when the runnables folder is not a readable folder.
    """
    directory = config.runnables_dir
    if directory is None or not directory.is_dir():
        raise ConfigError(f"runnables folder {directory} does not exist or is not a folder")
    reactr = build_reactr(config)
    try:
        folder = load_folder(reactr, config, directory)
        app = build_app(reactr, config, folder if watch else None)
    except BaseException:
        reactr.close()
        raise
    return Service(config, reactr, app, folder)
