"""The job driver and the result recorder: tiny Wasm modules that keep a job's calls inside Wasm.

Each call from Python into Wasm costs ~0.4 µs of ctypes work, each call from
Wasm into Python ~0.7 µs, and a job needs three of the first (allocate, run_e,
deallocate), one of the second (``return_result``) and a copy each way.

The driver is instantiated next to each guest, in the same store, importing
the guest's memory and exports. The host writes a small input into the
driver's own "stage" memory, its length and the job's ident into two header
words, and makes ONE call, ``job``, with no arguments (so no value array to
fill): the driver allocates, copies the input across with ``memory.copy``
(multi-memory), runs the job and deallocates. A large input is cheaper written straight into guest memory: the
host calls the driver's ``allocate`` (the pointer comes back in a header word),
writes, then calls the driver's ``run`` (run_e and deallocate). These calls take
no arguments either.

The recorder is instantiated before the guest and supplies its
``env.return_result``: a call through a one-slot table, which points at the
Python host function until the driver exists and at the driver's ``record``
after. ``record`` copies a small result of the running job into the stage and
marks it there, so the host reads it after the call without a callback. It
hands every other case to the Python host function, which checks and reports
it as always: an ident that is not the job's, a length over the stage or the
runnable's result limit, a range outside guest memory. A result is recorded
once (the first wins); the host function marks the stage when it records one.

The driver writes how far it got at stage offset 0, so after a trap the host
knows which step failed.
"""

from __future__ import annotations

from wasmtime import Engine, Module, wat2wasm

# Stage layout: eight i32 header words (one spare), then the input area, then the output area.
STEP, RESULT_STATE, RESULT_LENGTH, RESULT_LIMIT, INPUT_LENGTH, IDENT, INPUT_POINTER = range(7)  # header words
INPUT_OFFSET = 32
# Past these sizes a copy through the stage costs more than the call it saves (measured).
INPUT_CAPACITY = 8192
OUTPUT_CAPACITY = 8192
OUTPUT_OFFSET = INPUT_OFFSET + INPUT_CAPACITY
STAGE_PAGES = 1

# Step markers, written before each step starts.
ALLOCATING, RUNNING, DEALLOCATING, DONE = 1, 2, 3, 4
# RESULT_STATE values: no result yet, recorded in the stage by the driver, recorded by the host.
NO_RESULT, STAGED, HOST_RECORDED = 0, 1, 2

_DRIVER = """
(module
  (import "guest" "memory" (memory $guest 0))
  (import "guest" "allocate" (func $allocate (param i32) (result i32)))
  (import "guest" "run_e" (func $run_e (param i32 i32 i32)))
  {dealloc_import}
  (import "env" "return_result" (func $host_result (param i32 i32 i32)))
  (memory $stage {pages})
  (export "stage" (memory $stage))
  (global $ident (mut i32) (i32.const 0))

  (func $run (param $ptr i32) (param $length i32) (param $ident i32)
    (global.set $ident (local.get $ident))
    (i32.store $stage (i32.const {state_at}) (i32.const {no_result}))
    (i32.store $stage (i32.const {step_at}) (i32.const {running}))
    (call $run_e (local.get $ptr) (local.get $length) (local.get $ident))
    (i32.store $stage (i32.const {step_at}) (i32.const {deallocating}))
    {dealloc_call}
    (i32.store $stage (i32.const {step_at}) (i32.const {done})))

  (func (export "job")
    (local $ptr i32)
    (local $length i32)
    (local.set $length (i32.load $stage (i32.const {input_length_at})))
    (i32.store $stage (i32.const {step_at}) (i32.const {allocating}))
    (local.set $ptr (call $allocate (local.get $length)))
    (memory.copy $guest $stage (local.get $ptr) (i32.const {input_at}) (local.get $length))
    (call $run (local.get $ptr) (local.get $length) (i32.load $stage (i32.const {ident_at}))))

  (func (export "allocate")
    (i32.store $stage (i32.const {step_at}) (i32.const {allocating}))
    (i32.store $stage (i32.const {pointer_at}) (call $allocate (i32.load $stage (i32.const {input_length_at})))))

  (func (export "run")
    (call $run
      (i32.load $stage (i32.const {pointer_at}))
      (i32.load $stage (i32.const {input_length_at}))
      (i32.load $stage (i32.const {ident_at}))))

  (func (export "record") (param $ptr i32) (param $length i32) (param $ident i32)
    (if (i32.or
          (i32.ne (local.get $ident) (global.get $ident))
          (i32.or
            (i32.gt_u (local.get $length) (i32.load $stage (i32.const {limit_at})))
            (i64.gt_u
              (i64.add (i64.extend_i32_u (local.get $ptr)) (i64.extend_i32_u (local.get $length)))
              (i64.shl (i64.extend_i32_u (memory.size $guest)) (i64.const 16)))))
      (then
        (call $host_result (local.get $ptr) (local.get $length) (local.get $ident))
        (return)))
    (if (i32.load $stage (i32.const {state_at})) (then (return)))
    (memory.copy $stage $guest (i32.const {output_at}) (local.get $ptr) (local.get $length))
    (i32.store $stage (i32.const {length_at}) (local.get $length))
    (i32.store $stage (i32.const {state_at}) (i32.const {staged}))))
"""

_RECORDER = """
(module
  (type $result (func (param i32 i32 i32)))
  (import "env" "return_result" (func $host_result (type $result)))
  (table $target (export "target") 1 1 funcref)
  (elem (table $target) (i32.const 0) func $host_result)
  (func (export "return_result") (type $result)
    (call_indirect $target (type $result) (local.get 0) (local.get 1) (local.get 2) (i32.const 0))))
"""


class Drivers:
    """The modules of one engine: drivers for guests with and without ``deallocate``, and the recorder."""

    def __init__(self, engine: Engine) -> None:
        self.with_deallocate = Module(engine, bytes(wat2wasm(_driver(True))))
        self.without_deallocate = Module(engine, bytes(wat2wasm(_driver(False))))
        self.recorder = Module(engine, bytes(wat2wasm(_RECORDER)))


def _driver(deallocate: bool) -> str:
    return _DRIVER.format(
        dealloc_import='(import "guest" "deallocate" (func $deallocate (param i32 i32)))' if deallocate else "",
        dealloc_call="(call $deallocate (local.get $ptr) (local.get $length))" if deallocate else "",
        pages=STAGE_PAGES,
        input_at=INPUT_OFFSET,
        output_at=OUTPUT_OFFSET,
        step_at=4 * STEP,
        state_at=4 * RESULT_STATE,
        length_at=4 * RESULT_LENGTH,
        limit_at=4 * RESULT_LIMIT,
        input_length_at=4 * INPUT_LENGTH,
        ident_at=4 * IDENT,
        pointer_at=4 * INPUT_POINTER,
        no_result=NO_RESULT,
        staged=STAGED,
        allocating=ALLOCATING,
        running=RUNNING,
        deallocating=DEALLOCATING,
        done=DONE,
    )
