;; counter: a mutable global counts the jobs this instance has run; each job answers the new
;; count in decimal. With instances reused (isolation "reuse") a host answers 1, 2, 3, ...;
;; with a fresh instance per job (isolation "fresh") it answers 1 every time.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))

  (memory (export "memory") 1)

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

  ;; Writes the signed decimal text of $n so that it ends at offset 96 and returns its start:
  ;; the text is [start, 96).
  (func $decimal (param $n i32) (result i32)
    (local $at i32) (local $rest i32)
    (local.set $at (i32.const 96))
    ;; 0 - n read as unsigned is |n|, even for -2^31
    (local.set $rest (select (i32.sub (i32.const 0) (local.get $n)) (local.get $n)
                             (i32.lt_s (local.get $n) (i32.const 0))))
    (loop $digit
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.rem_u (local.get $rest) (i32.const 10))))
      (local.set $rest (i32.div_u (local.get $rest) (i32.const 10)))
      (br_if $digit (local.get $rest)))
    (if (i32.lt_s (local.get $n) (i32.const 0))
      (then
        (local.set $at (i32.sub (local.get $at) (i32.const 1)))
        (i32.store8 (local.get $at) (i32.const 45))))
    (local.get $at))

  (func $return_decimal (param $n i32) (param $ident i32)
    (local $at i32)
    (local.set $at (call $decimal (local.get $n)))
    (call $return_result (local.get $at) (i32.sub (i32.const 96) (local.get $at)) (local.get $ident)))

  (global $runs (mut i32) (i32.const 0))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (global.set $next (global.get $heap_base))
    (global.set $runs (i32.add (global.get $runs) (i32.const 1)))
    (call $return_decimal (global.get $runs) (local.get $ident)))
)
