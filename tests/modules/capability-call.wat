;; capability-call: one host call chosen by the payload, for testing the capability host functions.
;;
;; Payload: [op: 1 byte][n: 1 byte][len1: u32 little-endian][arg1: len1 bytes][arg2: the rest]
;;   op 'f'  fetch_url(method n, url arg1, body arg2)
;;   op 'g'  graphql_query(endpoint arg1, query arg2)
;;   op 's'  get_static_file(name arg1)
;;   op 'd'  db_exec(query type n, name arg1); arg2 holds the variables, each [u32 length][bytes],
;;           passed first through add_ffi_var
;;   op 'c'  cache_get(key arg1)
;; An upper-case op makes the same call with arg1's pointer far outside memory (a hostile guest);
;; len1 is trusted as given, so a huge len1 is a hostile size.
;; Answer: the pending value as the result when the call returned a size >= 0; a pending error
;; as return_error(400, text); -1 and -2 (nothing pending) as the decimal text "-1" / "-2".
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "return_error" (func $return_error (param i32 i32 i32 i32)))
  (import "env" "get_ffi_result" (func $get_ffi_result (param i32 i32) (result i32)))
  (import "env" "add_ffi_var" (func $add_ffi_var (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "fetch_url" (func $fetch_url (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "graphql_query" (func $graphql_query (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "get_static_file" (func $get_static_file (param i32 i32 i32) (result i32)))
  (import "env" "db_exec" (func $db_exec (param i32 i32 i32 i32) (result i32)))
  (import "env" "cache_get" (func $cache_get (param i32 i32 i32) (result i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "var")

  ;; Bump allocator (8-byte aligned, grows memory); run_e rewinds it after each job.
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

  ;; "-1" or "-2" as the result.
  (func $return_code (param $code i32) (param $ident i32)
    (i32.store8 (i32.const 32) (i32.const 45))
    (i32.store8 (i32.const 33) (i32.sub (i32.const 48) (local.get $code)))
    (call $return_result (i32.const 32) (i32.const 2) (local.get $ident)))

  ;; Collects what the call left pending and answers it.
  (func $answer (param $size i32) (param $ident i32)
    (local $buf i32) (local $abs i32)
    (if (i32.ge_s (local.get $size) (i32.const -2))
      (then
        (if (i32.lt_s (local.get $size) (i32.const 0))
          (then (call $return_code (local.get $size) (local.get $ident)) (return)))))
    (local.set $abs (select (i32.sub (i32.const 0) (local.get $size)) (local.get $size)
                            (i32.lt_s (local.get $size) (i32.const 0))))
    (local.set $buf (call $allocate (local.get $abs)))
    (if (call $get_ffi_result (local.get $buf) (local.get $ident))
      (then (call $return_code (i32.const -1) (local.get $ident)) (return)))
    (if (i32.lt_s (local.get $size) (i32.const 0))
      (then (call $return_error (i32.const 400) (local.get $buf) (local.get $abs) (local.get $ident)))
      (else (call $return_result (local.get $buf) (local.get $abs) (local.get $ident)))))

  ;; Passes every [u32 length][bytes] variable in [from, to) to add_ffi_var.
  (func $add_vars (param $at i32) (param $to i32) (param $ident i32)
    (local $len i32)
    (block $done
      (loop $next_var
        (br_if $done (i32.ge_u (i32.add (local.get $at) (i32.const 4)) (i32.add (local.get $to) (i32.const 1))))
        (local.set $len (i32.load align=1 (local.get $at)))
        (drop (call $add_ffi_var (i32.const 16) (i32.const 3) (i32.add (local.get $at) (i32.const 4))
                                 (local.get $len) (local.get $ident)))
        (local.set $at (i32.add (local.get $at) (i32.add (i32.const 4) (local.get $len))))
        (br $next_var))))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $op i32) (local $n i32) (local $len1 i32) (local $arg1 i32) (local $arg2 i32) (local $len2 i32)
    (local $ptr1 i32) (local $size i32)
    (local.set $op (i32.load8_u (local.get $ptr)))
    (local.set $n (i32.load8_u (i32.add (local.get $ptr) (i32.const 1))))
    (local.set $len1 (i32.load align=1 (i32.add (local.get $ptr) (i32.const 2))))
    (local.set $arg1 (i32.add (local.get $ptr) (i32.const 6)))
    (local.set $arg2 (i32.add (local.get $arg1) (local.get $len1)))
    (local.set $len2 (i32.sub (i32.add (local.get $ptr) (local.get $len)) (local.get $arg2)))
    (if (i32.lt_s (local.get $len2) (i32.const 0)) (then (local.set $len2 (i32.const 0))))
    (local.set $ptr1 (local.get $arg1))
    (if (i32.lt_u (local.get $op) (i32.const 97))  ;; upper case: hostile pointer
      (then
        (local.set $ptr1 (i32.const 0xFFFFFFF0))
        (local.set $op (i32.add (local.get $op) (i32.const 32)))))
    (local.set $size (i32.const -1))
    (if (i32.eq (local.get $op) (i32.const 102))  ;; f
      (then (local.set $size (call $fetch_url (local.get $n) (local.get $ptr1) (local.get $len1)
                                              (local.get $arg2) (local.get $len2) (local.get $ident)))))
    (if (i32.eq (local.get $op) (i32.const 103))  ;; g
      (then (local.set $size (call $graphql_query (local.get $ptr1) (local.get $len1)
                                                  (local.get $arg2) (local.get $len2) (local.get $ident)))))
    (if (i32.eq (local.get $op) (i32.const 115))  ;; s
      (then (local.set $size (call $get_static_file (local.get $ptr1) (local.get $len1) (local.get $ident)))))
    (if (i32.eq (local.get $op) (i32.const 100))  ;; d
      (then
        (call $add_vars (local.get $arg2) (i32.add (local.get $arg2) (local.get $len2)) (local.get $ident))
        (local.set $size (call $db_exec (local.get $n) (local.get $ptr1) (local.get $len1) (local.get $ident)))))
    (if (i32.eq (local.get $op) (i32.const 99))  ;; c
      (then (local.set $size (call $cache_get (local.get $ptr1) (local.get $len1) (local.get $ident)))))
    (call $answer (local.get $size) (local.get $ident))
    (global.set $next (global.get $heap_base)))
)
