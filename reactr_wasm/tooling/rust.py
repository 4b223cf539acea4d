"""Rust runnables: a folder with ``lib.rs`` built against the ``suborbital`` SDK in ``sdk/rust/``.

Uses Debian's ``/usr/bin/rustc`` (the rustup one that may come first on PATH has no wasm32
std) and no crates.io: the SDK is compiled to an rlib, cached by content, then linked into
the runnable, a ``cdylib``. ``//! build-target: wasm32-wasi`` in ``lib.rs`` picks the target
(default ``wasm32-unknown-unknown``).

Builds are reproducible: the same sources give the same bytes whatever folder they sit in,
because every local path is remapped (``--remap-path-prefix``) before it can reach the module
(panic locations) or the compiler's messages.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .base import BuildFailed, Language, Progress, ToolchainMissing, sdk_dir

RUSTC = Path("/usr/bin/rustc")
INSTALL = "apt-get install -y rustc libstd-rust-dev-wasm32 lld-14"
TARGETS = ("wasm32-unknown-unknown", "wasm32-wasi")
DEFAULT_TARGET = TARGETS[0]
COMPILE_TIMEOUT = 600.0  # seconds; a normal runnable takes about one

_COMMON = ["--edition", "2021", "-C", "opt-level=s", "-C", "panic=abort"]
_RUNNABLE = ["--crate-type", "cdylib", "-C", "lto", "-C", "strip=symbols", *_COMMON]
_SDK = ["--crate-type", "rlib", "--crate-name", "suborbital", *_COMMON]
_TARGET_LINE = re.compile(r"^//!\s*build-target:\s*(\S*)", re.MULTILINE)


# --- toolchain --------------------------------------------------------------------------------


def _rustc(*args: str) -> str:
    """stdout of ``rustc ARGS`` for a query like ``--print sysroot``."""
    try:
        done = subprocess.run([str(RUSTC), *args], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        raise ToolchainMissing(f"{RUSTC} does not run ({error}); install Debian's Rust with: {INSTALL}") from error
    return done.stdout.strip()


def _check(targets: tuple[str, ...]) -> None:
    if not os.access(RUSTC, os.X_OK):
        raise ToolchainMissing(f"{RUSTC} not found (the rustup rustc has no wasm32 std); install it with: {INSTALL}")
    sysroot = Path(_rustc("--print", "sysroot"))
    for target in targets:
        if not (sysroot / "lib" / "rustlib" / target / "lib").is_dir():
            raise ToolchainMissing(f"no Rust std for {target} under {sysroot}; install it with: {INSTALL}")
    host = next((line.split()[1] for line in _rustc("-vV").splitlines() if line.startswith("host:")), "")
    bundled = sysroot / "lib" / "rustlib" / host / "bin" / "rust-lld"
    if shutil.which("rust-lld") is None and not os.access(bundled, os.X_OK):
        raise ToolchainMissing(f"rust-lld (the wasm linker rustc calls) not found; install it with: {INSTALL}")


def check_toolchain() -> None:
    """Raises ToolchainMissing unless rustc, the wasm32 std of every target and rust-lld exist."""
    _check(TARGETS)


# --- sources ----------------------------------------------------------------------------------


def detect(folder: Path) -> bool:
    return (folder / "lib.rs").is_file()


def build_target(source: str) -> str:
    """The target named by the first ``//! build-target:`` line, or the default one."""
    found = _TARGET_LINE.search(source)
    if found is None:
        return DEFAULT_TARGET
    target = found.group(1)
    if target not in TARGETS:
        raise BuildFailed(f"lib.rs: build-target {target!r} is not one of {', '.join(TARGETS)}")
    return target


def crate_name(folder: Path) -> str:
    """The folder's name as a Rust crate name (``hello-echo`` -> ``hello_echo``)."""
    name = re.sub(r"\W", "_", folder.name.lower(), flags=re.ASCII)
    return name if name[:1].isalpha() or name[:1] == "_" else f"r_{name}"


def _type_name(name: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name)
    type_name = "".join(word[:1].upper() + word[1:] for word in words)
    return type_name if type_name[:1].isalpha() else f"Runnable{type_name}"


STARTER = """\
//! {name}: a starter runnable. Build it with `reactr-wasm build`; the SDK it uses is
//! `sdk/rust/` (see its README for every function). To build for WASI instead, add a line
//! `//! build-target: wasm32-wasi` here.

use suborbital::runnable::{{RunErr, Runnable}};
use suborbital::{{log, util}};

struct {type_name};

impl Runnable for {type_name} {{
    /// Called once per job with the job's input; the bytes returned are the job's result.
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> {{
        if input.is_empty() {{
            // An error has a code (the HTTP status when it is 400-599) and a message.
            return Err(RunErr::new(400, "send some input"));
        }}
        let text = util::to_string(input);
        log::info(&format!("{name} got {{}} bytes", text.len()));
        Ok(format!("hello {{}}", text).into_bytes())
    }}
}}

// Exports `_start`, which hands the runnable to the SDK when the host loads the module.
suborbital::register_runnable!({type_name});
"""


def scaffold(name: str, folder: Path) -> None:
    """Writes ``lib.rs``: an echo runnable named ``name``, with comments."""
    (folder / "lib.rs").write_text(STARTER.format(name=name, type_name=_type_name(name)))


# --- build ------------------------------------------------------------------------------------


def _compile(args: list[str], what: str) -> str:
    """Runs rustc; answers its stderr (warnings) or raises BuildFailed with it."""
    try:
        done = subprocess.run(
            [str(RUSTC), *args], capture_output=True, text=True, errors="replace", timeout=COMPILE_TIMEOUT
        )
    except subprocess.TimeoutExpired as error:
        raise BuildFailed(f"{what}: rustc did not finish within {COMPILE_TIMEOUT:.0f} s") from error
    except OSError as error:
        raise ToolchainMissing(f"{RUSTC} does not run ({error}); install Debian's Rust with: {INSTALL}") from error
    if done.returncode != 0:
        raise BuildFailed(done.stderr.strip() or f"{what}: rustc failed with exit code {done.returncode}")
    return done.stderr.strip()


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    root = Path(base) / "reactr-wasm" / "rust-sdk"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    root = Path(tempfile.gettempdir()) / f"reactr-wasm-rust-sdk-{os.getuid()}"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _sdk_key(sdk: Path, target: str) -> str:
    """A digest of everything the SDK rlib depends on: its sources, the target, rustc, the flags."""
    digest = hashlib.sha256()
    for part in (_rustc("-vV"), target, " ".join(_SDK)):
        digest.update(part.encode() + b"\0")
    for path in sorted(sdk.rglob("*.rs")):
        digest.update(path.relative_to(sdk).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def sdk_rlib(target: str, progress: Progress) -> Path:
    """The SDK compiled for ``target``, built once per SDK content and reused from the cache."""
    sdk = sdk_dir("rust")
    final = _cache_root() / _sdk_key(sdk, target) / "libsuborbital.rlib"
    if final.is_file():
        return final
    progress(f"compiling the suborbital SDK (rust, {target})")
    final.parent.mkdir(parents=True, exist_ok=True)
    # Built in a private folder and renamed: concurrent builds never see a half-written rlib.
    with tempfile.TemporaryDirectory(dir=final.parent) as scratch:
        partial = Path(scratch) / "libsuborbital.rlib"
        # Remapped so the rlib (and any panic location it passes on) names `suborbital/...`.
        remap = f"--remap-path-prefix={sdk.resolve()}=suborbital"
        _compile([*_SDK, "--target", target, remap, "-o", str(partial), str(sdk / "src" / "lib.rs")], "the rust SDK")
        os.replace(partial, final)
    return final


def build(src: Path, out: Path, progress: Progress) -> None:
    """Compiles ``src/lib.rs`` into the module ``out``; raises BuildFailed or ToolchainMissing."""
    lib = src / "lib.rs"
    try:
        source = lib.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BuildFailed(f"{lib}: cannot read the runnable's source ({error})") from error
    target = build_target(source)
    _check((target,))
    rlib = sdk_rlib(target, progress)
    name = crate_name(src)
    progress(f"compiling {src.name} (rust, {target})")
    shown = src.name if "=" not in src.name else name  # rustc splits FROM=TO at the last '='

    args = [
        *_RUNNABLE,
        "--target", target,
        "--crate-name", name,
        "--extern", f"suborbital={rlib}",
        f"--remap-path-prefix={src.resolve()}={shown}",
        f"--remap-path-prefix={rlib.parent}=suborbital",
        "-o", str(out),
        str(src.resolve() / "lib.rs"),
    ]  # fmt: skip
    warnings = _compile(args, src.name)
    for line in warnings.splitlines():
        progress(line)


RUST = Language(name="rust", detect=detect, scaffold=scaffold, check_toolchain=check_toolchain, build=build)
