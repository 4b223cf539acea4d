;; two-results: calls return_result twice, with lengths read from its input (two little-endian
;; i32s): first "a" * first, then "b" * second. Small results are recorded by the job driver
;; in its stage, large ones by the host function: whichever way each goes, the first one wins.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (memory (export "memory") 4)

  ;; Input goes to a fixed place: nothing else is allocated.
  (func (export "allocate") (param $size i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $first i32) (local $second i32)
    (local.set $first (i32.load (local.get $ptr)))
    (local.set $second (i32.load (i32.add (local.get $ptr) (i32.const 4))))
    (memory.fill (i32.const 0x10000) (i32.const 0x61) (i32.const 0x10000))
    (memory.fill (i32.const 0x20000) (i32.const 0x62) (i32.const 0x10000))
    (call $return_result (i32.const 0x10000) (local.get $first) (local.get $ident))
    (call $return_result (i32.const 0x20000) (local.get $second) (local.get $ident))))
