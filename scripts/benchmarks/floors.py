"""The baselines the in-process rows are measured against: hosts written by hand on wasmtime-py.

``straightforward_host`` uses the public API only; ``tuned_floor`` is the cheapest host known
(unchecked calls, raw callbacks, no bookkeeping); ``fresh_floor`` makes a new instance per job on
the low-level calls. Each returns a ``run(data) -> bytes`` for one echo job.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from ctypes import c_int32, c_size_t, c_void_p
from typing import Any

import wasmtime

from reactr_wasm.wasm import _raw


def straightforward_host(wasm: bytes) -> Callable[[bytes], bytes]:
    """How a host looks when written with wasmtime-py's public API only."""
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    outputs: list[bytes] = []

    def return_result(caller: wasmtime.Caller, ptr: int, length: int, ident: int) -> None:
        memory = caller["memory"]
        outputs.append(bytes(memory.read(caller, ptr, ptr + length)))  # type: ignore[union-attr]

    def return_error(caller: wasmtime.Caller, code: int, ptr: int, length: int, ident: int) -> None:
        outputs.append(b"error")

    def return_abort(caller: wasmtime.Caller, *args: int) -> None:
        outputs.append(b"abort")

    i32 = wasmtime.ValType.i32()
    linker.define_func("env", "return_result", wasmtime.FuncType([i32] * 3, []), return_result, True)
    linker.define_func("env", "return_error", wasmtime.FuncType([i32] * 4, []), return_error, True)
    linker.define_func("env", "return_abort", wasmtime.FuncType([i32] * 7, []), return_abort, True)
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    instance = linker.instantiate(store, wasmtime.Module(engine, wasm))
    exports = instance.exports(store)
    if "_start" in exports:
        exports["_start"](store)  # type: ignore[operator]
    memory, allocate, run_e, deallocate = (exports[n] for n in ("memory", "allocate", "run_e", "deallocate"))

    def run(data: bytes) -> bytes:
        ptr = allocate(store, len(data))  # type: ignore[operator]
        memory.write(store, data, ptr)  # type: ignore[union-attr]
        run_e(store, ptr, len(data), 1)  # type: ignore[operator]
        deallocate(store, ptr, len(data))  # type: ignore[operator]
        return outputs.pop()

    return run


def _floor_api() -> tuple[Any, Any, Any, Any]:
    """The C entry points the floor calls, as its own ctypes handles: call, memory data, memory size, callback type."""
    from wasmtime import _ffi as ffi

    lib = ctypes.CDLL(ffi.dll._name)
    call = lib.wasmtime_func_call_unchecked
    call.restype = c_void_p  # argtypes left unset: every argument is passed ready-made
    memory_data, memory_size = lib.wasmtime_memory_data, lib.wasmtime_memory_data_size
    memory_data.restype, memory_data.argtypes = c_void_p, [c_void_p, c_void_p]
    memory_size.restype, memory_size.argtypes = c_size_t, [c_void_p, c_void_p]
    return call, memory_data, memory_size, ctypes.CFUNCTYPE(c_size_t, c_void_p, c_void_p, c_void_p, c_size_t)


def _link_unchecked(linker: wasmtime.Linker, callbacks: list[Any]) -> None:
    """Link env.return_result, return_error and return_abort to raw callbacks, unchecked."""
    from wasmtime import _ffi as ffi

    define = ctypes.CDLL(ffi.dll._name).wasmtime_linker_define_func_unchecked
    define.restype = c_void_p
    define.argtypes = [c_void_p, ctypes.c_char_p, c_size_t, ctypes.c_char_p, c_size_t, c_void_p, type(callbacks[0]),
                       c_void_p, c_void_p]  # fmt: skip
    i32 = wasmtime.ValType.i32()
    for name, params, callback in zip((b"return_result", b"return_error", b"return_abort"), (3, 4, 7), callbacks,
                                      strict=True):  # fmt: skip
        ty = wasmtime.FuncType([i32] * params, [])
        if define(_raw._address(linker.ptr()), b"env", 3, name, len(name), _raw._address(ty.ptr()), callback, None,
                  None):  # fmt: skip
            raise RuntimeError(f"cannot link env.{name.decode()}")


def _func_at(exports: Any, name: str) -> c_void_p:
    """The address of an export's wasmtime_func_t, ready to pass."""
    return c_void_p(ctypes.addressof(exports[name]._func))


def tuned_floor(wasm: bytes) -> Callable[[bytes], bytes]:
    """The floor: the cheapest Reactr host known on wasmtime-py, with nothing but the ABI.

    Written after the tuned host of the design notes' benchmarks (``reactr_host.py``), in
    its own code: exports called through ``wasmtime_func_call_unchecked`` with one
    preallocated value array and ready-made ctypes arguments (no conversions per call);
    ``env`` functions linked unchecked as raw ctypes callbacks that read their i32s
    straight from the value array; guest memory through one memoryview, rebuilt only when
    the memory grows (``memory_may_move = false``). No timeouts (no epoch interruption),
    no bounds on results, no bookkeeping: a job is allocate, copy, run_e, deallocate.
    """
    call, memory_data, memory_size, callback_type = _floor_api()
    stride = ctypes.sizeof(wasmtime._ffi.wasmtime_val_raw) // 4  # int32 slots per raw value
    three_of = c_int32 * (3 * stride)  # a view of return_result's arguments

    config = wasmtime.Config()
    config.memory_may_move = False
    engine = wasmtime.Engine(config)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    context = c_void_p(_raw._address(store._context()))
    memory = c_void_p()  # the guest's, once instantiated
    out: object = None  # what the last job returned
    view, size = memoryview(b""), 0

    def grown() -> None:
        nonlocal view, size
        size = memory_size(context, memory)
        view = memoryview((ctypes.c_ubyte * size).from_address(memory_data(context, memory))).cast("B")

    def on_result(env: int, caller: int, args: int, count: int) -> int:
        nonlocal out
        values = three_of.from_address(args)
        ptr = values[0]
        end = ptr + values[stride]
        if end > size:
            grown()
        out = view[ptr:end].tobytes()
        return 0

    def on_failure(env: int, caller: int, args: int, count: int) -> int:  # return_error, return_abort
        nonlocal out
        out = RuntimeError("the guest failed")  # never, for an echo: its text is not worth reading here
        return 0

    callbacks = [callback_type(f) for f in (on_result, on_failure, on_failure)]
    _link_unchecked(linker, callbacks)
    instance = linker.instantiate(store, wasmtime.Module(engine, wasm))
    exports = instance.exports(store)
    memory.value = ctypes.addressof(exports["memory"]._memory)  # type: ignore[union-attr]
    grown()
    values = (c_int32 * (3 * stride))()
    trap = c_void_p()
    trap_at = ctypes.byref(trap)
    one, two, three = c_size_t(1), c_size_t(2), c_size_t(3)
    allocate, run_e, deallocate = (_func_at(exports, name) for name in ("allocate", "run_e", "deallocate"))
    if "_start" in exports:  # Rust runnables need it
        call(context, _func_at(exports, "_start"), values, c_size_t(0), trap_at)
    second, third = stride, 2 * stride

    def run(data: bytes) -> bytes:
        nonlocal out
        length = len(data)
        values[0] = length
        if call(context, allocate, values, one, trap_at) or trap.value:
            raise RuntimeError("allocate failed")
        ptr = values[0]
        if ptr + length > size:
            grown()
        view[ptr : ptr + length] = data
        values[second] = length
        values[third] = 1
        if call(context, run_e, values, three, trap_at) or trap.value:
            raise RuntimeError("run_e failed")
        values[0] = ptr
        values[second] = length
        if call(context, deallocate, values, two, trap_at) or trap.value:
            raise RuntimeError("deallocate failed")
        result, out = out, None
        if type(result) is not bytes:
            raise RuntimeError(f"no result: {result!r}")
        return result

    run._keep = (store, instance, engine, linker, callbacks, exports)  # type: ignore[attr-defined]
    return run


def fresh_floor(wasm: bytes) -> Callable[[bytes], bytes]:
    """A fresh instance per job done by hand on the low-level calls, on a default engine config.

    New Store (with WASI when the module imports it) + instantiate from an
    InstancePre + ``_start`` + allocate/write/run_e/deallocate through the
    unchecked entry points, then drop the store: nothing a host could leave out.
    """
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    outputs: list[bytes] = []
    memory_box: list[_raw.RawMemory] = []
    _raw.define_raw_func(linker, "env", "return_result", 3, 0, lambda p, n, i: outputs.append(memory_box[0].read(p, n)))
    _raw.define_raw_func(linker, "env", "return_error", 4, 0, lambda c, p, n, i: outputs.append(b"error"))
    _raw.define_raw_func(linker, "env", "return_abort", 7, 0, lambda *args: outputs.append(b"abort"))
    module = wasmtime.Module(engine, wasm)
    wasi = any(item.module.startswith("wasi") for item in module.imports)
    pre = linker.instantiate_pre(module)

    def run(data: bytes) -> bytes:
        store = wasmtime.Store(engine)
        if wasi:
            store.set_wasi(wasmtime.WasiConfig())
        instance = pre.instantiate(store)
        start = _raw.export(store, instance, "_start")
        if start is not None:
            _raw.RawFunc(store, start, 0, 0)()  # type: ignore[arg-type]
        memory = _raw.RawMemory(store, _raw.export(store, instance, "memory"))  # type: ignore[arg-type]
        memory_box[:] = [memory]
        allocate, run_e, deallocate = (
            _raw.RawFunc(store, _raw.export(store, instance, name), params, 0)  # type: ignore[arg-type]
            for name, params in (("allocate", 1), ("run_e", 3), ("deallocate", 2))
        )
        ptr = allocate(len(data))
        memory.write(ptr, data)
        run_e(ptr, len(data), 1)
        deallocate(ptr, len(data))
        memory_box.clear()
        store.close()
        return outputs.pop()

    return run
