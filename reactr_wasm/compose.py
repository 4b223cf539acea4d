"""The composition root: the one place that builds everything from a ``Config``.

It picks the implementations (the capability backends: memory or Redis cache,
SQLite or PostgreSQL, the HTTP client under its rules; the optional drivers are
imported lazily by their modules), builds the Wasm engine and the scheduler,
gives each runnable the capabilities it is granted, loads the runnables folder,
and wires the HTTP app with hot reload. Everything else receives what it needs
as arguments.

Compiled-module disk cache: ``config.cache_dir`` when set, else
``<runnables_dir>/.reactr-cache`` (next to the modules it caches, so a second
start of the same folder skips compiling; the watcher ignores it: only
``*.wasm`` files are runnables), else none (``reactr-wasm run`` on one file
leaves nothing behind). The cache is keyed by content hash and wasmtime version.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from .backends.memory_results import MemoryResultStore
from .backends.results import ResultStore
from .capabilities.cache import Cache, MemoryCache
from .capabilities.db import Database
from .capabilities.db_sqlite import SQLiteDatabase
from .capabilities.egress import Egress
from .capabilities.grants import Capabilities
from .capabilities.graphql import GraphQLClient
from .capabilities.http import HttpClient
from .capabilities.http_loop import BackgroundLoop
from .capabilities.http_rules import HttpRules
from .capabilities.static import StaticFiles
from .config import Config
from .config.capabilities import CAPABILITIES, HttpSettings, http_settings_for
from .errors import ConfigError
from .limits import Limits
from .scheduler.reactr import Reactr
from .server.watch import RunnableFolder
from .wasm.engine import FreshPool

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

CACHE_DIRNAME = ".reactr-cache"
FRESH_HEADROOM = 16  # fresh instances beyond the configured runnables' own: run_job chains, reloads


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
        timeout=own.timeout if own.timeout is not None else common.timeout,
        memory=own.memory if own.memory is not None else common.memory,
        result_size=own.result_size if own.result_size is not None else common.result_size,
    )


@dataclass
class Backends:
    """The capability backends of one server, shared by all its runnables. Close when done.

    ``loop`` runs every HTTP client of the server (``http`` and the per-runnable
    ones ``http_client`` hands out); ``close()`` closes those clients, then the loop.
    """

    cache: Cache
    http: HttpClient  # under [capabilities.http]
    static: StaticFiles | None = None
    db: Database | None = None
    loop: BackgroundLoop | None = None
    _runnable_http: dict[tuple[HttpRules, tuple[tuple[str, str], ...], Egress], HttpClient] = field(
        default_factory=dict, init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def http_client(self, settings: HttpSettings) -> HttpClient:
        """The client for one runnable's ``[runnables.NAME.http]``: one per distinct settings, kept until close."""
        key = (settings.rules(), tuple(sorted(settings.auth.items())), settings.egress())
        with self._lock:
            client = self._runnable_http.get(key)
            if client is None:
                client = self._runnable_http[key] = _http_client(settings, self.loop)
            return client

    def close(self) -> None:
        try:
            for backend in (self.db, self.cache):
                close = getattr(backend, "close", None)
                if close is not None:
                    close()
        finally:
            with self._lock:
                clients = [self.http, *self._runnable_http.values()]
                self._runnable_http.clear()
            for client in clients:
                client.close()
            if self.loop is not None:
                self.loop.close()

    def __enter__(self) -> Backends:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _http_client(settings: HttpSettings, loop: BackgroundLoop | None) -> HttpClient:
    return HttpClient(settings.rules(), auth=settings.auth, loop=loop, egress=settings.egress())


def build_backends(config: Config) -> Backends:
    """Open the configured backends; raises ConfigError when one cannot be opened."""
    settings = config.capabilities
    cache: Cache
    if settings.cache.backend == "redis":
        from .capabilities.redis_cache import RedisCache

        assert settings.cache.url is not None  # the config refuses redis without a url
        cache = RedisCache(settings.cache.url, settings.cache.namespace)
    else:
        cache = MemoryCache(settings.cache.max_entries)
    loop = BackgroundLoop()
    backends = Backends(cache, _http_client(settings.http, loop), loop=loop)
    try:
        if settings.static.dir is not None:
            backends.static = StaticFiles(settings.static.dir, max_bytes=settings.static.max_file_size)
        if settings.db.path is not None:
            backends.db = SQLiteDatabase(settings.db.path, settings.db.queries)
        elif settings.db.url is not None:
            from .capabilities.db_postgres import PostgresDatabase

            backends.db = PostgresDatabase(
                settings.db.url, settings.db.queries, max_connections=settings.db.max_connections
            )
    except BaseException:
        backends.close()
        raise
    return backends


def capabilities_for(config: Config, backends: Backends, name: str) -> Capabilities:
    """What runnable ``name`` is granted: its own list, else ``[capabilities].grant``."""
    grants = config.grants(name)
    overrides = config.runnable(name).http
    http = backends.http_client(http_settings_for(config.capabilities, overrides)) if overrides else backends.http
    return Capabilities(
        http=http if "http" in grants else None,
        graphql=GraphQLClient(http) if "graphql" in grants else None,
        cache=backends.cache if "cache" in grants else None,
        static=backends.static if "static" in grants else None,
        db=backends.db if "db" in grants else None,
    )


def fresh_pool_for(config: Config) -> FreshPool:
    """The pool ``isolation = "fresh"`` instances come from, sized from the config.

    ``[limits] fresh_instances`` when set, else room for every configured fresh
    runnable's worker threads and inline runs (2 x its pool_size) plus 16 for
    ``run_job`` chains; each slot as large as the largest memory limit of any of them.
    """
    fresh = [name for name, own in config.runnables.items() if own.isolation == "fresh"]
    instances = config.limits.fresh_instances
    if instances is None:
        instances = 2 * sum(config.runnable(name).pool_size for name in fresh) + FRESH_HEADROOM
    memory = max([config.limits.memory, *(limits_for(config, name).memory for name in fresh)])
    return FreshPool(instances=instances, memory=memory)


def build_reactr(config: Config, backends: Backends | None = None) -> Reactr:
    """A scheduler with its own engine (closed by ``Reactr.close()``) and no runnables yet.

    Without ``backends``, runnables get a private in-memory cache and nothing else.
    """
    cache = backends.cache if backends is not None else MemoryCache()
    return Reactr(
        capabilities=Capabilities(cache=cache), cache_dir=cache_dir_for(config), fresh_pool=fresh_pool_for(config)
    )


def register_wasm(
    reactr: Reactr, config: Config, name: str, wasm: bytes, path: Path, backends: Backends | None = None
) -> None:
    """Compile ``wasm`` and serve it as ``name`` with its configured limits, pool and grants.

    Replaces a runnable of the same name; its jobs in flight finish on the old
    version. Raises ModuleError naming the file and the reason.
    """
    own, limits = config.runnable(name), limits_for(config, name)
    capabilities = capabilities_for(config, backends, name) if backends is not None else None
    runnable = reactr.engine.load(
        name, wasm, source=str(path), limits=limits, isolation=own.isolation, capabilities=capabilities
    )
    if capabilities is not None:
        missing = sorted(set(runnable.info.capabilities) & set(CAPABILITIES) - set(capabilities.granted()))
        if missing:
            log.warning(
                "runnable '%s' (%s) uses %s but is not granted it; those calls will be refused "
                "(grant with [runnables.%s] capabilities = [...])",
                name,
                path,
                ", ".join(missing),
                name,
            )
    reactr.register(
        name,
        runnable,
        pool_size=own.pool_size,
        queue_size=own.queue_size if own.queue_size is not None else config.limits.queue_size,
        prewarm=own.prewarm,
    )


def load_folder(reactr: Reactr, config: Config, directory: Path, backends: Backends | None = None) -> RunnableFolder:
    """Serve every ``*.wasm`` of ``directory`` now; a bad module is logged and skipped."""
    register = partial(register_wasm, reactr, config, backends=backends)
    folder = RunnableFolder(directory, register, reactr.deregister)
    folder.poll(settle=False)
    for name in sorted(config.runnables.keys() - set(folder.served)):
        log.warning("%s: runnables.%s is configured but %s/%s.wasm is not served", config.source, name, directory, name)
    log.info("serving %d runnable(s) from %s: %s", len(folder.served), directory, ", ".join(folder.served) or "none")
    return folder


def build_store(config: Config) -> ResultStore:
    """The result store of the server: in memory, bounded by ``[server]``'s TTL, count and bytes."""
    server = config.server
    return MemoryResultStore(ttl=server.result_ttl, max_results=server.max_results, max_bytes=server.max_result_bytes)


def build_app(reactr: Reactr, config: Config, folder: RunnableFolder | None = None) -> web.Application:
    """The HTTP app over ``reactr`` and the configured store; with ``folder``, hot reload runs while the app does."""
    from .server.app import create_app  # the routes load only for serve, not for `run`

    app = create_app(reactr, config, store=build_store(config))
    if folder is not None:
        app.cleanup_ctx.append(folder.cleanup_ctx)
    return app


@dataclass
class Service:
    """Everything ``serve`` runs: the scheduler, the runnables folder and the app."""

    config: Config
    reactr: Reactr
    app: web.Application
    backends: Backends
    folder: RunnableFolder | None = field(default=None)

    def close(self) -> None:
        """Finish queued jobs, stop the scheduler and its engine (bounded by the drain timeout), close backends."""
        try:
            self.reactr.close(timeout=self.config.server.drain_timeout)
        finally:
            self.backends.close()


def build_service(config: Config, *, watch: bool = True) -> Service:
    """Build the server from ``config``; ``config.runnables_dir`` must be set.

    Raises ConfigError when the runnables folder is not a readable folder.
    """
    directory = config.runnables_dir
    if directory is None or not directory.is_dir():
        raise ConfigError(f"runnables folder {directory} does not exist or is not a folder")
    backends = build_backends(config)
    reactr = build_reactr(config, backends)
    try:
        folder = load_folder(reactr, config, directory, backends)
        app = build_app(reactr, config, folder if watch else None)
    except BaseException:
        reactr.close()
        backends.close()
        raise
    return Service(config, reactr, app, backends, folder)
