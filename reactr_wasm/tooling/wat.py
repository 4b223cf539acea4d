"""Hand-written WAT runnables: a folder holding one ``.wat`` file.

Assembled with wabt's ``wat2wasm`` when it is on PATH, else with the wasmtime
package's ``wat2wasm`` (always installed). The two differ in one way: wasmtime
keeps a ``name`` section, so ``build --check`` compares like with like only when
the committed module was made by the same assembler (``scripts/setup-dev``
installs wabt).

``reactr-wasm new NAME --lang wat`` writes the smallest starter: ``NAME.wat``, which
answers "hello " followed by the input with no SDK and no compiler to install.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from reactr_wasm.tooling.base import BuildFailed, Language, Progress, shown


def detect(folder: Path) -> bool:
    return any(folder.glob("*.wat"))


def _source(folder: Path) -> Path:
    sources = sorted(folder.glob("*.wat"))
    if len(sources) != 1:
        names = ", ".join(path.name for path in sources)
        raise BuildFailed(f"{folder} holds {len(sources)} .wat files ({names}); a WAT runnable is one file")
    return sources[0]


STARTER = """\
;; {name}: a starter runnable in WebAssembly text. Answers "hello " followed by the input;
;; empty input is an error (HTTP 400). Build it with `reactr-wasm build {name}`.
;;
;; The host calls allocate(size) for a buffer, copies the job's input there, calls
;; run_e(ptr, len, ident), which answers through return_result or return_error, then
;; deallocate(ptr, size). Memory: a bump allocator, rewound at the end of every job.
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (import "env" "return_error" (func $return_error (param i32 i32 i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 0) "hello ")                       ;; 6 bytes
  (data (i32.const 16) "send some input")             ;; 15 bytes

  (global $heap i32 (i32.const 1024))
  (global $next (mut i32) (i32.const 1024))

  ;; A buffer of $size bytes; the memory grows when needed (a refused growth traps the job).
  (func $allocate (export "allocate") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $next))
    (global.set $next (i32.add (local.get $ptr) (local.get $size)))
    (if (i32.gt_u (global.get $next) (i32.shl (memory.size) (i32.const 16)))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.shr_u (local.get $size) (i32.const 16)) (i32.const 1)))
                    (i32.const -1))
          (then unreachable))))
    (local.get $ptr))

  (func (export "deallocate") (param i32 i32))

  (func (export "run_e") (param $ptr i32) (param $len i32) (param $ident i32)
    (local $out i32)
    (if (i32.eqz (local.get $len))
      (then (call $return_error (i32.const 400) (i32.const 16) (i32.const 15) (local.get $ident)))
      (else
        ;; the answer, after the input: "hello " then the input (the host copies it right away)
        (local.set $out (call $allocate (i32.add (local.get $len) (i32.const 6))))
        (memory.copy (local.get $out) (i32.const 0) (i32.const 6))
        (memory.copy (i32.add (local.get $out) (i32.const 6)) (local.get $ptr) (local.get $len))
        (call $return_result (local.get $out) (i32.add (local.get $len) (i32.const 6)) (local.get $ident))))
    (global.set $next (global.get $heap)))  ;; the next job's input starts at the bottom again
)
"""


def scaffold(name: str, folder: Path) -> None:
    (folder / f"{name}.wat").write_text(STARTER.format(name=name))


def check_toolchain() -> None:
    """Nothing to check: the wasmtime package can always assemble WAT."""


def build(folder: Path, out: Path, progress: Progress) -> None:
    source = _source(folder)
    wat2wasm = shutil.which("wat2wasm")
    if wat2wasm:
        done = subprocess.run([wat2wasm, shown(source), "-o", str(out)], capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildFailed((done.stderr or done.stdout).strip() or f"wat2wasm exited with {done.returncode}")
        return
    import wasmtime

    try:
        binary = wasmtime.wat2wasm(source.read_text())
    except wasmtime.WasmtimeError as error:
        raise BuildFailed(f"{shown(source)}: {str(error).strip()}") from None
    out.write_bytes(bytes(binary))


WAT = Language(name="wat", detect=detect, scaffold=scaffold, check_toolchain=check_toolchain, build=build)
