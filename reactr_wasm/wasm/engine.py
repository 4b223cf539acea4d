"""The Wasm engine: wasmtime engines, linker, epoch ticker and module cache."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from wasmtime import Config, Engine, Linker

from reactr_wasm.capabilities.cache import Cache
from reactr_wasm.capabilities.grants import Capabilities
from reactr_wasm.errors import ConfigError
from reactr_wasm.limits import Limits
from reactr_wasm.wasm import _raw, _store
from reactr_wasm.wasm.driver import Drivers
from reactr_wasm.wasm.hostcalls import HostCalls
from reactr_wasm.wasm.instance import Blueprint
from reactr_wasm.wasm.module import ModuleCache, compile_module
from reactr_wasm.wasm.pool import FreshSlots, Isolation
from reactr_wasm.wasm.runnable import WasmRunnable

TICK_SECONDS = 0.01  # granularity of timeouts and cancellation


@dataclass(frozen=True)
class FreshPool:
    """How many ``isolation="fresh"`` instances may exist at once, and how large a memory each may have.

    Fresh instances come from wasmtime's pooling allocator, which reserves
    ``instances`` x (``memory`` + 32 MiB guard) of address space (not
    RAM) when the first fresh runnable loads. Every running fresh job holds one
    instance (a ``run_job`` chain one per level); a job finding none free fails
    with QueueFull. A fresh runnable's memory limit must fit in ``memory``.
    """

    instances: int = 32
    memory: int = Limits.memory  # bytes

    def __post_init__(self) -> None:
        if self.instances < 1 or self.memory < 65536:
            raise ValueError("FreshPool needs at least one instance of at least one 64 KiB page")


class _Runtime:
    """One wasmtime Engine with the ``env`` and WASI functions linked, and its compiled-module cache."""

    def __init__(self, config: Config, host: HostCalls, cache_dir: Path | None) -> None:
        config.epoch_interruption = True
        config.wasm_multi_memory = True  # the job driver copies between two memories
        _raw.config_memory_never_moves(config)
        self.engine = Engine(config)
        self.linker = Linker(self.engine)
        self.linker.define_wasi()
        host.link(self.linker)
        self.modules = ModuleCache(cache_dir)


class WasmEngine:
    """Compiles runnables once and links them against the ``env`` host ABI.

    Use as a context manager or call ``close()``: it owns the ticker thread.
    ``capabilities`` is what runnables loaded without their own get; ``cache``
    alone is shorthand for ``Capabilities(cache=cache)``. ``fresh_pool`` sizes
    the instance pool of ``isolation="fresh"`` runnables, which have a
    wasmtime engine of their own, made when the first one loads.
    """

    def __init__(
        self,
        *,
        capabilities: Capabilities | None = None,
        cache: Cache | None = None,
        cache_dir: Path | None = None,
        fresh_pool: FreshPool | None = None,
    ) -> None:
        self._capabilities = capabilities if capabilities is not None else Capabilities(cache=cache)
        self.host = HostCalls()  # public until the scheduler hands its job runner over at construction
        self._cache_dir = cache_dir
        self._shared = _Runtime(Config(), self.host, cache_dir)
        self._drivers = Drivers(self._shared.engine)
        self._fresh_pool = fresh_pool or FreshPool()
        self._pooled: tuple[_Runtime, FreshSlots] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="reactr-epoch", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self._shared.engine.increment_epoch()
            pooled = self._pooled
            if pooled is not None:
                pooled[0].engine.increment_epoch()

    def _fresh_runtime(self) -> tuple[_Runtime, FreshSlots]:
        """The pooled engine of fresh runnables and its slots, made on first use."""
        with self._lock:
            if self._pooled is None:
                size = self._fresh_pool
                config = Config()
                _store.use_pooling(config, size.instances, size.memory)
                # Its modules are compiled for another memory reservation: keep them apart.
                cache_dir = self._cache_dir / f"pooled-{size.memory}" if self._cache_dir else None
                self._pooled = (_Runtime(config, self.host, cache_dir), FreshSlots(size.instances))
            return self._pooled

    @property
    def fresh_slots_free(self) -> int | None:
        """Fresh instances that could be made now; None before the first fresh runnable loads."""
        return self._pooled[1].free if self._pooled is not None else None

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
        ``_start`` traps is refused here rather than failing its first job;
        ConfigError when a fresh runnable's memory limit is over ``fresh_pool``'s.
        """
        label = f"runnable '{name}' ({source})" if source else f"runnable '{name}'"
        limits = limits or Limits()
        slots: FreshSlots | None = None
        if isolation == "fresh":
            if limits.memory > self._fresh_pool.memory:
                raise ConfigError(
                    f"{label}: memory limit of {limits.memory} bytes is over the "
                    f"{self._fresh_pool.memory} bytes of a fresh instance (FreshPool.memory)"
                )
            runtime, slots = self._fresh_runtime()
        else:
            runtime = self._shared
        module, info = compile_module(runtime.engine, runtime.modules, wasm, label)
        pre = runtime.linker.instantiate_pre(module)
        # A fresh instance runs one job: instantiating the job driver next to it measured
        # ~20 µs slower per job than the two guest calls it saves.
        drivers = self._drivers if isolation == "reuse" else None
        plan = Blueprint.of(runtime.engine, pre, info, self.host, limits, label, drivers, module, runtime.linker)
        own = capabilities if capabilities is not None else self._capabilities
        runnable = WasmRunnable(name, plan, info, isolation, slots, own)
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
