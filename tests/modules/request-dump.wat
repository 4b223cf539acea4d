;; request-dump: a request-mode runnable that shows what the host says of the job's request.
;; Output: "<method> <url> <id>\n<value of the header named by query parameter h>\n<body>",
;; and the response header "X-Dump: yes". Outside a request job the first field read fails:
;; RunErr 500 "not a request job".
(module
  (import "env" "request_get_field" (func $get (param i32 i32 i32 i32) (result i32)))
  (import "env" "get_ffi_result" (func $ffi (param i32 i32) (result i32)))
  (import "env" "resp_set_header" (func $set_header (param i32 i32 i32 i32 i32)))
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "return_error" (func $return_error (param i32 i32 i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "method")
  (data (i32.const 24) "url")
  (data (i32.const 32) "id")
  (data (i32.const 40) "body")
  (data (i32.const 48) "h")
  (data (i32.const 56) "X-Dump")
  (data (i32.const 64) "yes")
  (data (i32.const 80) "not a request job")

  (global $heap_base i32 (i32.const 1024))
  (global $next (mut i32) (i32.const 1024))
  (global $ident (mut i32) (i32.const 0))
  (global $ok (mut i32) (i32.const 1))

  ;; Bytes at the end of the heap, unaligned, so appended pieces stay contiguous.
  (func $reserve (param $size i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (global.get $next))
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

  (func (export "allocate") (param $size i32) (result i32)
    (call $reserve (local.get $size)))

  (func (export "deallocate") (param i32 i32))

  ;; Append one request field at the end of the heap; its length. A failed read clears $ok.
  (func $field (param $type i32) (param $key i32) (param $key_len i32) (result i32)
    (local $size i32)
    (local.set $size (call $get (local.get $type) (local.get $key) (local.get $key_len) (global.get $ident)))
    (if (i32.lt_s (local.get $size) (i32.const 0))
      (then (global.set $ok (i32.const 0)) (return (i32.const 0))))
    (drop (call $ffi (call $reserve (local.get $size)) (global.get $ident)))
    (local.get $size))

  (func $byte (param $value i32)
    (i32.store8 (call $reserve (i32.const 1)) (local.get $value)))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $name i32) (local $name_len i32) (local $start i32)
    (global.set $ident (local.get $ident))
    (global.set $ok (i32.const 1))
    (local.set $name (global.get $next))
    (local.set $name_len (call $field (i32.const 5) (i32.const 48) (i32.const 1)))  ;; query h
    (if (i32.eqz (global.get $ok))
      (then
        (call $return_error (i32.const 500) (i32.const 80) (i32.const 17) (local.get $ident))
        (global.set $next (global.get $heap_base))
        (return)))
    (local.set $start (global.get $next))
    (drop (call $field (i32.const 0) (i32.const 16) (i32.const 6)))  ;; meta method
    (call $byte (i32.const 32))
    (drop (call $field (i32.const 0) (i32.const 24) (i32.const 3)))  ;; meta url
    (call $byte (i32.const 32))
    (drop (call $field (i32.const 0) (i32.const 32) (i32.const 2)))  ;; meta id
    (call $byte (i32.const 10))
    (drop (call $field (i32.const 2) (local.get $name) (local.get $name_len)))  ;; header h
    (call $byte (i32.const 10))
    (drop (call $field (i32.const 0) (i32.const 40) (i32.const 4)))  ;; meta body
    (call $set_header (i32.const 56) (i32.const 6) (i32.const 64) (i32.const 3) (local.get $ident))
    (call $return_result (local.get $start) (i32.sub (global.get $next) (local.get $start)) (local.get $ident))
    (global.set $next (global.get $heap_base)))
)
