"""Which rustc ``reactr-wasm build`` uses: REACTR_RUSTC, RUSTC, then the first with the wasm32 std.

The rustc binaries here are real: small scripts that log their arguments and run Debian's
rustc, either as it is (it has the wasm32 std) or with an empty ``--sysroot`` (a rustc
without the wasm32 std, like rustup's before ``rustup target add``). Builds run as
``reactr-wasm build`` subprocesses with PATH and CARGO_HOME pointing at them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from reactr_wasm.tooling import rustc
from reactr_wasm.tooling.base import ToolchainMissing
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not rustc.DEBIAN_RUSTC.exists(), reason=f"needs Debian's rustc ({rustc.APT_INSTALL})")

SOURCE = """\
use suborbital::runnable::{RunErr, Runnable};
struct Hello;
impl Runnable for Hello {
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, RunErr> { Ok([b"hi ".as_slice(), &input].concat()) }
}
suborbital::register_runnable!(Hello);
"""
APT_FIX = "rustup target add wasm32-unknown-unknown, or: apt-get install -y rustc libstd-rust-dev-wasm32 lld-14"


def fake_rustc(folder: Path, *, std: bool = True) -> Path:
    """A real rustc (Debian's) behind a script that logs each call to ``folder/calls``; without std: no sysroot."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "rustc"
    sysroot = "" if std else " --sysroot /nonexistent-sysroot"
    script.write_text(f'#!/bin/sh\necho "$*" >> {folder}/calls\nexec {rustc.DEBIAN_RUSTC}{sysroot} "$@"\n')
    script.chmod(0o755)
    return script


def calls(rustc_path: Path) -> list[str]:
    log = rustc_path.parent / "calls"
    return log.read_text().splitlines() if log.exists() else []


def compiled(rustc_path: Path) -> bool:
    """Did this rustc compile something (not only answer probes)?"""
    return any("--crate-type" in line for line in calls(rustc_path))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A runnables folder with two Rust runnables, ``a`` and ``b``."""
    for name in ("a", "b"):
        (tmp_path / "runnables" / "src" / name).mkdir(parents=True)
        (tmp_path / "runnables" / "src" / name / "lib.rs").write_text(SOURCE)
    return tmp_path / "runnables"


def env(tmp_path: Path, path: list[Path], **extra: str) -> dict[str, str]:
    """The environment of a build: PATH = ``path`` + the system's, rustup's folder empty, no rustc variables."""
    base = {k: v for k, v in os.environ.items() if k not in ("REACTR_RUSTC", "RUSTC", "REACTR_CARGO")}
    system = "/usr/local/bin:/usr/bin:/bin"
    return {
        **base,
        "PYTHONPATH": str(ROOT),
        "PATH": ":".join([*map(str, path), system]),
        "CARGO_HOME": str(tmp_path / "empty-cargo-home"),
        **extra,
    }


def build(project: Path, environment: dict[str, str], *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reactr_wasm", "build", *(names or ("a",)), "--dir", str(project)],
        env=environment, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_reactr_rustc_comes_before_rustc_and_path(project: Path, tmp_path: Path) -> None:
    first, second, on_path = (fake_rustc(tmp_path / name) for name in ("first", "second", "on-path"))
    environment = env(tmp_path, [on_path.parent], REACTR_RUSTC=str(first), RUSTC=str(second))
    done = build(project, environment)
    assert done.returncode == 0, done.stderr
    assert compiled(first) and not calls(second) and not calls(on_path)

    del environment["REACTR_RUSTC"]
    (project / "a.wasm").unlink()
    done = build(project, environment)
    assert done.returncode == 0, done.stderr
    assert compiled(second) and not calls(on_path)
    assert (project / "a.wasm").read_bytes()[:4] == b"\0asm"


def test_a_rustc_on_path_with_the_wasm32_std_is_used(project: Path, tmp_path: Path) -> None:
    on_path = fake_rustc(tmp_path / "toolchain" / "bin")
    done = build(project, env(tmp_path, [on_path.parent]))
    assert done.returncode == 0, done.stderr
    assert compiled(on_path)


def test_rustcs_without_the_wasm32_std_are_skipped(project: Path, tmp_path: Path) -> None:
    # rustup's rustc first on PATH, before `rustup target add`: skipped for the next candidate,
    # rustup's folder ($CARGO_HOME/bin), then Debian's.
    no_std = fake_rustc(tmp_path / "rustup-proxy", std=False)
    cargo_home = tmp_path / "cargo-home"
    in_cargo_home = fake_rustc(cargo_home / "bin")
    done = build(project, env(tmp_path, [no_std.parent], CARGO_HOME=str(cargo_home)))
    assert done.returncode == 0, done.stderr
    assert not compiled(no_std) and compiled(in_cargo_home)
    assert "--print target-libdir --target wasm32-unknown-unknown" in calls(no_std)

    (in_cargo_home.parent / "rustc").unlink()  # rustup's folder empty: Debian's rustc builds
    (project / "a.wasm").unlink()
    done = build(project, env(tmp_path, [no_std.parent], CARGO_HOME=str(cargo_home)))
    assert done.returncode == 0, done.stderr
    assert not compiled(no_std) and (project / "a.wasm").is_file()


def test_each_rustc_is_probed_once_per_build_command(project: Path, tmp_path: Path) -> None:
    on_path = fake_rustc(tmp_path / "bin")
    done = build(project, env(tmp_path, [on_path.parent]), "a", "b")
    assert done.returncode == 0, done.stderr
    probes = [line for line in calls(on_path) if line.startswith("--print target-libdir")]
    assert probes == ["--print target-libdir --target wasm32-unknown-unknown"]
    assert sum("--crate-type cdylib" in line for line in calls(on_path)) == 2


def test_an_explicit_rustc_without_the_std_is_an_error_not_a_fallback(project: Path, tmp_path: Path) -> None:
    no_std = fake_rustc(tmp_path / "no-std", std=False)
    done = build(project, env(tmp_path, [], RUSTC=str(no_std)))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"reactr-wasm: RUSTC={no_std} cannot build for wasm32-unknown-unknown: rustc 1.63.0, no std for "
        "wasm32-unknown-unknown; point RUSTC at a rustc that has the wasm32-unknown-unknown std, unset it to "
        f"search, or install one: {APT_FIX}\n"
    )
    assert not (project / "a.wasm").exists()


def test_no_usable_rustc_lists_what_was_tried_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_std = fake_rustc(tmp_path / "rustup-proxy", std=False)
    monkeypatch.delenv("REACTR_RUSTC", raising=False)
    monkeypatch.delenv("RUSTC", raising=False)
    monkeypatch.setenv("PATH", str(no_std.parent))
    monkeypatch.setenv("CARGO_HOME", str(tmp_path / "cargo-home"))
    monkeypatch.setattr(rustc, "DEBIAN_RUSTC", tmp_path / "usr" / "bin" / "rustc")
    with pytest.raises(ToolchainMissing) as missing:
        rustc.find_rustc("wasm32-unknown-unknown")
    assert str(missing.value) == (
        f"no rustc with the wasm32-unknown-unknown std: tried {no_std} (PATH: rustc 1.63.0, no std for "
        f"wasm32-unknown-unknown), {tmp_path}/cargo-home/bin/rustc (rustup: not installed), "
        f"{tmp_path}/usr/bin/rustc (Debian: not installed); install one: {APT_FIX}"
    )
    with pytest.raises(ToolchainMissing, match=r"install one: rustup target add wasm32-wasip1, or: apt-get"):
        rustc.find_rustc("wasm32-wasi")  # rustup knows WASI as wasm32-wasip1


@pytest.mark.parametrize("target", ["wasm32-wasi", "wasm32-wasip1"])
def test_both_spellings_of_the_wasi_target_build_with_the_rustc_that_knows_one(
    project: Path, tmp_path: Path, target: str
) -> None:
    source = project / "src" / "a" / "lib.rs"
    source.write_text(f"//! build-target: {target}\n{SOURCE}")
    done = build(project, env(tmp_path, []))
    assert done.returncode == 0, done.stderr
    imports = wasmtime.Module.from_file(wasmtime.Engine(), str(project / "a.wasm")).imports
    assert {item.module for item in imports} >= {"wasi_snapshot_preview1"}
