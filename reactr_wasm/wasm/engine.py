"""The Wasm engine: one wasmtime Engine, linker, epoch ticker and module cache."""

from __future__ import annotations

import threading
from pathlib import Path

from wasmtime import Config, Engine, Linker

from ..capabilities.cache import Cache
from ..capabilities.grants import Capabilities
from . import _raw
from .driver import Drivers
from .hostcalls import HostCalls
from .instance import Limits
from .module import ModuleCache, compile_module
from .pool import Isolation
from .runnable import WasmRunnable

TICK_SECONDS = 0.01  # granularity of timeouts and cancellation


class WasmEngine:
    """Compiles runnables once and links them against the ``env`` host ABI.

    Use as a context manager or call ``close()``: it owns the ticker thread.
    ``capabilities`` is what runnables loaded without their own get; ``cache``
    alone is shorthand for ``Capabilities(cache=cache)``.
    """

    def __init__(
        self,
        *,
        capabilities: Capabilities | None = None,
        cache: Cache | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        config = Config()
        config.epoch_interruption = True
        config.wasm_multi_memory = True  # the job driver copies between two memories
        _raw.config_memory_never_moves(config)
        self.engine = Engine(config)
        self.drivers = Drivers(self.engine)
        self.linker = Linker(self.engine)
        self.linker.define_wasi()
        self.capabilities = capabilities if capabilities is not None else Capabilities(cache=cache)
        self.host = HostCalls()
        self.host.link(self.linker)
        self.modules = ModuleCache(cache_dir)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="reactr-epoch", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self.engine.increment_epoch()

    def load(
        self,
        name: str,
        wasm: bytes,
        *,
        source: str | None = None,
        limits: Limits | None = None,
        isolation: Isolation = "reuse",
        capabilities: Capabilities | None = None,
    ) -> WasmRunnable:
        """Compile, check and start one instance of ``wasm``; ``capabilities`` defaults to the engine's.

        Raises ModuleError naming the source and the reason, so a module whose
        ``_start`` traps is refused here rather than failing its first job.
        """
        label = f"runnable '{name}' ({source})" if source else f"runnable '{name}'"
        module, info = compile_module(self.engine, self.modules, wasm, label)
        pre = self.linker.instantiate_pre(module)
        runnable = WasmRunnable(
            name,
            self.engine,
            pre,
            self.drivers,
            info,
            self.host,
            limits or Limits(),
            isolation,
            label,
            capabilities if capabilities is not None else self.capabilities,
        )
        runnable.pool.release(runnable.pool.acquire())
        return runnable

    def load_file(self, name: str, path: Path, **options: object) -> WasmRunnable:
        return self.load(name, path.read_bytes(), source=str(path), **options)  # type: ignore[arg-type]

    def close(self) -> None:
        self._stop.set()
        self._ticker.join()

    def __enter__(self) -> WasmEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
