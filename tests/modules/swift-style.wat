;; swift-style: imitates a runnable built with Reactr's Swift SDK, which imports every host
;; function as its `<name>_swift` twin taking two extra trailing i32 arguments (Swift's
;; context registers; this module passes 7 and 9, which the host must ignore). Like the Swift
;; SDK, allocate reserves one spare byte past the input for a NUL terminator. Logs
;; "swift-style echo" at level 3 and answers "hello " + input (the whole input: unlike real
;; Swift it does not stop at a NUL). A correct host links the twins and answers
;; "hello Connor" for "Connor".
(module
  (import "env" "return_result_swift" (func $return_result (param i32 i32 i32 i32 i32)))
  (import "env" "log_msg_swift" (func $log_msg (param i32 i32 i32 i32 i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "hello ")
  (data (i32.const 32) "swift-style echo")

  ;; Bump allocator: 8-byte aligned, grows memory on demand, traps when it cannot.
  ;; deallocate is a no-op: run_e rewinds the heap instead, as nothing allocated for a job
  ;; outlives it.
  (global $heap_base i32 (i32.const 1024))
  (global $next (mut i32) (i32.const 1024))

  (func $allocate_bytes (param $size i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (i32.and (i32.add (global.get $next) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
    (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
      (then
        (if (i32.eq (memory.grow (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 0xFFFF))
                                                     (i32.const 16))
                                          (memory.size)))
                    (i32.const -1))
          (then unreachable))))
    (global.set $next (local.get $end))
    (local.get $ptr))

  (func (export "deallocate") (param i32 i32))

  ;; the Swift SDK reserves one byte more than asked, for the NUL it writes after the input
  (func (export "allocate") (param $size i32) (result i32)
    (call $allocate_bytes (i32.add (local.get $size) (i32.const 1))))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $out i32) (local $out_len i32)
    ;; the C string the Swift SDK would build from the input
    (i32.store8 (i32.add (local.get $ptr) (local.get $len)) (i32.const 0))
    (call $log_msg (i32.const 32) (i32.const 16) (i32.const 3) (local.get $ident) (i32.const 7) (i32.const 9))
    (local.set $out_len (i32.add (local.get $len) (i32.const 6)))
    (local.set $out (call $allocate_bytes (local.get $out_len)))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 6))
    (memory.copy (i32.add (local.get $out) (i32.const 6)) (local.get $ptr) (local.get $len))
    (call $return_result (local.get $out) (local.get $out_len) (local.get $ident) (i32.const 7) (i32.const 9))
    (global.set $next (global.get $heap_base)))
)
