"""Rust runnables as Cargo projects: a ``Cargo.toml`` in ``runnables/src/NAME/``.

Built with ``cargo build --offline --release --target wasm32-unknown-unknown`` in the
project's folder (so its ``.cargo/config.toml``, e.g. vendored sources, applies), with
``RUSTC`` set to the rustc ``rustc.py`` found and the ``cargo`` beside it. Dependencies must
be reachable offline: path dependencies (the ``suborbital`` SDK is one) or vendored crates.
The ``cdylib`` artefact cargo reports is copied to the scratch module the caller renames.

Unlike the plain ``lib.rs`` builds, the bytes are cargo's: reproducible for one folder and
toolchain, but paths of dependencies outside the project may reach panic messages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

from reactr_wasm.tooling.base import BuildFailed, Progress, ToolchainMissing, relocate, sdk_dir, shown
from reactr_wasm.tooling.rustc import Rustc, find_cargo

MANIFEST = "Cargo.toml"
COMPILE_TIMEOUT = 900.0  # seconds; a cold build with a few crates

MANIFEST_TEMPLATE = """\
# {name}: a runnable; `reactr-wasm build {name}` runs cargo build --offline --release
# --target wasm32-unknown-unknown here and copies the module to NAME.wasm.
[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]  # a WebAssembly module with the SDK's exports
path = "src/lib.rs"

[dependencies]
# The suborbital SDK of the reactr-wasm that wrote this file (`reactr-wasm new`). Builds are
# offline: add path dependencies, or vendored crates (`cargo vendor` and .cargo/config.toml).
suborbital = {{ path = {sdk} }}

[profile.release]
opt-level = "s"
lto = true
panic = "abort"
strip = "symbols"

[workspace]  # its own workspace, even inside another Cargo project
"""


def detect(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def sdk_path_for(folder: Path) -> str:
    """The SDK's folder as ``folder``'s Cargo.toml should name it: relative when they share a parent."""
    sdk = sdk_dir("rust").resolve()
    here = folder.resolve()
    if os.path.commonpath([sdk, here]) == here.anchor:
        return str(sdk)
    return os.path.relpath(sdk, here)


def write_manifest(name: str, folder: Path) -> None:
    """Writes ``folder/Cargo.toml`` and ``.gitignore`` for ``name``; raises ToolchainMissing without the SDK."""
    sdk = json.dumps(sdk_path_for(folder))  # a JSON string is a TOML basic string
    (folder / MANIFEST).write_text(MANIFEST_TEMPLATE.format(name=name, sdk=sdk))
    (folder / ".gitignore").write_text("/target\n")


def _check_sdk_path(folder: Path) -> None:
    """Raises BuildFailed when the manifest's ``suborbital`` path dependency points nowhere.

    The path is written once by ``new``; after the SDK moved (another venv, another machine)
    cargo's own error does not say where the SDK is now.
    """
    manifest = folder / MANIFEST
    try:
        dependency = tomllib.loads(manifest.read_text(encoding="utf-8")).get("dependencies", {}).get("suborbital")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return  # cargo reports it, with the line
    if not isinstance(dependency, dict) or not isinstance(dependency.get("path"), str):
        return
    if not (folder / dependency["path"] / MANIFEST).is_file():
        raise BuildFailed(
            f"{shown(manifest)}: the suborbital dependency's path {dependency['path']!r} holds no crate; "
            f"this reactr-wasm's SDK is at {sdk_dir('rust').resolve()}: write "
            f"suborbital = {{ path = {json.dumps(sdk_path_for(folder))} }}"
        )


def _command(cargo: Path, rustc: Rustc) -> list[str]:
    return [
        str(cargo), "build", "--offline", "--release", "--quiet",
        "--target", rustc.target, "--message-format", "json-render-diagnostics",
    ]  # fmt: skip


def _artefact(stdout: str, manifest: Path) -> Path | None:
    """The ``.wasm`` cargo built for the package of ``manifest``, from its JSON messages."""
    for line in stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("reason") != "compiler-artifact" or Path(message.get("manifest_path", "")) != manifest:
            continue
        if "cdylib" in message.get("target", {}).get("kind", []):
            return next((Path(name) for name in message.get("filenames", []) if name.endswith(".wasm")), None)
    return None


def build(folder: Path, out: Path, progress: Progress, *, rustc: Rustc) -> None:
    """Builds the Cargo project ``folder`` with ``rustc`` and copies its module to ``out``.

    Raises BuildFailed with cargo's messages (locations as openable paths) or ToolchainMissing.
    """
    cargo = find_cargo(rustc)
    _check_sdk_path(folder)
    progress(f"compiling {folder.name} (rust, cargo, {rustc.target})")
    env = {**os.environ, "RUSTC": str(rustc.path)}
    try:
        done = subprocess.run(
            _command(cargo, rustc), cwd=folder, env=env, capture_output=True, text=True, errors="replace",
            timeout=COMPILE_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise BuildFailed(f"{folder.name}: cargo did not finish within {COMPILE_TIMEOUT:.0f} s") from error
    except OSError as error:
        raise ToolchainMissing(f"{cargo} does not run ({error})") from error
    messages = relocate(done.stderr.strip(), "", folder)  # cargo shows the package's files relative to it
    if done.returncode != 0:
        raise BuildFailed(messages or f"{folder.name}: cargo failed with exit code {done.returncode}")
    module = _artefact(done.stdout, (folder / MANIFEST).resolve())
    if module is None:
        raise BuildFailed(
            f"{shown(folder / MANIFEST)}: cargo built no .wasm module; a runnable is a library with "
            '[lib] crate-type = ["cdylib"]'
        )
    shutil.copyfile(module, out)
    for line in messages.splitlines():
        progress(line)
