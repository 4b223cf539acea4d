;; version: answers two ASCII digits, the first stored by the code of run_e, the second read
;; from a data segment; as written here both are "1", so the answer is "11". tests/test_watch.py
;; builds version 2 ("22") by changing both digits: the two binaries have the same size and
;; differ in one byte of the code section and one byte of the data section, which comes last.
;; A file caught half-way through an in-place rewrite from version 1 to version 2 is a valid
;; module that answers "21": code from one version, data from the other.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))

  (memory (export "memory") 1)

  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (i32.store8 (i32.const 64) (i32.const 49))  ;; the first digit: "1"
    (call $return_result (i32.const 64) (i32.const 2) (local.get $ident)))

  ;; the second digit, at offset 65
  (data (i32.const 65) "1")
)
