;; scribble: each job reports what the instance's memory and table hold, then changes them.
;; The answer is 5 bytes: the byte at 0x100 (0 at start), the byte at 0x20100 (0 at start,
;; past the first 64 KiB), the byte at 0x200 (the data segment's "A"), "f" or "g" from the
;; function in table slot 0 (the element segment's $f), and the memory's size in pages (3). Then each job bumps both counters,
;; overwrites the "A" with "Z", grows memory by one page and puts $g in slot 0. A fresh
;; instance per job must answer "\00\00Af\03" every time; a reused one sees its last job's writes.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))

  (memory (export "memory") 3)
  (data (i32.const 0x200) "A")
  (table 1 funcref)
  (elem (i32.const 0) $f)
  (type $letter (func (result i32)))
  (func $f (result i32) (i32.const 0x66))
  (func $g (result i32) (i32.const 0x67))
  (elem declare func $g)

  (func (export "allocate") (param $size i32) (result i32) (i32.const 0x1000))
  (func (export "deallocate") (param i32 i32))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (i32.store8 (i32.const 0x800) (i32.load8_u (i32.const 0x100)))
    (i32.store8 (i32.const 0x801) (i32.load8_u (i32.const 0x20100)))
    (i32.store8 (i32.const 0x802) (i32.load8_u (i32.const 0x200)))
    (i32.store8 (i32.const 0x803) (call_indirect (type $letter) (i32.const 0)))
    (i32.store8 (i32.const 0x804) (memory.size))
    (i32.store8 (i32.const 0x100) (i32.add (i32.load8_u (i32.const 0x100)) (i32.const 1)))
    (i32.store8 (i32.const 0x20100) (i32.add (i32.load8_u (i32.const 0x20100)) (i32.const 1)))
    (i32.store8 (i32.const 0x200) (i32.const 0x5a))
    (drop (memory.grow (i32.const 1)))
    (table.set (i32.const 0) (ref.func $g))
    (call $return_result (i32.const 0x800) (i32.const 5) (local.get $ident)))
)
