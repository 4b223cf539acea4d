;; echo-wat: the smallest useful runnable. Output = input, byte for byte, returned straight
;; from the input buffer, so a job costs one allocate, one return_result and one deallocate:
;; the fastest path a host can benchmark.
;;
;; Memory: a bump allocator from $heap_base. deallocate is a no-op; instead every run_e
;; rewinds the bump pointer. That is safe because the only allocation made for a job is its
;; input buffer, allocated just before run_e and read in place by it; the next job's input
;; may then reuse the same bytes, so memory stays at its high-water mark.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))

  (memory (export "memory") 1)

  (global $heap_base i32 (i32.const 1024))
  (global $next (mut i32) (i32.const 1024))

  (func (export "allocate") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    ;; keep pointers 8-byte aligned
    (local.set $ptr (i32.and (i32.add (global.get $next) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    ;; an overflowing end (size near 4 GiB) cannot be satisfied
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        ;; grow by the missing whole pages; -1 means the host refused
        (if (i32.eq
              (memory.grow
                (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 0xFFFF))
                           (i32.const 16)))
              (i32.const -1))
          (then unreachable))))
    (global.set $next (local.get $end))
    (local.get $ptr))

  (func (export "deallocate") (param i32 i32))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (global.set $next (global.get $heap_base))
    (call $return_result (local.get $ptr) (local.get $len) (local.get $ident)))
)
