"""Stores and instances on wasmtime's C API, by address (the companion of ``_raw.py``).

With ``isolation = "fresh"`` every job makes and drops a store. wasmtime-py's
``Store``, ``InstancePre.instantiate`` and ``Instance.exports`` wrap each step
in Python objects and type checks: measured here, ~20 µs of a ~60 µs fresh
job. ``RawStore`` makes the same C calls with plain addresses (ctypes converts
an int to ``c_void_p`` far faster than it checks a typed pointer), and
``Exports`` looks the exports a runnable needs up into one array that
``RawFunc`` and ``RawMemory`` then point into.

``use_pooling`` puts an engine on wasmtime's pooling allocator: instances,
memories and tables come from slots reserved once, and a memory's initial
image is mapped copy-on-write, so making and dropping an instance costs a
few µs instead of mmap/munmap of a fresh reservation each time.
"""

from __future__ import annotations

import ctypes
from ctypes import c_bool, c_char_p, c_int64, c_size_t, c_void_p
from typing import Any

from wasmtime import Config, Engine, InstancePre, Linker, Module
from wasmtime import _ffi as ffi

from reactr_wasm.wasm import _raw

_lib = ctypes.CDLL(ffi.dll._name)


def _handle(name: str, restype: object, *argtypes: object) -> Any:
    function = getattr(_lib, name)
    function.argtypes = list(argtypes)
    function.restype = restype
    return function


_store_new = _handle("wasmtime_store_new", c_void_p, c_void_p, c_void_p, c_void_p)
_store_context = _handle("wasmtime_store_context", c_void_p, c_void_p)
_store_delete = _handle("wasmtime_store_delete", None, c_void_p)
_store_limiter = _handle("wasmtime_store_limiter", None, c_void_p, c_int64, c_int64, c_int64, c_int64, c_int64)
_wasi_config_new = _handle("wasi_config_new", c_void_p)
_set_wasi = _handle("wasmtime_context_set_wasi", c_void_p, c_void_p, c_void_p)
_instantiate_pre = _handle("wasmtime_instance_pre_instantiate", c_void_p, c_void_p, c_void_p, c_void_p, c_void_p)
_instance_new = _handle("wasmtime_instance_new", c_void_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p, c_void_p)
_export_get = _handle("wasmtime_instance_export_get", c_bool, c_void_p, c_void_p, c_char_p, c_size_t, c_void_p)
_linker_get = _handle(
    "wasmtime_linker_get", c_bool, c_void_p, c_void_p, c_char_p, c_size_t, c_char_p, c_size_t, c_void_p
)
_table_set = _handle("wasmtime_table_set", c_void_p, c_void_p, c_void_p, ctypes.c_uint64, c_void_p)

_EXTERN = ffi.wasmtime_extern_t
_EXTERN_SIZE = ctypes.sizeof(_EXTERN)
_OF: int = _EXTERN.of.offset  # where the func/memory handle sits inside one extern
_NO_LIMIT = -1


def address(owner: Engine | InstancePre | Module | Linker) -> int:
    """The C address of a wasmtime-py object, to pass to the calls here (it must outlive them)."""
    return _address(owner.ptr())


def _address(pointer: object) -> int:
    return ctypes.cast(pointer, c_void_p).value or 0  # type: ignore[arg-type]


class RawStore:
    """One store: its instances, memory limit, WASI context and epoch callback; ``close()`` frees it all."""

    __slots__ = ("_store", "_trap", "_trap_at", "context")

    def __init__(self, engine: int, memory_bytes: int, wasi: bool) -> None:
        """A store of the engine at address ``engine`` (see ``address``)."""
        self._store = _store_new(engine, None, None)
        self.context: int = _store_context(self._store)
        _store_limiter(self._store, memory_bytes, _NO_LIMIT, _NO_LIMIT, _NO_LIMIT, _NO_LIMIT)
        if wasi:  # only modules that import WASI need its context (~1 µs to make)
            error = _set_wasi(self.context, _wasi_config_new())
            if error:
                raise _raw.failure(error, None)
        self._trap = c_void_p()
        self._trap_at = ctypes.addressof(self._trap)

    def route_epoch(self, key: int, decider: _raw.EpochDecider) -> None:
        """Consult ``decider`` on every epoch tick while this store runs guest code."""
        _raw.set_epoch_callback(self._store, key, decider)
        _raw.set_epoch_deadline(self.context, 1)

    def instantiate(self, pre: int) -> ffi.wasmtime_instance_t:
        """Instantiate the pre-linked module at address ``pre``; raises GuestTrap on a trap or a wasmtime error."""
        instance = ffi.wasmtime_instance_t()
        error = _instantiate_pre(pre, self.context, ctypes.addressof(instance), self._trap_at)
        self._check(error)
        return instance

    def instantiate_with(self, module: Module, imports: Imports) -> ffi.wasmtime_instance_t:
        """Instantiate ``module`` with ``imports``, in its import order; raises GuestTrap like ``instantiate``."""
        instance = ffi.wasmtime_instance_t()
        at = ctypes.addressof(instance)
        error = _instance_new(self.context, _address(module.ptr()), imports.base, imports.count, at, self._trap_at)
        self._check(error)
        return instance

    def point_table(self, table: Exports, name: bytes, func: Exports, func_name: bytes) -> None:
        """Set slot 0 of the table export ``name`` to the function export ``func_name`` (of this store)."""
        value = ffi.wasmtime_val_t()
        value.kind = ffi.WASMTIME_FUNCREF.value  # type: ignore[assignment]  # ctypes takes the int
        ctypes.memmove(ctypes.addressof(value.of), func.handle(func_name), ctypes.sizeof(ffi.wasmtime_func_t))
        error = _table_set(self.context, table.handle(name), 0, ctypes.addressof(value))
        self._check(error)

    def _check(self, error: int | None) -> None:
        if error or self._trap.value:
            trap, self._trap.value = self._trap.value, None
            raise _raw.failure(error, trap)

    def close(self) -> None:
        if self._store:
            _store_delete(self._store)
            self._store = None


class Exports:
    """The exports of one instance named in ``names``, looked up once into one array.

    The caller has checked the module exports each name with the right kind
    (``module.check_abi``); a name it lacks raises KeyError here.
    """

    __slots__ = ("_first", "_items", "_names", "base", "context")

    def __init__(self, store: RawStore, instance: ffi.wasmtime_instance_t, names: tuple[bytes, ...]) -> None:
        self._names = names
        self._first: _raw.RawFunc | None = None
        self._items = (_EXTERN * len(names))()
        self.base: int = ctypes.addressof(self._items)
        self.context: int = store.context
        at = ctypes.addressof(instance)
        for index, name in enumerate(names):
            if not _export_get(self.context, at, name, len(name), self.base + index * _EXTERN_SIZE):
                raise KeyError(f"no export {name.decode()!r}")

    def _at(self, name: bytes) -> int:
        return self.base + self._names.index(name) * _EXTERN_SIZE + _OF

    def extern(self, name: bytes) -> int:
        """The address of the whole ``wasmtime_extern_t`` of ``name`` (to copy into ``Imports``)."""
        return self.base + self._names.index(name) * _EXTERN_SIZE

    def handle(self, name: bytes) -> int:
        """The address of the func/memory/table handle of ``name``, inside its extern."""
        return self._at(name)

    def func(self, name: bytes) -> _raw.RawFunc:
        func = _raw.RawFunc.at(self.context, self._at(name), self, self._first)
        if self._first is None:
            self._first = func
        return func

    def memory(self, name: bytes) -> _raw.RawMemory:
        return _raw.RawMemory.at(self.context, self._at(name), self)


class Imports:
    """The imports of one instantiation, in the module's import order: exports of other
    instances of the store, or what a linker defines."""

    __slots__ = ("_items", "base", "count")

    def __init__(self, count: int) -> None:
        self._items = (_EXTERN * count)()
        self.base: int = ctypes.addressof(self._items)
        self.count = count

    def set_export(self, index: int, exports: Exports, name: bytes) -> None:
        ctypes.memmove(self.base + index * _EXTERN_SIZE, exports.extern(name), _EXTERN_SIZE)

    def set_linked(self, index: int, store: RawStore, linker: int, module: bytes, name: bytes) -> None:
        """What the linker at address ``linker`` defines as ``module.name``; KeyError when nothing."""
        at = self.base + index * _EXTERN_SIZE
        if not _linker_get(linker, store.context, module, len(module), name, len(name), at):
            raise KeyError(f"the linker defines no {module.decode()}.{name.decode()}")


def use_pooling(config: Config, instances: int, memory_bytes: int) -> None:
    """Allocate up to ``instances`` instances, each with at most one memory of ``memory_bytes``, from a pool.

    The pool reserves ``instances`` x (``memory_bytes`` + wasmtime's 32 MiB
    guard) of address space up front (not RAM: pages are committed as guests
    touch them). Setting the memory reservation to ``memory_bytes`` is what
    keeps each slot that small (wasmtime's default reserves 4 GiB per memory);
    modules compiled for this engine then differ from the default engine's.
    """
    pool = ffi.wasmtime_pooling_allocation_config_new()
    try:
        for setting, value in (
            ("total_core_instances", instances),
            ("total_memories", instances),
            ("total_tables", instances),
            ("max_memory_size", memory_bytes),
            # Limits, not reservations: room for large modules (wasmtime's defaults
            # are 20,000 table elements and 1 MiB of instance state).
            ("table_elements", 65536),
            ("max_core_instance_size", 8 * 1024 * 1024),
            # A slot's first 64 KiB of memory and 8 KiB of table stay mapped when its instance
            # goes: wasmtime resets them in place for the next instance (zeroed, the module's
            # data and elements written again) instead of unmapping them, which saved the next
            # fresh job its first page faults: ~15 % of a Rust echo, ~40 % of an AssemblyScript one.
            ("linear_memory_keep_resident", 64 * 1024),
            ("table_keep_resident", 8 * 1024),
            ("total_stacks", 0),  # stacks are for async calls, which the host never makes
            ("total_component_instances", 0),
            ("total_gc_heaps", 0),
        ):
            setter = getattr(ffi, f"wasmtime_pooling_allocation_config_{setting}_set")
            setter(pool, value)
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pool)
    config.memory_reservation = memory_bytes
    config.memory_init_cow = True
