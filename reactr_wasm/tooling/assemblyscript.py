"""AssemblyScript runnables: a folder holding ``index.ts``, compiled with ``asc``.

The compiler is the ``assemblyscript`` npm package pinned by the guest SDK
(``sdk/assemblyscript/package.json``, installed with ``npm ci``), so every
checkout compiles with the same version. ``import ... from
"@suborbital/suborbital"`` resolves to the SDK through ``--path`` (a scratch
folder holding ``@suborbital/suborbital`` as a link to the SDK), so a runnable's
folder needs no ``node_modules`` of its own.

Builds are byte-identical across rebuilds and checkout locations: asc runs in the
source folder on ``index.ts`` and names SDK files ``~lib/@suborbital/...``, so no
absolute path reaches the module (abort messages carry those names).

Flags, and why:

* ``-O3 --noAssert``: release build; runnables are often CPU-bound (``hash-as``).
* ``--runtime minimal``: TLSF allocator plus a collector that runs only when
  called; the SDK's ``run_e`` collects after every job, when only globals are
  live. ``stub`` never frees (pooled instances grow without bound) and
  ``incremental`` pays for a shadow stack on every call.
* ``--use abort=...``: AssemblyScript's ``abort`` reports through Reactr's
  ``env.return_abort`` (UTF-8) instead of importing ``env.abort`` (UTF-16).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from reactr_wasm.tooling.base import BuildFailed, Language, Progress, ToolchainMissing, sdk_dir, shown

ENTRY = "index.ts"
PACKAGE = "@suborbital/suborbital"
ABORT_HANDLER = f"~lib/{PACKAGE}/assembly/runnable/abortHandler"
COMPILE_TIMEOUT = 300  # seconds; asc takes ~2 s per runnable

_LOCATION = re.compile(r"^(\s*└─ in )(?![~/])", re.MULTILINE)  # not ~lib/ (the SDK, the std library)
ASC_FLAGS = ("-O3", "--noAssert", "--runtime", "minimal", "--noColors", "--use", f"abort={ABORT_HANDLER}")

STARTER = """\
// {name}: a starter runnable. Answers "hello " followed by the input.
// Build it with `reactr-wasm build {name}`; the SDK's API is in sdk/assemblyscript/README.md.
import {{ logInfo, returnError, useRunnable }} from "@suborbital/suborbital";

// The exports the host calls (allocate, deallocate, run_e) come from the SDK;
// its run_e calls the function given to useRunnable below.
export {{ allocate, deallocate, run_e }} from "@suborbital/suborbital";

function run(input: ArrayBuffer): ArrayBuffer {{
  const name = String.UTF8.decode(input);
  if (name.length == 0) {{
    // The job fails with {{"code":400,"message":"..."}}: HTTP status 400.
    return returnError(400, "send a name as the input");
  }}
  logInfo("greeting " + name); // the host's log, tagged with the job
  return String.UTF8.encode("hello " + name);
}}

useRunnable(run);
"""


def detect(folder: Path) -> bool:
    return (folder / ENTRY).is_file()


def scaffold(name: str, folder: Path) -> None:
    (folder / ENTRY).write_text(STARTER.format(name=name))


def _sdk() -> Path:
    return sdk_dir("assemblyscript")


def _asc(sdk: Path) -> Path:
    return sdk / "node_modules" / ".bin" / "asc"


def check_toolchain() -> None:
    if shutil.which("node") is None:
        raise ToolchainMissing("AssemblyScript needs Node.js, which is not on PATH: apt-get install -y nodejs npm")
    sdk = _sdk()
    if not _asc(sdk).exists():
        raise ToolchainMissing(
            f"the AssemblyScript compiler is not installed at {_asc(sdk)}; install the SDK's "
            f"pinned compiler: npm ci --prefix {sdk.resolve()}"
        )


def asc_command(source: Path, out: Path, packages: Path, *, runtime: str = "minimal") -> list[str]:
    """The asc command line that compiles ``source/index.ts`` into ``out`` (run with cwd = ``source``)."""
    node = shutil.which("node") or "node"
    flags = list(ASC_FLAGS)
    flags[flags.index("minimal")] = runtime
    return [node, str(_asc(_sdk())), ENTRY, *flags, "--path", str(packages), "-o", str(out.absolute())]


def compile_runnable(source: Path, out: Path, *, runtime: str = "minimal") -> None:
    """Compile ``source/index.ts`` into ``out``; raises BuildFailed with asc's output.

    ``runtime`` exists for tests that compare AssemblyScript runtimes; builds use ``minimal``.
    """
    check_toolchain()
    if not detect(source):
        raise BuildFailed(f"{source}: no {ENTRY}, the entry file of an AssemblyScript runnable")
    with tempfile.TemporaryDirectory(prefix="reactr-asc-") as scratch:
        packages = Path(scratch)
        (packages / "@suborbital").mkdir()
        (packages / PACKAGE).symlink_to(_sdk().resolve(), target_is_directory=True)
        try:
            done = subprocess.run(
                asc_command(source, out, packages, runtime=runtime),
                cwd=source,
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise BuildFailed(f"{source}: asc did not finish within {COMPILE_TIMEOUT} s") from None
    output = "\n".join(part.strip() for part in (done.stdout, done.stderr) if part.strip())
    # asc names the runnable's files relative to its folder ("in index.ts(2,16)"): show openable paths.
    output = _LOCATION.sub(lambda match: f"{match[1]}{shown(source)}/", output)
    if done.returncode != 0:
        raise BuildFailed(output or f"asc exited with {done.returncode}")
    if not out.is_file():
        raise BuildFailed(output or f"asc wrote no module at {out}")


def build(folder: Path, out: Path, progress: Progress) -> None:
    progress(f"compiling {folder.name} (assemblyscript)")
    compile_runnable(folder, out)


ASSEMBLYSCRIPT = Language(
    name="assemblyscript", detect=detect, scaffold=scaffold, check_toolchain=check_toolchain, build=build
)
