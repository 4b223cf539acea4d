;; missing-memory: a working echo runnable except that its linear memory is not exported.
;; Reactr's Go host dereferenced nil here; a correct host refuses the module at load time
;; ("missing export 'memory'") because no pointer from it could ever be resolved.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))

  (memory 1) ;; not exported: the defect under test
  (data (i32.const 16) "hello ")

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
    (local $out i32) (local $out_len i32)
    (local.set $out_len (i32.add (local.get $len) (i32.const 6)))
    (local.set $out (call $allocate (local.get $out_len)))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 6))
    (memory.copy (i32.add (local.get $out) (i32.const 6)) (local.get $ptr) (local.get $len))
    (call $return_result (local.get $out) (local.get $out_len) (local.get $ident))
    (global.set $next (global.get $heap_base)))
)
