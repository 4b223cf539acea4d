"""The composition root: the one place that builds everything from a ``Config``.

It opens the capability backends the config grants (each ``[capabilities.X]``
section opens its own: memory or Redis cache, SQLite or PostgreSQL, the HTTP
clients and their loop thread; ``capabilities/registry.py`` says which
capability uses which section), builds the Wasm engine and the scheduler,
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
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reactr_wasm.backends.memory_results import MemoryResultStore
from reactr_wasm.backends.results import ResultStore
from reactr_wasm.capabilities.cache import MemoryCache
from reactr_wasm.capabilities.grants import Capabilities
from reactr_wasm.capabilities.hints import grant_line
from reactr_wasm.capabilities.registry import CAPABILITIES, NAMES
from reactr_wasm.config import Config
from reactr_wasm.config.capabilities import Section, runnable_settings
from reactr_wasm.errors import ConfigError
from reactr_wasm.limits import Limits
from reactr_wasm.scheduler.reactr import Reactr
from reactr_wasm.server.watch import RunnableFolder
from reactr_wasm.wasm.engine import FreshPool

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


class Backends:
    """The opened backend of each capability section, shared by all runnables of a server. Close when done.

    ``build_backends`` opens a section only when some runnable may be granted
    one of its capabilities: without ``http`` or ``graphql`` in any grant, no
    HTTP client, loop thread or aiohttp exists.
    """

    def __init__(self) -> None:
        self._opened: dict[str, Any] = {}  # section -> its backend (None: the section has nothing to open)

    def open(self, section: str, settings: Section) -> None:
        """Open ``section``'s backend from its settings; raises ConfigError when it cannot be opened."""
        self._opened[section] = settings.open()

    def get(self, section: str) -> Any:
        """The backend of ``section``, or None when it was not opened."""
        return self._opened.get(section)

    @property
    def sections(self) -> list[str]:
        """The sections opened, in order."""
        return list(self._opened)

    def close(self) -> None:
        """Close every opened backend, the last opened first; the first error is raised after the rest closed."""
        opened, self._opened = list(self._opened.values()), {}
        failure: BaseException | None = None
        for backend in reversed(opened):
            try:
                close = getattr(backend, "close", None)
                if close is not None:
                    close()
            except BaseException as error:
                failure = failure or error
        if failure is not None:
            raise failure

    def __enter__(self) -> Backends:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def granted_anywhere(config: Config) -> set[str]:
    """Every capability some runnable may be granted: ``[capabilities].grant`` (any runnable not listed
    in the config gets it) and each ``[runnables.NAME].capabilities``."""
    granted = set(config.capabilities.grant)
    for own in config.runnables.values():
        granted.update(own.capabilities or ())
    return granted


def build_backends(config: Config) -> Backends:
    """Open the backends of the sections some runnable may use; raises ConfigError when one cannot be opened."""
    granted, sections = granted_anywhere(config), config.capabilities.sections()
    backends = Backends()
    try:
        for spec in CAPABILITIES:
            if spec.name in granted and spec.section not in backends.sections:
                backends.open(spec.section, sections[spec.section])
    except BaseException:
        backends.close()
        raise
    return backends


def capabilities_for(config: Config, backends: Backends, name: str) -> Capabilities:
    """What runnable ``name`` is granted (its own list, else ``[capabilities].grant``), from ``backends``."""
    grants, own = config.grants(name), config.runnable(name)
    objects: dict[str, Any] = {}
    for spec in CAPABILITIES:
        backend = backends.get(spec.section)
        if spec.name in grants and backend is not None:
            objects[spec.name] = spec.grant(backend, runnable_settings(config.capabilities, spec.section, own))
    return Capabilities(**objects)


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
    cache = backends.get("cache") if backends is not None else None
    return Reactr(
        capabilities=Capabilities(cache=cache or MemoryCache()),
        cache_dir=cache_dir_for(config),
        fresh_pool=fresh_pool_for(config),
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
        missing = sorted(set(runnable.info.capabilities) & set(NAMES) - set(capabilities.granted()))
        if missing:
            log.warning(
                "runnable '%s' (%s) uses %s but is not granted it; those calls will be refused (grant with %s)",
                name,
                path,
                ", ".join(missing),
                grant_line(name, [*capabilities.granted(), *missing]),
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
    """The result store of the embedded server: in memory, bounded by ``[server]``'s TTL, count and bytes.

    In Redis mode the server builds its own, in Redis (``server/cluster_jobs.py``).
    """
    server = config.server
    return MemoryResultStore(ttl=server.result_ttl, max_results=server.max_results, max_bytes=server.max_result_bytes)


def build_app(reactr: Reactr, config: Config, folder: RunnableFolder | None = None) -> web.Application:
    """The HTTP app over ``reactr`` and the configured store; with ``folder``, hot reload runs while the app does."""
    from reactr_wasm.server.app import SERVER, create_app  # the routes load only for serve, not for `run`

    app = create_app(reactr, config, store=None if config.cluster.enabled else build_store(config))
    if folder is not None:
        app.cleanup_ctx.append(folder.cleanup_ctx)
        app[SERVER].load_errors = folder.load_errors  # a runnable that does not load answers 503 with why
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
