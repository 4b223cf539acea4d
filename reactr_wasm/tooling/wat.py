"""Hand-written WAT runnables: a folder holding one ``.wat`` file.

Assembled with wabt's ``wat2wasm`` when it is on PATH, else with the wasmtime
package's ``wat2wasm`` (always installed). The two differ in one way: wasmtime
keeps a ``name`` section, so ``build --check`` compares like with like only when
the committed module was made by the same assembler (``scripts/setup-dev``
installs wabt).

There is no starter: ``reactr-wasm new`` offers the languages with an SDK.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from reactr_wasm.errors import ReactrError

from .base import BuildFailed, Language, Progress


def _detect(folder: Path) -> bool:
    return any(folder.glob("*.wat"))


def _source(folder: Path) -> Path:
    sources = sorted(folder.glob("*.wat"))
    if len(sources) != 1:
        names = ", ".join(path.name for path in sources)
        raise BuildFailed(f"{folder} holds {len(sources)} .wat files ({names}); a WAT runnable is one file")
    return sources[0]


def _scaffold(name: str, folder: Path) -> None:
    raise ReactrError("WAT has no starter runnable: write one NAME.wat file (see runnables/src/echo-wat)")


def _check_toolchain() -> None:
    """Nothing to check: the wasmtime package can always assemble WAT."""


def _build(folder: Path, out: Path, progress: Progress) -> None:
    source = _source(folder)
    wat2wasm = shutil.which("wat2wasm")
    if wat2wasm:
        done = subprocess.run([wat2wasm, str(source), "-o", str(out)], capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildFailed((done.stderr or done.stdout).strip() or f"wat2wasm exited with {done.returncode}")
        return
    import wasmtime

    try:
        binary = wasmtime.wat2wasm(source.read_text())
    except wasmtime.WasmtimeError as error:
        raise BuildFailed(f"{source}: {str(error).strip()}") from None
    out.write_bytes(bytes(binary))


WAT = Language(name="wat", detect=_detect, scaffold=_scaffold, check_toolchain=_check_toolchain, build=_build)
