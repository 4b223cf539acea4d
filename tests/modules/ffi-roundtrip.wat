;; ffi-roundtrip: exercises the FFI-result protocol through the shared cache:
;;   cache_set("k", input, ttl 0)          must return 0
;;   size = cache_get("k")                 must be >= 0 (a value of size bytes is pending)
;;   get_ffi_result(allocate(size))        must return 0 and write exactly the value
;; and answers the collected bytes, i.e. the input. If a step fails the job answers that step's
;; return code in decimal instead (e.g. "-2" for a disabled cache, "-13" for a miss), so a test
;; can see which code the host produced. A correct host answers the input unchanged.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "cache_set" (func $cache_set (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "cache_get" (func $cache_get (param i32 i32 i32) (result i32)))
  (import "env" "get_ffi_result" (func $get_ffi_result (param i32 i32) (result i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "k")

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

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $code i32) (local $size i32) (local $value i32)
    (block $failed
      (local.set $code (call $cache_set (i32.const 16) (i32.const 1) (local.get $ptr) (local.get $len)
                                        (i32.const 0) (local.get $ident)))
      (br_if $failed (local.get $code))
      (local.set $size (call $cache_get (i32.const 16) (i32.const 1) (local.get $ident)))
      (local.set $code (local.get $size))
      (br_if $failed (i32.lt_s (local.get $size) (i32.const 0)))
      (local.set $value (call $allocate (local.get $size)))
      (local.set $code (call $get_ffi_result (local.get $value) (local.get $ident)))
      (br_if $failed (local.get $code))
      (call $return_result (local.get $value) (local.get $size) (local.get $ident))
      (global.set $next (global.get $heap_base))
      (return))
    (call $return_decimal (local.get $code) (local.get $ident))
    (global.set $next (global.get $heap_base)))
)
