;; bad-pointers: each job calls ONE host function with arguments pointing outside guest
;; memory. The input selects the case (ASCII, exact match):
;;
;;   void functions:  return_result  return_error  return_abort  log_msg  resp_set_header
;;   data functions:  get_ffi_result  add_ffi_var  request_get_field  request_set_field
;;                    cache_set  cache_get  fetch_url  graphql_query  get_static_file  db_exec
;;   edge cases:      neg_len     return_result(ptr 1024, len -1 = 0xFFFFFFFF)
;;                    huge_ptr    return_result(ptr 0x7FFFFFF0, len 100)
;;                    ptr_at_end  return_result(ptr = memory size - 4, len 100)
;;
;; A function selector passes BAD = 0x7FFF0000 with length 16 for EVERY pointer/length pair of
;; the call, so whichever buffer the host touches first is out of range. Other arguments are
;; plausible: the job's real ident, field type 1 (body), method 0 (GET), query type 1
;; (select), log level 3, ttl 0, error code 500, line 1, col 1.
;;
;; A correct host never reads or writes outside guest memory: it fails this job (only this
;; one), naming the function and the pointer, and stops using the instance. After a void
;; call the module does nothing more. After a data call it answers the call's return code in
;; decimal with return_result (e.g. "-1"), so a host that returns an error code instead of
;; failing the job shows which code it chose. Exception: get_ffi_result with nothing pending
;; returns -1 before it would touch memory, so "get_ffi_result" answers "-1" on a correct host.
;; Any other input fails with return_error(400, "unknown selector").
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "return_error" (func $return_error (param i32 i32 i32 i32)))
  (import "env" "return_abort" (func $return_abort (param i32 i32 i32 i32 i32 i32 i32)))
  (import "env" "log_msg" (func $log_msg (param i32 i32 i32 i32)))
  (import "env" "resp_set_header" (func $resp_set_header (param i32 i32 i32 i32 i32)))
  (import "env" "get_ffi_result" (func $get_ffi_result (param i32 i32) (result i32)))
  (import "env" "add_ffi_var" (func $add_ffi_var (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "request_get_field" (func $request_get_field (param i32 i32 i32 i32) (result i32)))
  (import "env" "request_set_field" (func $request_set_field (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "cache_set" (func $cache_set (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "cache_get" (func $cache_get (param i32 i32 i32) (result i32)))
  (import "env" "fetch_url" (func $fetch_url (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "graphql_query" (func $graphql_query (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "get_static_file" (func $get_static_file (param i32 i32 i32) (result i32)))
  (import "env" "db_exec" (func $db_exec (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)
  (data (i32.const 128) "unknown selector")
  (data (i32.const 256) "return_result")
  (data (i32.const 288) "return_error")
  (data (i32.const 320) "return_abort")
  (data (i32.const 352) "log_msg")
  (data (i32.const 384) "resp_set_header")
  (data (i32.const 416) "get_ffi_result")
  (data (i32.const 448) "add_ffi_var")
  (data (i32.const 480) "request_get_field")
  (data (i32.const 512) "request_set_field")
  (data (i32.const 544) "cache_set")
  (data (i32.const 576) "cache_get")
  (data (i32.const 608) "fetch_url")
  (data (i32.const 640) "graphql_query")
  (data (i32.const 672) "get_static_file")
  (data (i32.const 704) "db_exec")
  (data (i32.const 736) "neg_len")
  (data (i32.const 768) "huge_ptr")
  (data (i32.const 800) "ptr_at_end")

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

  (global $BAD i32 (i32.const 0x7FFF0000))
  (global $BAD_LEN i32 (i32.const 16))
  (global $input (mut i32) (i32.const 0))
  (global $input_len (mut i32) (i32.const 0))

  ;; is the job input exactly the $len bytes at $at?
  (func $is (param $at i32) (param $len i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $len) (global.get $input_len)) (then (return (i32.const 0))))
    (loop $each
      (if (i32.lt_u (local.get $i) (local.get $len))
        (then
          (if (i32.ne (i32.load8_u (i32.add (local.get $at) (local.get $i)))
                      (i32.load8_u (i32.add (global.get $input) (local.get $i))))
            (then (return (i32.const 0))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $each))))
    (i32.const 1))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (global.set $input (local.get $ptr))
    (global.set $input_len (local.get $len))
    ;; nothing is allocated during a job, so the heap can be rewound now
    (global.set $next (global.get $heap_base))
    (if (call $is (i32.const 256) (i32.const 13))
      (then (call $return_result (global.get $BAD) (global.get $BAD_LEN) (local.get $ident)) (return)))
    (if (call $is (i32.const 288) (i32.const 12))
      (then (call $return_error (i32.const 500) (global.get $BAD) (global.get $BAD_LEN) (local.get $ident)) (return)))
    (if (call $is (i32.const 320) (i32.const 12))
      (then (call $return_abort (global.get $BAD) (global.get $BAD_LEN) (global.get $BAD) (global.get $BAD_LEN) (i32.const 1) (i32.const 1) (local.get $ident)) (return)))
    (if (call $is (i32.const 352) (i32.const 7))
      (then (call $log_msg (global.get $BAD) (global.get $BAD_LEN) (i32.const 3) (local.get $ident)) (return)))
    (if (call $is (i32.const 384) (i32.const 15))
      (then (call $resp_set_header (global.get $BAD) (global.get $BAD_LEN) (global.get $BAD) (global.get $BAD_LEN) (local.get $ident)) (return)))
    (if (call $is (i32.const 416) (i32.const 14))
      (then (call $return_decimal (call $get_ffi_result (global.get $BAD) (local.get $ident)) (local.get $ident)) (return)))
    (if (call $is (i32.const 448) (i32.const 11))
      (then (call $return_decimal (call $add_ffi_var (global.get $BAD) (global.get $BAD_LEN) (global.get $BAD) (global.get $BAD_LEN) (local.get $ident)) (local.get $ident)) (return)))
    (if (call $is (i32.const 480) (i32.const 17))
      (then (call $return_decimal (call $request_get_field (i32.const 1) (global.get $BAD) (global.get $BAD_LEN) (local.get $ident)) (local.get $ident)) (return)))
    (if (call $is (i32.const 512) (i32.const 17))
      (then (call $return_decimal (call $request_set_field (i32.const 1) (global.get $BAD) (global.get $BAD_LEN) (global.get $BAD) (global.get $BAD_LEN) (local.get $ident)) (local.get $ident)) (return)))
    (if (call $is (i32.const 544) (i32.const 9))
      (then (call $return_decimal (call $cache_set (global.get $BAD) (global.get $BAD_LEN) (global.get $BAD) (global.get $BAD_LEN) (i32.const 0) (local.get $ident)) (local.get $ident)) (return)))
    (if (call $is (i32.const 576) (i32.const 9))
      (then (call $return_decimal (call $cache_get (global.get $BAD) (global.get $BAD_LEN) (local.get $ident)) (local.get $ident)) (return)))
    (if (call $is (i32.const 608) (i32.const 9))
      (then (call $return_decimal (call $fetch_url (i32.const 0) (global.get $BAD) (global.get $BAD_LEN) (global.get $BAD) (global.get $BAD_LEN) (local.get $ident)) (local.get $ident)) (return)))
    (if (call $is (i32.const 640) (i32.const 13))
      (then (call $return_decimal (call $graphql_query (global.get $BAD) (global.get $BAD_LEN) (global.get $BAD) (global.get $BAD_LEN) (local.get $ident)) (local.get $ident)) (return)))
    (if (call $is (i32.const 672) (i32.const 15))
      (then (call $return_decimal (call $get_static_file (global.get $BAD) (global.get $BAD_LEN) (local.get $ident)) (local.get $ident)) (return)))
    (if (call $is (i32.const 704) (i32.const 7))
      (then (call $return_decimal (call $db_exec (i32.const 1) (global.get $BAD) (global.get $BAD_LEN) (local.get $ident)) (local.get $ident)) (return)))
    (if (call $is (i32.const 736) (i32.const 7))
      (then (call $return_result (i32.const 1024) (i32.const -1) (local.get $ident)) (return)))
    (if (call $is (i32.const 768) (i32.const 8))
      (then (call $return_result (i32.const 0x7FFFFFF0) (i32.const 100) (local.get $ident)) (return)))
    (if (call $is (i32.const 800) (i32.const 10))
      (then (call $return_result (i32.sub (i32.shl (memory.size) (i32.const 16)) (i32.const 4)) (i32.const 100) (local.get $ident)) (return)))
    (call $return_error (i32.const 400) (i32.const 128) (i32.const 16) (local.get $ident)))
)
