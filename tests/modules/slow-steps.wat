;; slow-steps: a runnable that is slow in the steps around run_e, on demand. Without host calls:
;;   allocate(size)    busy-loops 300 million times (~0.2 s) first when size >= 1000;
;;   run_e             answers "done";
;;   deallocate        busy-loops 300 million times when the input starts with "D".
;; Small inputs are fast, so the runnable earns the inline fast path first. A correct host
;; applies the job's timeout, cancellation and inline budget in allocate and deallocate as in
;; run_e: the guest is interrupted, and the job ends as JobTimeout / JobCancelled, or starts
;; again on a worker thread (then it answers "done"), never as "failed to Call allocate".
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "done")

  (global $heap_base i32 (i32.const 1024))
  (global $next (mut i32) (i32.const 1024))

  (func $spin
    (local $i i64)
    (block $done
      (loop $spin
        (br_if $done (i64.ge_u (local.get $i) (i64.const 300000000)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $spin))))

  ;; Bump allocator: 8-byte aligned, grows memory on demand, traps when it cannot.
  (func $allocate (export "allocate") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32)
    (if (i32.ge_u (local.get $size) (i32.const 1000)) (then (call $spin)))
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

  (func (export "deallocate") (param $ptr i32) (param $len i32)
    (if (i32.and (i32.gt_u (local.get $len) (i32.const 0))
                 (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 68)))  ;; "D"
      (then (call $spin)))
    (global.set $next (global.get $heap_base)))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (call $return_result (i32.const 16) (i32.const 4) (local.get $ident)))
)
