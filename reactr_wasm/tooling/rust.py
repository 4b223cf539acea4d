"""Rust runnables: a folder with ``lib.rs`` built against the ``suborbital`` SDK (``sdk/rust/``).

No cargo and no crates.io: the SDK is compiled to an rlib, cached by content and compiler,
then linked into the runnable, a ``cdylib``. The rustc is the first one with the wasm32 std
(``rustc.py``: ``REACTR_RUSTC``, ``RUSTC``, PATH, rustup's, Debian's). ``//! build-target:
wasm32-wasi`` in ``lib.rs`` picks the target (default ``wasm32-unknown-unknown``). A folder
with a ``Cargo.toml`` is a Cargo project instead (``cargo.py``).

Builds are reproducible: the same sources and rustc give the same bytes whatever folder they
sit in, because every local path is remapped (``--remap-path-prefix``) before it can reach the
module (panic locations); the compiler's messages get the real paths back (``relocate``).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

from reactr_wasm.tooling import cargo
from reactr_wasm.tooling.base import BuildFailed, Language, Progress, ToolchainMissing, relocate, sdk_dir
from reactr_wasm.tooling.rustc import Rustc, check_linker, find_cargo, find_rustc

TARGETS = ("wasm32-unknown-unknown", "wasm32-wasi", "wasm32-wasip1")
DEFAULT_TARGET = TARGETS[0]
COMPILE_TIMEOUT = 600.0  # seconds; a normal runnable takes about one

_COMMON = ["--edition", "2021", "-C", "opt-level=s", "-C", "panic=abort"]
_RUNNABLE = ["--crate-type", "cdylib", "-C", "lto", "-C", "strip=symbols", *_COMMON]
_SDK = ["--crate-type", "rlib", "--crate-name", "suborbital", *_COMMON]
_TARGET_LINE = re.compile(r"^//!\s*build-target:\s*(\S*)", re.MULTILINE)
SDK_PREFIX = "suborbital"  # what the SDK's folder is remapped to


# --- toolchain --------------------------------------------------------------------------------


def check_toolchain() -> None:
    """Raises ToolchainMissing unless a rustc with the default target's std and rust-lld exist."""
    check_linker(find_rustc(DEFAULT_TARGET))


def check_cargo_toolchain() -> None:
    """``check_toolchain``, and a cargo to go with the rustc (for Cargo projects)."""
    rustc = find_rustc(DEFAULT_TARGET)
    check_linker(rustc)
    find_cargo(rustc)


def _toolchain(target: str) -> Rustc:
    rustc = find_rustc(target)
    check_linker(rustc)
    return rustc


# --- sources ----------------------------------------------------------------------------------


def detect(folder: Path) -> bool:
    """A plain ``lib.rs``, or a Cargo project."""
    return (folder / "lib.rs").is_file() or cargo.detect(folder)


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
//! {name}: a starter runnable. Build it with `reactr-wasm build {name}`. It uses reactr-wasm's
//! `suborbital` crate (sdk/rust/README.md in reactr-wasm lists every function).{wasi}

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


WASI_NOTE = "\n//! To build for WASI instead, add a line `//! build-target: wasm32-wasi` here."


def scaffold(name: str, folder: Path) -> None:
    """Writes ``lib.rs``: an echo runnable named ``name``, with comments."""
    (folder / "lib.rs").write_text(STARTER.format(name=name, type_name=_type_name(name), wasi=WASI_NOTE))


def scaffold_cargo(name: str, folder: Path) -> None:
    """Writes a Cargo project: ``Cargo.toml`` (the SDK as a path dependency) and ``src/lib.rs``."""
    cargo.write_manifest(name, folder)
    (folder / "src").mkdir()
    (folder / "src" / "lib.rs").write_text(STARTER.format(name=name, type_name=_type_name(name), wasi=""))


# --- build ------------------------------------------------------------------------------------


def _compile(rustc: Rustc, args: list[str], what: str) -> str:
    """Runs rustc; answers its stderr (warnings) or raises BuildFailed with it."""
    try:
        done = subprocess.run(
            [str(rustc.path), *args], capture_output=True, text=True, errors="replace", timeout=COMPILE_TIMEOUT
        )
    except subprocess.TimeoutExpired as error:
        raise BuildFailed(f"{what}: rustc did not finish within {COMPILE_TIMEOUT:.0f} s") from error
    except OSError as error:
        raise ToolchainMissing(f"{rustc.path} does not run ({error})") from error
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


def _sdk_key(sdk: Path, rustc: Rustc) -> str:
    """A digest of everything the SDK rlib depends on: its sources, the target, rustc, the flags."""
    digest = hashlib.sha256()
    for part in (rustc.version, rustc.target, " ".join(_SDK)):
        digest.update(part.encode() + b"\0")
    for path in sorted(sdk.rglob("*.rs")):
        digest.update(path.relative_to(sdk).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


def sdk_rlib(rustc: Rustc, progress: Progress) -> Path:
    """The SDK compiled by ``rustc``, built once per SDK content and compiler, reused from the cache."""
    sdk = sdk_dir("rust")
    final = _cache_root() / _sdk_key(sdk, rustc) / "libsuborbital.rlib"
    if final.is_file():
        return final
    progress(f"compiling the suborbital SDK (rust, {rustc.target}, rustc {rustc.release} at {rustc.path})")
    final.parent.mkdir(parents=True, exist_ok=True)
    # Built in a private folder and renamed: concurrent builds never see a half-written rlib.
    with tempfile.TemporaryDirectory(dir=final.parent) as scratch:
        partial = Path(scratch) / "libsuborbital.rlib"
        # Remapped so the rlib (and any panic location it passes on) names `suborbital/...`.
        remap = f"--remap-path-prefix={sdk.resolve()}={SDK_PREFIX}"
        args = [*_SDK, "--target", rustc.target, remap, "-o", str(partial), str(sdk / "src" / "lib.rs")]
        try:
            _compile(rustc, args, "the rust SDK")
        except BuildFailed as error:
            raise BuildFailed(relocate(str(error), SDK_PREFIX, sdk)) from None
        os.replace(partial, final)
    return final


def build(src: Path, out: Path, progress: Progress) -> None:
    """Compiles ``src/lib.rs`` (or the Cargo project ``src``) into the module ``out``.

    Raises BuildFailed with the compiler's messages (locations as paths the user can open),
    or ToolchainMissing.
    """
    if cargo.detect(src):
        cargo.build(src, out, progress, rustc=_toolchain(DEFAULT_TARGET))
        return
    lib = src / "lib.rs"
    try:
        source = lib.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BuildFailed(f"{lib}: cannot read the runnable's source ({error})") from error
    rustc = _toolchain(build_target(source))
    rlib = sdk_rlib(rustc, progress)
    name = crate_name(src)
    progress(f"compiling {src.name} (rust, {rustc.target})")
    shown = src.name if "=" not in src.name else name  # rustc splits FROM=TO at the last '='

    args = [
        *_RUNNABLE,
        "--target", rustc.target,
        "--crate-name", name,
        "--extern", f"suborbital={rlib}",
        f"--remap-path-prefix={src.resolve()}={shown}",
        f"--remap-path-prefix={rlib.parent}={SDK_PREFIX}",
        "-o", str(out),
        str(src.resolve() / "lib.rs"),
    ]  # fmt: skip
    try:
        warnings = _compile(rustc, args, src.name)
    except BuildFailed as error:
        raise BuildFailed(relocate(str(error), shown, src)) from None
    for line in relocate(warnings, shown, src).splitlines():
        progress(line)


RUST = Language(name="rust", detect=detect, scaffold=scaffold, check_toolchain=check_toolchain, build=build)
# What `new --lang rust --cargo` writes and checks; `build` recognises both layouts as RUST.
RUST_CARGO = replace(RUST, scaffold=scaffold_cargo, check_toolchain=check_cargo_toolchain)
