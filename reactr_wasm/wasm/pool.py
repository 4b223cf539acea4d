"""Instance pools: reuse warm instances or build a fresh one per job."""

from __future__ import annotations

from typing import Literal

from wasmtime import Engine, InstancePre

from .driver import Drivers
from .hostcalls import HostCalls
from .instance import Limits, WasmInstance

Isolation = Literal["reuse", "fresh"]


class InstancePool:
    """Hands out instances of one runnable to worker threads.

    ``reuse`` keeps idle instances warm (guest state persists between jobs, as
    in Reactr); ``fresh`` builds one per job and closes it afterwards. Either
    way, an instance whose job trapped is closed, never handed out again.
    """

    def __init__(
        self,
        engine: Engine,
        pre: InstancePre,
        drivers: Drivers,
        host: HostCalls,
        limits: Limits,
        isolation: Isolation,
        source: str,
    ) -> None:
        self._engine, self._pre, self._drivers, self._host = engine, pre, drivers, host
        self.limits, self.isolation, self._source = limits, isolation, source
        self._idle: list[WasmInstance] = []
        self._closed = False

    def acquire(self) -> WasmInstance:
        """An instance for one job; raises ModuleError when it cannot be built."""
        if self.isolation == "reuse":
            try:
                return self._idle.pop()  # atomic under the GIL
            except IndexError:
                pass
        # A fresh instance runs one job: instantiating the job driver next to it
        # (~40 µs) would cost more than it saves (~2 µs).
        drivers = self._drivers if self.isolation == "reuse" else None
        return WasmInstance(self._engine, self._pre, drivers, self._host, self.limits, self._source)

    def release(self, instance: WasmInstance) -> None:
        if instance.broken or self.isolation == "fresh" or self._closed:
            instance.close()
            return
        self._idle.append(instance)
        if self._closed:  # close() ran meanwhile: it may have missed this one
            self._close_idle()

    def prewarm(self, count: int) -> None:
        if self.isolation != "reuse":
            return
        instances = [self.acquire() for _ in range(count)]
        for instance in instances:
            self.release(instance)

    @property
    def idle(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        """Close idle instances; instances still running close on release."""
        self._closed = True
        self._close_idle()

    def _close_idle(self) -> None:
        while True:
            try:
                instance = self._idle.pop()
            except IndexError:
                return
            instance.close()
