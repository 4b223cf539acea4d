"""Instance pools: reuse warm instances or build a fresh one per job."""

from __future__ import annotations

from typing import Literal

from reactr_wasm.errors import QueueFull
from reactr_wasm.limits import Limits
from reactr_wasm.wasm import _raw
from reactr_wasm.wasm.context import JobContext, RunControl
from reactr_wasm.wasm.instance import Blueprint, WasmInstance

Isolation = Literal["reuse", "fresh"]
# Where the error for a full fresh-instance pool sends the reader.
FRESH_SETTING = "[limits] fresh_instances in the config, FreshPool(instances=...) when embedding"


class FreshSlots:
    """The engine-wide count of fresh instances that may exist at once.

    Fresh instances come from wasmtime's pooling allocator, whose slots are
    reserved when the engine starts. Taking a slot here first gives a clear
    error when they are all in use, rather than wasmtime's. Thread-safe:
    list ``pop``/``append`` are atomic under the GIL.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self._free = [None] * count

    def take(self, source: str) -> None:
        """Take one slot; raises QueueFull naming the setting when none is free."""
        try:
            self._free.pop()
        except IndexError:
            raise QueueFull(f"{source}: all {self.count} fresh instances are in use; raise {FRESH_SETTING}") from None

    def give_back(self) -> None:
        self._free.append(None)

    @property
    def free(self) -> int:
        return len(self._free)


class InstancePool:
    """Hands out instances of one runnable to worker threads.

    ``reuse`` keeps idle instances warm (guest state persists between jobs, as
    in Reactr); ``fresh`` builds one per job (taking a slot of ``slots``) and
    closes it afterwards. Either way, an instance whose job trapped or was
    stopped is closed, never handed out again.
    """

    def __init__(self, plan: Blueprint, isolation: Isolation, slots: FreshSlots | None = None) -> None:
        if isolation == "fresh" and slots is None:
            raise ValueError("a fresh-isolation pool needs the engine's fresh slots")
        self._plan, self.isolation, self._slots = plan, isolation, slots
        self._reuse = slots is None
        self._idle: list[WasmInstance] = []
        self._closed = False
        # For metrics, counted off the per-job path of a reuse pool: busy = made - closed - idle
        self.made = self.closed = 0
        self.recycled: dict[str, int] = {}  # instances closed because their job trapped or was stopped, by why

    @property
    def limits(self) -> Limits:
        return self._plan.limits

    def acquire(self, control: RunControl | None = None) -> WasmInstance:
        """An instance for one job, started under the job's ``control`` if it must be built.

        Raises ModuleError when it cannot be built, Interrupted when ``control``
        stopped its start, QueueFull when every fresh slot is in use.
        """
        if self._slots is None:
            try:
                return self._idle.pop()  # atomic under the GIL
            except IndexError:
                instance = WasmInstance(self._plan, control)
                self.made += 1
                return instance
        self._slots.take(self._plan.source)
        try:
            instance = WasmInstance(self._plan, control)
        except BaseException:
            self._slots.give_back()
            raise
        self.made += 1
        return instance

    def run(self, job: JobContext, data: bytes) -> _raw.GuestTrap | None:
        """Run one job on an instance of this pool (``WasmInstance.run``); an instance it raised in is closed.

        Raises as ``acquire`` and ``WasmInstance.run`` do. The warm case of a
        reuse pool, written out: one call per job instead of three.
        """
        idle = self._idle
        if self._reuse and idle:
            try:
                instance = idle.pop()  # atomic under the GIL; another thread may have taken the last one
            except IndexError:
                instance = self.acquire(job.control)
        else:
            instance = self.acquire(job.control)  # a fresh instance starts under the job's control
        try:
            trap = instance.run(job, data)
        except BaseException:
            instance.broken = True  # whatever happened, its state is unknown
            self.release(instance)
            raise
        if instance.broken or not self._reuse or self._closed:
            self.release(instance)
        else:
            idle.append(instance)
            if self._closed:  # close() ran meanwhile: it may have missed this one
                self._close_idle()
        return trap

    def release(self, instance: WasmInstance) -> None:
        if instance.broken:
            reason = "trap" if instance.stopped is None else instance.stopped.name.lower()
            self.recycled[reason] = self.recycled.get(reason, 0) + 1
        if self._slots is not None:
            self._close(instance)
            self._slots.give_back()
            return
        if instance.broken or self._closed:
            self._close(instance)
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

    @property
    def busy(self) -> int:
        """Instances running a job now (approximate: read without a lock)."""
        return max(0, self.made - self.closed - len(self._idle))

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
            self._close(instance)

    def _close(self, instance: WasmInstance) -> None:
        instance.close()
        self.closed += 1
