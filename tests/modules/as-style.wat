;; as-style: imitates a runnable built with Reactr's AssemblyScript SDK: no _start or init
;; export but a wasm start section, allocate/deallocate in the style of heap.alloc/heap.free,
;; output "hello, " + input, and failures reported with return_abort followed by a trap
;; (here only when memory cannot grow: "out of memory" in assembly/index.ts).
;; A correct host needs no _start for it and answers "hello, from AS!" for "from AS!".
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "return_abort" (func $return_abort (param i32 i32 i32 i32 i32 i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "hello, ")
  (data (i32.const 32) "out of memory")
  (data (i32.const 64) "assembly/index.ts")

  ;; AssemblyScript-like heap: the start section sets the heap offset, as AS's runtime
  ;; initialisation does; heap.free is a no-op as in AS's stub
  ;; runtime, and run_e rewinds the heap after each job. Running out of memory is reported
  ;; the AS way, with return_abort and a trap.
  (global $heap_base i32 (i32.const 1024))
  (global $next (mut i32) (i32.const 0))
  ;; the running job's ident, for aborts raised inside allocate; -1 (never a valid ident)
  ;; between jobs, so an abort outside a job cannot be pinned on someone else's job
  (global $ident (mut i32) (i32.const -1))

  (start $init)
  (func $init
    (global.set $next (global.get $heap_base)))

  (func $abort (param $msg i32) (param $msg_len i32) (param $line i32) (param $col i32)
    (call $return_abort (local.get $msg) (local.get $msg_len) (i32.const 64) (i32.const 17)
                        (local.get $line) (local.get $col) (global.get $ident))
    unreachable)

  (func $allocate (export "allocate") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (i32.and (i32.add (global.get $next) (i32.const 15)) (i32.const -16)))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.lt_u (local.get $end) (local.get $ptr))
      (then (call $abort (i32.const 32) (i32.const 13) (i32.const 7) (i32.const 5))))
    (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
      (then
        (if (i32.eq (memory.grow (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 0xFFFF))
                                                     (i32.const 16))
                                          (memory.size)))
                    (i32.const -1))
          (then (call $abort (i32.const 32) (i32.const 13) (i32.const 9) (i32.const 7))))))
    (global.set $next (local.get $end))
    (local.get $ptr))

  (func (export "deallocate") (param i32 i32))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $out i32) (local $out_len i32)
    (global.set $ident (local.get $ident))
    (local.set $out_len (i32.add (local.get $len) (i32.const 7)))
    (local.set $out (call $allocate (local.get $out_len)))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 7))
    (memory.copy (i32.add (local.get $out) (i32.const 7)) (local.get $ptr) (local.get $len))
    (call $return_result (local.get $out) (local.get $out_len) (local.get $ident))
    (global.set $ident (i32.const -1))
    (global.set $next (global.get $heap_base)))
)
