;; slow: busy-loops N times, N = the input as decimal ASCII (non-digits are ignored, empty
;; input = 0), then answers "done". The loop only counts, without host calls, so a host can
;; stop it early only by interrupting the guest: for cancel, timeout and concurrency tests.
;; Cost measured with wasmtime-py 50 (Cranelift) on the 2-core dev machine: ~0.68 ns per
;; iteration with epoch interruption enabled (as reactr_wasm runs guests; the epoch check in
;; the loop is most of it), ~0.34 ns without. So 1e8 iterations take ~70 ms and 1e9 ~0.7 s:
;; use 1e9 or more when a test needs a job that is still running after a few hundred ms.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "done")

  ;; Bump allocator: 8-byte aligned, grows memory on demand, traps when it cannot.
  ;; deallocate is a no-op: run_e rewinds the heap instead, as nothing allocated for a job
  ;; outlives it.
  (global $heap_base i32 (i32.const 1024))
  (global $next (mut i32) (i32.const 1024))

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
    (local $n i64) (local $at i32) (local $digit i32) (local $i i64)
    (loop $parse
      (if (i32.lt_u (local.get $at) (local.get $len))
        (then
          (local.set $digit (i32.sub (i32.load8_u (i32.add (local.get $ptr) (local.get $at))) (i32.const 48)))
          (if (i32.lt_u (local.get $digit) (i32.const 10))
            (then
              (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10))
                                     (i64.extend_i32_u (local.get $digit))))))
          (local.set $at (i32.add (local.get $at) (i32.const 1)))
          (br $parse))))
    (block $done
      (loop $spin
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $spin)))
    (call $return_result (i32.const 16) (i32.const 4) (local.get $ident))
    (global.set $next (global.get $heap_base)))
)
