"""One Wasm instance in its own store, and the per-job ABI call sequence."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from wasmtime import Engine, Func, Instance, InstancePre, Memory, Store, WasiConfig

from ..errors import ModuleError
from . import _raw
from .context import JobContext
from .driver import ALLOCATING, DEALLOCATING, INPUT_OFFSET, STAGE_CAPACITY, Drivers
from .hostcalls import HostCalls

_keys = itertools.count(1)
_EXIT_OK = "exit status 0"  # WASI proc_exit(0) during _start is a normal end
OVER_BUDGET = "inline budget exceeded"
_ALLOCATE_FAILED = "failed to instance.writeMemory: failed to Call allocate: "  # Reactr's text


@dataclass(frozen=True)
class Limits:
    """Per-runnable hard limits."""

    timeout_seconds: float = 10.0
    memory_bytes: int = 256 * 1024 * 1024
    max_result_bytes: int = 16 * 1024 * 1024


class SetupError(Exception):
    """The input could not be handed to the guest (allocate failed)."""


class WasmInstance:
    """An instantiated runnable; runs one job at a time; ``close()`` frees it.

    The store's epoch callback consults the running job on every tick, so a
    timeout or a cancel stops the guest within one tick.
    """

    def __init__(
        self,
        engine: Engine,
        pre: InstancePre,
        drivers: Drivers | None,
        host: HostCalls,
        limits: Limits,
        source: str,
    ) -> None:
        self._host = host
        self.broken = False  # set when a job trapped: the pool must close it
        self._key = next(_keys)
        self._job: JobContext | None = None
        self._deadline = time.monotonic() + limits.timeout_seconds
        self.store = Store(engine)
        self.store.set_limits(memory_size=limits.memory_bytes)
        self.store.set_wasi(WasiConfig())
        _raw.set_epoch_callback(self.store, self._key, self._on_tick)
        _raw.EpochDeadline(self.store)(1)
        try:
            self._start(pre, drivers, source)
        except BaseException:
            self.close()
            raise

    def _start(self, pre: InstancePre, drivers: Drivers | None, source: str) -> None:
        try:
            instance = pre.instantiate(self.store)
        except Exception as error:  # WasmtimeError, Trap, or a link error
            raise ModuleError(f"{source}: cannot instantiate: {_first_line(error)}") from None
        store = self.store

        exports = {name: _raw.export(store, instance, name) for name in ("memory", "allocate", "run_e", "deallocate")}
        memory, allocate, run_e, deallocate = exports.values()
        assert isinstance(memory, Memory) and isinstance(allocate, Func) and isinstance(run_e, Func)

        def func(name: str, params: int, results: int) -> _raw.RawFunc | None:
            found = exports.get(name) or _raw.export(store, instance, name)
            return _raw.RawFunc(store, found, params, results) if isinstance(found, Func) else None

        self.memory = _raw.RawMemory(store, memory)
        self._allocate, self._run_e = _raw.RawFunc(store, allocate, 1, 1), _raw.RawFunc(store, run_e, 3, 0)
        self._deallocate = func("deallocate", 2, 0)
        # Reactr's Wasmtime build calls _start; Wasmer builds also called init
        # (Rust derive-macro and pre-v0.12 modules need it), so call both.
        for entry in ("_start", "init"):
            call = func(entry, 0, 0)
            if call is None:
                continue
            try:
                call()
            except _raw.GuestTrap as trap:
                if _EXIT_OK not in trap.message:
                    raise ModuleError(f"{source}: trap in {entry}: {_first_line(trap)}") from None
        self._stage_capacity = STAGE_CAPACITY if drivers is not None else -1
        if drivers is None:
            return  # an instance for one job only: the driver would cost more than it saves
        if isinstance(deallocate, Func):
            imports: list[Func | Memory] = [memory, allocate, run_e, deallocate]
            driver = Instance(store, drivers.with_deallocate, imports)
        else:
            driver = Instance(store, drivers.without_deallocate, [memory, allocate, run_e])
        self._stage = _raw.RawMemory(store, _raw.export(store, driver, "stage"))  # type: ignore[arg-type]
        self._drive = _raw.RawFunc(store, _raw.export(store, driver, "job"), 2, 0)  # type: ignore[arg-type]

    def _on_tick(self) -> str | None:
        job = self._job
        if job is not None:
            control = job.control
            if control.is_cancelled():
                return "job cancelled"
            now = time.monotonic()
            if now >= control.deadline:
                return "job timeout"
            if now >= control.budget:
                return OVER_BUDGET
        elif time.monotonic() >= self._deadline:
            return "instance start timeout"
        return None

    def run(self, job: JobContext, data: bytes) -> _raw.GuestTrap | None:
        """Run one job through allocate → write → run_e → deallocate.

        Returns the trap that ended the job, if any; raises SetupError when the
        input could not be handed over. Either way ``broken`` is then set.
        """
        current = self._host.current
        # Saved and restored, not cleared: a run_job host call runs a nested
        # job on this same thread while the caller's guest is suspended.
        outer_job, outer_memory = current.job, current.memory
        current.job, current.memory = job, self.memory
        self._job = job
        try:
            if len(data) > self._stage_capacity:
                return self._run_stepwise(job, data)
            # The common case, written out here rather than in a method of its own:
            # the whole sequence in one call through the driver (see driver.py).
            self._stage.write(INPUT_OFFSET, data)
            try:
                self._drive(len(data), job.ident)
                return None
            except _raw.GuestTrap as trap:
                return self._staged_trap(trap)
        finally:
            current.job, current.memory = outer_job, outer_memory
            self._job = None

    def _staged_trap(self, trap: _raw.GuestTrap) -> _raw.GuestTrap | None:
        """What a trap during the driver's call means, by the step it reached."""
        self.broken = True
        step = int.from_bytes(self._stage.read(0, 4), "little")
        if step == ALLOCATING and not trap.interrupted:
            raise SetupError(_ALLOCATE_FAILED + str(trap)) from None
        if step == DEALLOCATING and not trap.interrupted:
            return None  # like Reactr, a failing deallocate does not fail the job
        return trap

    def _run_stepwise(self, job: JobContext, data: bytes) -> _raw.GuestTrap | None:
        """The sequence as separate calls, for inputs larger than the driver's stage."""
        length = len(data)
        try:
            ptr = self._allocate(length)
            self.memory.write(ptr, data)
        except (_raw.GuestTrap, _raw.GuestFault) as error:
            self.broken = True
            raise SetupError(_ALLOCATE_FAILED + str(error)) from None
        try:
            self._run_e(ptr, length, job.ident)
        except _raw.GuestTrap as trap:
            self.broken = True
            return trap
        if self._deallocate is not None:
            try:
                self._deallocate(ptr, length)
            except _raw.GuestTrap:
                self.broken = True  # like Reactr, a failing deallocate does not fail the job
        return None

    def close(self) -> None:
        _raw.clear_epoch_callback(self._key)
        self.store.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
