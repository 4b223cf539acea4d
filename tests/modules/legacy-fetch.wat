;; legacy-fetch: imports fetch_url with Reactr v0.6-v0.8's destination-buffer signature
;; (8 parameters), which the current ABI replaced; the host must refuse it at load, naming it.
(module
  (import "env" "fetch_url" (func (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "allocate") (param i32) (result i32) (i32.const 0))
  (func (export "run_e") (param i32 i32 i32)))
