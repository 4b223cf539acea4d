"""The one module that uses wasmtime-py's private C bindings.

wasmtime-py's public ``Func.__call__`` type-checks and converts every argument on
every call (~17 µs); host functions defined through ``Linker.define_func`` go
through a generic trampoline (~3 µs); ``Memory.read``/``write`` re-fetch the
memory on each access. A Reactr job is four guest calls and at least one host
call, so the hot path uses the C API's *unchecked* entry points instead:

* ``RawFunc``: calls an export with a preallocated array of raw values, or
  one that takes none as a bare C call with no Python frame (``bare``).
* ``define_raw_func``: links a host function whose callback reads raw values.
* ``memory_base``: the address of a linear memory that never moves
  (``Config.memory_may_move = False``), so reads and writes are one memmove.
* ``set_epoch_callback``: lets the host decide, on each epoch tick, whether a
  running guest continues or traps (timeouts and cancellation).

``_store.py`` builds stores and instances on the same C API by address.
``tests/test_raw_path.py`` checks that this path and the public API agree.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from ctypes import POINTER, byref, c_size_t, c_uint8, c_uint64, c_void_p
from functools import partial
from typing import Any

from wasmtime import Config, Func, Instance, Linker, Memory, Store, Trap, WasmtimeError
from wasmtime import _ffi as ffi

log = logging.getLogger(__name__)

# The hot entry points get their own handles with plain address arguments:
# ctypes converts ints to c_void_p ~3x faster than it checks typed pointers.
_lib = ctypes.CDLL(ffi.dll._name)
# RawFunc passes ready-made ctypes objects, which skips argtypes conversion.
_call_unchecked = _lib.wasmtime_func_call_unchecked
_call_unchecked.restype = c_void_p
_THREE_SLOTS = c_size_t(3)
_NO_SLOTS = c_size_t(0)
_set_deadline = _lib.wasmtime_context_set_epoch_deadline
_set_deadline.argtypes = [c_void_p, c_uint64]
_set_deadline.restype = None
_define_unchecked = _lib.wasmtime_linker_define_func_unchecked
_define_unchecked.argtypes = [
    c_void_p,
    ctypes.c_char_p,
    c_size_t,
    ctypes.c_char_p,
    c_size_t,
    c_void_p,
    c_void_p,
    c_void_p,
    c_void_p,
]
_define_unchecked.restype = c_void_p
_memory_data = _lib.wasmtime_memory_data
_memory_data.argtypes = [c_void_p, c_void_p]
_memory_data.restype = c_void_p
_memory_data_size = _lib.wasmtime_memory_data_size
_memory_data_size.argtypes = [c_void_p, c_void_p]
_memory_data_size.restype = c_size_t
_epoch_callback = _lib.wasmtime_store_epoch_deadline_callback
_epoch_callback.argtypes = [c_void_p, c_void_p, c_void_p, c_void_p]
_epoch_callback.restype = None

I32_MASK = 0xFFFFFFFF

# A host function takes its i32 arguments as Python ints and returns an int
# (functions with one i32 result) or None; it raises GuestFault to trap.
HostCallback = Callable[..., "int | None"]

# wasmtime's raw value is 16 bytes wide: the i32 of argument i is int32 slot 4*i.
_RAW_STRIDE = ctypes.sizeof(ffi.wasmtime_val_raw) // 4
_RawCallbackType = ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_size_t)


class GuestFault(Exception):
    """Raised inside a host function to trap the calling guest with a message."""


class GuestTrap(Exception):
    """A guest call ended in a trap (or an engine error).

    ``message`` is the one-line reason (e.g. "wasm trap: wasm `unreachable`
    instruction executed"); ``detail`` keeps wasmtime's text with the backtrace.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail.strip()
        lines = [line.strip() for line in self.detail.splitlines() if line.strip()]
        self.message = lines[-1] if "Caused by:" in lines else (lines[0] if lines else "unknown trap")
        super().__init__(self.message)


def failure(error: int | None, trap: int | None) -> GuestTrap:
    """The GuestTrap for a C call that returned ``error`` (a wasmtime_error_t address) or set ``trap``.

    Takes ownership of (frees) whichever it reads.
    """
    if error:
        return GuestTrap(str(WasmtimeError._from_ptr(ctypes.cast(error, POINTER(ffi.wasmtime_error_t)))))
    return GuestTrap(Trap._from_ptr(ctypes.cast(trap or 0, POINTER(ffi.wasm_trap_t))).message)


def config_memory_never_moves(config: Config) -> None:
    """Linear memories keep their address for life (a cached base stays valid)."""
    ffi.wasmtime_config_memory_may_move_set(config.ptr(), False)


def _trap_address(message: str) -> int:
    raw = message.encode("utf-8", "replace")
    trap = ffi.wasmtime_trap_new(ctypes.create_string_buffer(raw), len(raw))
    return ctypes.cast(trap, c_void_p).value or 0


# Callback objects must outlive the linker; the linker lives as long as the
# engine, which is process-wide in practice, so they are kept here.
_KEEP_ALIVE: list[object] = []


def define_raw_func(
    linker: Linker,
    module: str,
    name: str,
    params: int,
    results: int,
    func: HostCallback,
) -> None:
    """Link ``module.name`` (``params`` i32 in, ``results`` (0 or 1) i32 out) to ``func``."""
    from wasmtime import FuncType, ValType

    ty = FuncType([ValType.i32()] * params, [ValType.i32()] * results)
    view_type = ctypes.c_int32 * (max(params, results, 1) * _RAW_STRIDE)
    arg_slots = slice(0, params * _RAW_STRIDE, _RAW_STRIDE)
    has_result = results == 1

    def trampoline(env: int, caller: int, values_at: int, count: int) -> int:
        try:
            view = view_type.from_address(values_at)
            value = func(*view[arg_slots])
            if has_result:
                view[0] = value or 0
            return 0
        except GuestFault as fault:
            return _trap_address(f"{name}: {fault}")
        except BaseException:  # never let a Python error cross into wasm
            log.exception("host function %s failed", name)
            return _trap_address(f"{name}: internal host error")

    callback = _RawCallbackType(trampoline)
    _KEEP_ALIVE.append(callback)
    module_raw, name_raw = module.encode(), name.encode()
    error = _define_unchecked(
        _address(linker.ptr()),
        module_raw,
        len(module_raw),
        name_raw,
        len(name_raw),
        _address(ty.ptr()),
        callback,
        None,
        None,
    )
    if error:
        raise WasmtimeError._from_ptr(ctypes.cast(error, POINTER(ffi.wasmtime_error_t)))


def export(store: Store, instance: Instance, name: str) -> Func | Memory | None:
    """One export by name (``Instance.exports`` wraps every export first)."""
    item = ffi.wasmtime_extern_t()
    raw = name.encode()
    if not ffi.wasmtime_instance_export_get(store._context(), byref(instance._instance), raw, len(raw), byref(item)):
        return None
    kind: int = item.kind  # type: ignore[assignment]  # ctypes hands the field over as an int
    if kind == _EXTERN_FUNC:
        return Func._from_raw(item.of.func)
    if kind == _EXTERN_MEMORY:
        return Memory._from_raw(item.of.memory)
    return None


_EXTERN_FUNC = ffi.WASMTIME_EXTERN_FUNC.value
_EXTERN_MEMORY = ffi.WASMTIME_EXTERN_MEMORY.value


class RawFunc:
    """An exported function called through the unchecked C entry point.

    Arguments and results share one preallocated array; all ABI values are i32.
    """

    __slots__ = ("_context", "_func", "_owner", "_trap", "_trap_at", "_values", "_values_at")

    def __init__(self, store: Store, func: Func, params: int, results: int) -> None:
        if params > 3 or results > 1:
            raise ValueError("RawFunc supports up to three i32 parameters and one i32 result")
        self._bind(_address(store._context()), ctypes.addressof(func._func), (store, func))

    @classmethod
    def at(cls, context: int, func: int, owner: object, sibling: RawFunc | None = None) -> RawFunc:
        """The function whose ``wasmtime_func_t`` is at address ``func``; ``owner`` keeps that memory alive.

        With ``sibling`` (a function of the same instance), both share one
        argument array and trap slot: cheaper to make, and safe because an
        instance's exports are never called from inside each other.
        """
        raw = cls.__new__(cls)
        if sibling is None:
            raw._bind(context, func, owner)
        else:
            raw._owner, raw._context, raw._func = owner, sibling._context, c_void_p(func)
            raw._values, raw._values_at = sibling._values, sibling._values_at
            raw._trap, raw._trap_at = sibling._trap, sibling._trap_at
        return raw

    def _bind(self, context: int, func: int, owner: object) -> None:
        self._owner = owner  # keeps what the addresses below point into alive
        self._context = c_void_p(context)
        self._func = c_void_p(func)
        self._values = (ctypes.c_int32 * (3 * _RAW_STRIDE))()
        self._values_at = c_void_p(ctypes.addressof(self._values))
        self._trap = c_void_p()
        self._trap_at = c_void_p(ctypes.addressof(self._trap))

    def __call__(self, a: int = 0, b: int = 0, c: int = 0) -> int:
        # Reactr's exports take at most three i32s; writing all three slots is
        # cheaper than working out how many were given.
        values = self._values
        values[0] = a
        values[_RAW_STRIDE] = b
        values[2 * _RAW_STRIDE] = c
        error = _call_unchecked(self._context, self._func, self._values_at, _THREE_SLOTS, self._trap_at)
        if error or self._trap.value:
            self._raise(error)
        return values[0]

    def _raise(self, error: int | None) -> None:
        raise self.failure(error)

    def bare(self) -> tuple[Callable[[], int | None], c_void_p]:
        """This function, which takes and returns no values, as a call with no Python frame of its own.

        Returns the call, which answers wasmtime's error (None or 0: no
        error), and the slot a trap lands in. When either is set, ``failure``
        makes the GuestTrap and empties the slot.
        """
        call = partial(_call_unchecked, self._context, self._func, self._values_at, _NO_SLOTS, self._trap_at)
        return call, self._trap

    def failure(self, error: int | None) -> GuestTrap:
        """The GuestTrap of a call that answered ``error`` or left a trap in the slot (now emptied)."""
        trap, self._trap.value = self._trap.value, None
        return failure(error, trap)


def _address(pointer: Any) -> int:
    return ctypes.cast(pointer, c_void_p).value or 0


class RawMemory:
    """Bounds-checked access to a linear memory that never moves.

    A memoryview over the memory is ~4x faster than ``ctypes.string_at`` and
    ``memmove``. It covers the current size and is rebuilt when the guest has
    grown its memory (memories never shrink, and never move with
    ``config_memory_never_moves``). Do not use it after the store is closed.
    """

    __slots__ = ("_base", "_context", "_memory", "_owner", "_view", "size")

    def __init__(self, store: Store, memory: Memory) -> None:
        self._bind(_address(store._context()), ctypes.addressof(memory._memory), (store, memory))

    @classmethod
    def at(cls, context: int, memory: int, owner: object) -> RawMemory:
        """The memory whose ``wasmtime_memory_t`` is at address ``memory``; ``owner`` keeps it alive."""
        raw = cls.__new__(cls)
        raw._bind(context, memory, owner)
        return raw

    def _bind(self, context: int, memory: int, owner: object) -> None:
        self._owner = owner
        self._context, self._memory = context, memory
        self._base = _memory_data(context, memory) or 0
        self._refresh()

    def _refresh(self) -> None:
        self.size = _memory_data_size(self._context, self._memory)
        self._view = memoryview((ctypes.c_ubyte * self.size).from_address(self._base)).cast("B")

    def _grown_to_fit(self, ptr: int, length: int) -> None:
        self._refresh()
        if ptr + length > self.size:
            raise GuestFault(f"pointer {ptr} + length {length} is outside guest memory ({self.size} bytes)")

    def read(self, ptr: int, length: int) -> bytes:
        """Bytes ``[ptr, ptr+length)``; raises GuestFault when out of bounds."""
        ptr &= I32_MASK  # wasm i32s arrive signed
        end = ptr + (length & I32_MASK)
        if end > self.size:
            self._grown_to_fit(ptr, length & I32_MASK)
        return self._view[ptr:end].tobytes()

    def window(self, start: int, end: int) -> memoryview:
        """A view of bytes ``[start, end)``, within the current size, good while the store lives."""
        if not 0 <= start <= end <= self.size:
            raise ValueError(f"window [{start}, {end}) is outside the memory ({self.size} bytes)")
        return self._view[start:end]

    def write(self, ptr: int, data: bytes) -> None:
        """Copy ``data`` to ``ptr``; raises GuestFault when out of bounds."""
        ptr &= I32_MASK
        end = ptr + len(data)
        if end > self.size:
            self._grown_to_fit(ptr, len(data))
        self._view[ptr:end] = data


# Epoch deadline callbacks: one C callback for all stores; ``data`` is a key
# into this table of Python deciders. A decider returns None to let the guest
# run one more tick, or a message to trap it; a decider that stops a guest
# records why itself (the message is only for people reading a log).
EpochDecider = Callable[[], "str | None"]
_DECIDERS: dict[int, EpochDecider] = {}
_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE


def _on_epoch_deadline(context: int, data: int, delta: Any, kind: Any) -> int:
    decider = _DECIDERS.get(data or 0)
    message = decider() if decider is not None else "instance closed"
    if message is None:
        delta[0] = 1
        kind[0] = _CONTINUE
        return 0
    error = ffi.wasmtime_error_new(ctypes.create_string_buffer(message.encode()))
    return ctypes.cast(error, c_void_p).value or 0


_EPOCH_CALLBACK = ctypes.CFUNCTYPE(
    c_size_t, POINTER(ffi.wasmtime_context_t), c_void_p, POINTER(c_uint64), POINTER(c_uint8)
)(_on_epoch_deadline)
_EPOCH_CALLBACK_AT = _address(_EPOCH_CALLBACK)


def set_epoch_callback(store: int, key: int, decider: EpochDecider) -> None:
    """Route the epoch deadlines of the store at address ``store`` to ``decider`` (until ``clear_epoch_callback``)."""
    _DECIDERS[key] = decider
    _epoch_callback(store, _EPOCH_CALLBACK_AT, key, None)


def set_epoch_deadline(context: int, ticks: int) -> None:
    """Set the deadline of the store whose context is at ``context`` to ``ticks`` beyond the current epoch."""
    _set_deadline(context, ticks)


def clear_epoch_callback(key: int) -> None:
    _DECIDERS.pop(key, None)


class EpochDeadline:
    """Sets one store's epoch deadline (``ticks`` beyond the engine's current epoch)."""

    __slots__ = ("_context", "_owner")

    def __init__(self, store: Store) -> None:
        self._owner = store
        self._context = _address(store._context())

    def __call__(self, ticks: int) -> None:
        _set_deadline(self._context, ticks)
