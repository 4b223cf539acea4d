"""One Wasm instance in its own store, and the per-job ABI call sequence."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from wasmtime import Engine, InstancePre, Linker, Module

from reactr_wasm.errors import ModuleError
from reactr_wasm.limits import Limits
from reactr_wasm.wasm import _raw, _store
from reactr_wasm.wasm.context import JobContext, RunControl, Stop
from reactr_wasm.wasm.driver import (
    ALLOCATING,
    DEALLOCATING,
    IDENT,
    INPUT_CAPACITY,
    INPUT_LENGTH,
    INPUT_OFFSET,
    INPUT_POINTER,
    OUTPUT_CAPACITY,
    OUTPUT_OFFSET,
    RESULT_LENGTH,
    RESULT_LIMIT,
    RESULT_STATE,
    STAGED,
    STEP,
    Drivers,
)
from reactr_wasm.wasm.hostcalls import HostCalls
from reactr_wasm.wasm.module import WASI_MODULES, ModuleInfo

_keys = itertools.count(1)
_EXIT_OK = "exit status 0"  # WASI proc_exit(0) during _start is a normal end
_ALLOCATE_FAILED = "failed to instance.writeMemory: failed to Call allocate: "  # Reactr's text
_RETURN_RESULT = (b"env", b"return_result")  # the import the result recorder supplies
# The ABI exports an instance looks up, in this order: the job driver imports
# memory, allocate, run_e (and deallocate) straight from the front of the lookup.
ABI_EXPORTS = ("memory", "allocate", "run_e", "deallocate", "_start", "init")


class SetupError(Exception):
    """The input could not be handed to the guest (allocate failed)."""


class Interrupted(Exception):
    """The host stopped the guest, for ``reason``: never a fault of the guest's own."""

    def __init__(self, reason: Stop) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class Blueprint:
    """What every instance of one runnable is built from."""

    engine: Engine
    pre: InstancePre
    host: HostCalls
    limits: Limits
    source: str
    exports: tuple[bytes, ...]  # the ABI_EXPORTS the module has, in that order
    wasi: bool  # the module imports WASI: its stores need a WASI context
    drivers: Drivers | None  # run jobs through the job driver; None: three calls per job
    engine_at: int  # the C addresses of engine and pre, worked out once (~1 µs each)
    pre_at: int
    module: Module  # with the linker: for instantiating next to the result recorder
    linker_at: int
    imports: tuple[tuple[bytes, bytes], ...]  # (module, name) of each import, in order

    @classmethod
    def of(
        cls,
        engine: Engine,
        pre: InstancePre,
        info: ModuleInfo,
        host: HostCalls,
        limits: Limits,
        source: str,
        drivers: Drivers | None,
        module: Module,
        linker: Linker,
    ) -> Blueprint:
        exports = tuple(name.encode() for name in ABI_EXPORTS if name in info.exports)
        wasi = any(label.split(".", 1)[0] in WASI_MODULES for label in info.imports)
        imports = tuple(_split(label) for label in info.imports)
        addresses = _store.address(engine), _store.address(pre)
        linker_at = _store.address(linker)
        return cls(engine, pre, host, limits, source, exports, wasi, drivers, *addresses, module, linker_at, imports)


def _split(label: str) -> tuple[bytes, bytes]:
    module, _, name = label.partition(".")
    return module.encode(), name.encode()


class WasmInstance:
    """An instantiated runnable; runs one job at a time; ``close()`` frees it.

    On every epoch tick while its guest runs, the store asks the control in
    force whether to go on: the job's while a job runs, and also while an
    instance built for a job starts (instantiate, ``_start``, ``init``);
    otherwise (load, prewarm) the start deadline. A stop is recorded in
    ``stopped`` before the guest traps, and the failing call then raises
    Interrupted with that reason, whatever the trap says.
    """

    def __init__(self, plan: Blueprint, control: RunControl | None = None) -> None:
        self._current = plan.host.current  # the calling thread's running job, for host functions
        self.broken = False  # set when a job trapped or was stopped: the pool must close it
        self.stopped: Stop | None = None
        self._key = next(_keys)
        self._control = control
        self._start_deadline = time.monotonic() + plan.limits.timeout
        self._store = _store.RawStore(plan.engine_at, plan.limits.memory, plan.wasi)
        try:
            self._store.route_epoch(self._key, self._on_tick)
            self._start(plan)
        except BaseException:
            self.close()
            raise
        finally:
            self._control = None

    def _start(self, plan: Blueprint) -> None:
        store, names, drivers = self._store, plan.exports, plan.drivers
        recorder: _store.Exports | None = None
        try:
            if drivers is not None and _RETURN_RESULT in plan.imports:
                recorder = self._recorder(plan, drivers)
                instance = store.instantiate_with(plan.module, self._guest_imports(plan, recorder))
            else:
                instance = store.instantiate(plan.pre_at)
        except _raw.GuestTrap as trap:
            raise self._start_failed(plan, f"cannot instantiate: {trap.message}") from None
        exports = _store.Exports(store, instance, names)
        self.memory = exports.memory(b"memory")
        self._allocate, self._run_e = exports.func(b"allocate"), exports.func(b"run_e")
        self._deallocate = exports.func(b"deallocate") if b"deallocate" in names else None
        # Reactr's Wasmtime build calls _start; Wasmer builds also called init
        # (Rust derive-macro and pre-v0.12 modules need it), so call both.
        for entry in (b"_start", b"init"):
            if entry in names:
                try:
                    exports.func(entry)()
                except _raw.GuestTrap as trap:
                    if self.stopped is not None or _EXIT_OK not in trap.message:
                        raise self._start_failed(plan, f"trap in {entry.decode()}: {trap.message}") from None
        if drivers is None:
            self._input_capacity = -1  # every job takes the three calls
            self._header = None  # and no driver calls
            return
        self._input_capacity = INPUT_CAPACITY
        guest = (b"memory", b"allocate", b"run_e", b"deallocate")[: 3 if self._deallocate is None else 4]
        imports = _store.Imports(len(guest) + 1)
        for index, name in enumerate(guest):
            imports.set_export(index, exports, name)
        imports.set_linked(len(guest), store, plan.linker_at, *_RETURN_RESULT)  # record's fallback
        module = drivers.with_deallocate if self._deallocate is not None else drivers.without_deallocate
        names = (b"stage", b"job", b"allocate", b"run", b"record")
        driver = _store.Exports(store, store.instantiate_with(module, imports), names)
        stage = driver.memory(b"stage")  # its windows stay valid while the store lives
        self._header = stage.window(0, INPUT_OFFSET).cast("i")
        self._header[RESULT_LIMIT] = min(plan.limits.result_size, OUTPUT_CAPACITY)
        self._input = stage.window(INPUT_OFFSET, INPUT_OFFSET + INPUT_CAPACITY)
        self._output = stage.window(OUTPUT_OFFSET, OUTPUT_OFFSET + OUTPUT_CAPACITY)
        # The driver's calls take no arguments (they read the stage): bare C calls, one trap slot.
        self._driver_func = driver.func(b"job")
        self._drive, self._drive_trap = self._driver_func.bare()
        self._allocate_staged = driver.func(b"allocate").bare()[0]
        self._run_staged = driver.func(b"run").bare()[0]
        if recorder is not None:
            store.point_table(recorder, b"target", driver, b"record")  # results now go to the stage

    def _recorder(self, plan: Blueprint, drivers: Drivers) -> _store.Exports:
        """The result recorder of this store; its ``return_result`` calls the host's until the driver exists."""
        imports = _store.Imports(1)
        imports.set_linked(0, self._store, plan.linker_at, *_RETURN_RESULT)
        instance = self._store.instantiate_with(drivers.recorder, imports)
        return _store.Exports(self._store, instance, (b"target", b"return_result"))

    def _guest_imports(self, plan: Blueprint, recorder: _store.Exports) -> _store.Imports:
        """The guest's imports: the recorder's ``return_result``, everything else from the linker."""
        imports = _store.Imports(len(plan.imports))
        for index, (module, name) in enumerate(plan.imports):
            if (module, name) == _RETURN_RESULT:
                imports.set_export(index, recorder, b"return_result")
            else:
                imports.set_linked(index, self._store, plan.linker_at, module, name)
        return imports

    def _start_failed(self, plan: Blueprint, reason: str) -> Exception:
        """Why starting failed: the job's stop (Interrupted), too slow a start, or the module."""
        if self.stopped is Stop.START_TIMEOUT:
            took = plan.limits.timeout
            return ModuleError(f"{plan.source}: did not start within {took} s (the runnable's timeout)")
        if self.stopped is not None:
            return Interrupted(self.stopped)
        return ModuleError(f"{plan.source}: {reason}")

    def _on_tick(self) -> str | None:
        control = self._control
        if control is not None:
            reason = control.stop_reason()
        elif time.monotonic() >= self._start_deadline:
            reason = Stop.START_TIMEOUT
        else:
            return None
        if reason is None:
            return None
        self.stopped = reason  # before the trap: whoever sees the trap sees the reason
        return reason.value

    def _raise_if_stopped(self) -> None:
        if self.stopped is not None:
            self.broken = True
            raise Interrupted(self.stopped) from None

    def run(self, job: JobContext, data: bytes) -> _raw.GuestTrap | None:
        """Run one job through allocate → write → run_e → deallocate; its result ends in ``job``.

        Returns the trap of a guest fault, if any. Raises Interrupted when the
        host stopped the guest (at any step), SetupError when the input could
        not be handed over. After any of these ``broken`` is set.
        """
        current = self._current
        # Cleared after: a run_job host call, which runs a nested job on this same thread
        # while the caller's guest is suspended, puts the caller's job back itself.
        current.job = job
        job.memory, job.staged = self.memory, self._header
        self._control = job.control
        try:
            length = len(data)
            if length > self._input_capacity:
                return self._run_in_place(job, data)
            # The common case, written out here rather than in a method of its own:
            # the whole sequence in one call through the driver (see driver.py).
            header = self._header
            self._input[:length] = data
            header[INPUT_LENGTH] = length  # type: ignore[index]
            header[IDENT] = job.ident  # type: ignore[index]
            error = self._drive()
            if error or self._drive_trap.value:
                return self._staged_trap(self._driver_func.failure(error), job)
            if header[RESULT_STATE] == STAGED:  # type: ignore[index]
                job.output = self._output[: header[RESULT_LENGTH]].tobytes()  # type: ignore[index]
            return None
        finally:
            current.job = None
            self._control = None

    def _collect(self, job: JobContext) -> None:
        """Take a result the driver recorded in the stage."""
        header = self._header
        if header is not None and header[RESULT_STATE] == STAGED:
            job.output = self._output[: header[RESULT_LENGTH]].tobytes()

    def _staged_trap(self, trap: _raw.GuestTrap, job: JobContext) -> _raw.GuestTrap | None:
        """What a trap during a driver call means, by the step it reached."""
        self.broken = True
        self._raise_if_stopped()
        step = self._header[STEP]  # type: ignore[index]
        if step == ALLOCATING:
            raise SetupError(_ALLOCATE_FAILED + str(trap)) from None
        if step == DEALLOCATING:
            self._collect(job)
            return None  # like Reactr, a failing deallocate does not fail the job
        return trap

    def _run_in_place(self, job: JobContext, data: bytes) -> _raw.GuestTrap | None:
        """The input written straight into guest memory: large inputs, and instances without a driver
        (fresh ones), which also make the rest of the sequence separate calls."""
        length = len(data)
        header = self._header
        if header is not None:  # the driver's allocate and run
            header[INPUT_LENGTH] = length
            header[IDENT] = job.ident
            error = self._allocate_staged()
            if error or self._drive_trap.value:
                return self._staged_trap(self._driver_func.failure(error), job)  # raises: a stop, or SetupError
            try:
                self.memory.write(header[INPUT_POINTER], data)
            except _raw.GuestFault as fault:
                self.broken = True
                raise SetupError(_ALLOCATE_FAILED + str(fault)) from None
            error = self._run_staged()
            if error or self._drive_trap.value:
                return self._staged_trap(self._driver_func.failure(error), job)
            self._collect(job)
            return None
        try:
            ptr = self._allocate(length)
            self.memory.write(ptr, data)
        except (_raw.GuestTrap, _raw.GuestFault) as error:
            self.broken = True
            self._raise_if_stopped()
            raise SetupError(_ALLOCATE_FAILED + str(error)) from None
        try:
            self._run_e(ptr, length, job.ident)
        except _raw.GuestTrap as trap:
            self.broken = True
            self._raise_if_stopped()
            return trap
        if self._deallocate is not None:
            try:
                self._deallocate(ptr, length)
            except _raw.GuestTrap:
                self.broken = True
                self._raise_if_stopped()  # a stop is a stop, at any step (as with the driver)
        return None  # like Reactr, a failing deallocate does not fail the job

    def close(self) -> None:
        _raw.clear_epoch_callback(self._key)
        self._store.close()
