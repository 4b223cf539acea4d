"""The private fast path (reactr_wasm.wasm._raw) agrees with wasmtime-py's public API."""

from __future__ import annotations

import pytest
import wasmtime

from reactr_wasm.wasm import _raw

MODULE = r"""
(module
  (import "env" "record" (func $record (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "mix") (param $a i32) (param $b i32) (param $c i32) (result i32)
    (i32.xor (i32.mul (local.get $a) (i32.const 31)) (i32.sub (local.get $b) (local.get $c))))
  (func (export "store") (param $ptr i32) (param $value i32)
    (i32.store8 (local.get $ptr) (local.get $value)))
  (func (export "call_host") (param $a i32) (param $b i32) (param $c i32) (result i32)
    (call $record (local.get $a) (local.get $b) (local.get $c)))
  (func (export "boom") unreachable)
)
"""

CASES = [(0, 0, 0), (1, 2, 3), (-1, -2, -3), (2**31 - 1, -(2**31), 7), (123456, 654321, -99)]


def build(raw: bool) -> tuple[wasmtime.Store, wasmtime.Instance, list[tuple[int, int, int]]]:
    config = wasmtime.Config()
    config.epoch_interruption = True
    _raw.config_memory_never_moves(config)
    engine = wasmtime.Engine(config)
    linker = wasmtime.Linker(engine)
    calls: list[tuple[int, int, int]] = []

    def record(a: int, b: int, c: int) -> int:
        calls.append((a, b, c))
        return (a + b + c) & 0x7FFFFFFF

    if raw:
        _raw.define_raw_func(linker, "env", "record", 3, 1, record)
    else:
        i32 = wasmtime.ValType.i32()
        linker.define_func("env", "record", wasmtime.FuncType([i32] * 3, [i32]), record)
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 40)
    return store, linker.instantiate(store, wasmtime.Module(engine, wasmtime.wat2wasm(MODULE))), calls


@pytest.mark.parametrize("args", CASES)
def test_export_calls_agree(args: tuple[int, int, int]) -> None:
    store, instance, _ = build(raw=False)
    raw_store, raw_instance, _ = build(raw=True)
    public = instance.exports(store)["mix"](store, *args)  # type: ignore[operator]
    fast = _raw.RawFunc(raw_store, raw_instance.exports(raw_store)["mix"], 3, 1)(*args)  # type: ignore[arg-type]
    assert fast == public


@pytest.mark.parametrize("args", CASES)
def test_host_callbacks_agree(args: tuple[int, int, int]) -> None:
    store, instance, calls = build(raw=False)
    raw_store, raw_instance, raw_calls = build(raw=True)
    public = instance.exports(store)["call_host"](store, *args)  # type: ignore[operator]
    fast = _raw.RawFunc(raw_store, raw_instance.exports(raw_store)["call_host"], 3, 1)(*args)  # type: ignore[arg-type]
    assert fast == public
    assert raw_calls == calls == [args]


def test_memory_view_sees_guest_writes_and_checks_bounds() -> None:
    store, instance, _ = build(raw=True)
    exports = instance.exports(store)
    memory = _raw.RawMemory(store, exports["memory"])  # type: ignore[arg-type]
    _raw.RawFunc(store, exports["store"], 2, 0)(100, 0xAB)  # type: ignore[arg-type]
    assert memory.read(100, 1) == b"\xab"
    assert exports["memory"].read(store, 100, 101) == b"\xab"  # type: ignore[union-attr]
    memory.write(200, b"xyz")
    assert exports["memory"].read(store, 200, 203) == b"xyz"  # type: ignore[union-attr]
    with pytest.raises(_raw.GuestFault, match="outside guest memory"):
        memory.read(65536 - 2, 3)
    with pytest.raises(_raw.GuestFault):
        memory.read(-1, 1)  # an i32 -1 is 0xFFFFFFFF, far outside
    with pytest.raises(_raw.GuestFault):
        memory.write(65535, b"ab")


def test_traps_surface_as_guest_trap_with_the_engine_message() -> None:
    store, instance, _ = build(raw=False)
    raw_store, raw_instance, _ = build(raw=True)
    with pytest.raises(wasmtime.Trap) as public:
        instance.exports(store)["boom"](store)  # type: ignore[operator]
    boom = _raw.RawFunc(raw_store, raw_instance.exports(raw_store)["boom"], 0, 0)  # type: ignore[arg-type]
    with pytest.raises(_raw.GuestTrap) as fast:
        boom()
    assert "unreachable" in fast.value.message
    assert fast.value.message in public.value.message  # the one-line reason of the same trap
    assert public.value.message.splitlines()[0] in fast.value.detail
    with pytest.raises(_raw.GuestTrap):  # the trap slot is reset: a second trap is reported too
        boom()
