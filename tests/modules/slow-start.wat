;; slow-start: an echo runnable whose _start busy-loops 300 million times (~0.2 s with epoch
;; interruption; longer on a busy machine) without host calls. Loading it is fine (its start
;; timeout is the runnable's timeout); with isolation = "fresh" every job pays that _start,
;; so a correct host applies the job's timeout, cancellation and inline budget to _start of
;; a fresh instance as well: the guest is interrupted there, and the job ends as JobTimeout /
;; JobCancelled, or starts again on a worker thread, never as a failure of the guest's own.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "hello ")

  (global $heap_base i32 (i32.const 1024))
  (global $next (mut i32) (i32.const 1024))

  (func (export "_start")
    (local $i i64)
    (block $done
      (loop $spin
        (br_if $done (i64.ge_u (local.get $i) (i64.const 300000000)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $spin))))

  ;; Bump allocator: 8-byte aligned, grows memory on demand, traps when it cannot.
  (func $allocate (export "allocate") (param $size i32) (result i32)
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

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $out i32) (local $out_len i32)
    (local.set $out_len (i32.add (local.get $len) (i32.const 6)))
    (local.set $out (call $allocate (local.get $out_len)))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 6))
    (memory.copy (i32.add (local.get $out) (i32.const 6)) (local.get $ptr) (local.get $len))
    (call $return_result (local.get $out) (local.get $out_len) (local.get $ident))
    (global.set $next (global.get $heap_base)))
)
