"""Cargo projects as runnables: ``new --lang rust --cargo``, then ``build`` runs cargo offline.

Real cargo (Debian's, with Debian's rustc: ``apt-get install -y cargo``), real path and
vendored dependencies, no network. Each test works in its own ``tmp_path/runnables``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reactr_wasm.tooling import rustc
from reactr_wasm.tooling.cargo import sdk_path_for
from tests.conftest import ROOT

CARGO = rustc.DEBIAN_RUSTC.with_name("cargo")
pytestmark = [
    pytest.mark.skipif(not CARGO.exists(), reason="needs Debian's cargo: apt-get install -y cargo"),
    pytest.mark.slow,  # a cold cargo build each: 5-15 s
]

ENV = {k: v for k, v in os.environ.items() if k not in ("REACTR_RUSTC", "RUSTC", "REACTR_CARGO", "REACTR_WASM_SDK")}
ENV["PYTHONPATH"] = str(ROOT)


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``reactr-wasm ARGS`` run in ``cwd``: exit code, stdout, stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "reactr_wasm", *args], cwd=cwd, env=env or ENV, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def run_job(module: Path, data: str) -> tuple[int, str, str]:
    return cli(module.parent, "run", str(module), "--data", data)


@pytest.fixture
def runnables(tmp_path: Path) -> Path:
    (tmp_path / "runnables").mkdir()
    return tmp_path / "runnables"


@pytest.fixture
def hello(runnables: Path) -> Path:
    """A Cargo project written by ``new hello --lang rust --cargo``: its folder."""
    code, out, err = cli(runnables.parent, "new", "hello", "--lang", "rust", "--cargo")
    assert code == 0, err
    assert out.startswith("created runnables/src/hello/ (rust): .gitignore, Cargo.toml, src/lib.rs\nnext steps:\n")
    return runnables / "src" / "hello"


def test_a_new_cargo_runnable_builds_offline_against_the_sdk_and_runs(hello: Path, runnables: Path) -> None:
    manifest = (hello / "Cargo.toml").read_text()
    # relative when the project and the checkout share a parent folder (below /), else absolute
    assert f'suborbital = {{ path = "{sdk_path_for(hello)}" }}' in manifest
    assert 'crate-type = ["cdylib"]' in manifest
    assert (hello / ".gitignore").read_text() == "/target\n"

    code, out, err = cli(runnables.parent, "build", "hello")
    assert code == 0, err
    assert out.startswith("hello (rust): compiling… built runnables/hello.wasm (") and out.endswith(" s)\n"), out
    assert run_job(runnables / "hello.wasm", "joe") == (0, "hello joe", "")
    assert not list(runnables.glob(".*.partial"))


def test_the_sdk_path_is_relative_when_project_and_sdk_share_a_folder(tmp_path: Path) -> None:
    sdk = tmp_path / "checkout" / "sdk"
    shutil.copytree(ROOT / "sdk" / "rust", sdk / "rust", ignore=shutil.ignore_patterns("target"))
    project = tmp_path / "checkout" / "runnables"
    environment = {**ENV, "REACTR_WASM_SDK": str(sdk)}
    code, _, err = cli(tmp_path / "checkout", "new", "hi", "--lang", "rust", "--cargo", env=environment)
    assert code == 0, err
    assert 'suborbital = { path = "../../../sdk/rust" }' in (project / "src" / "hi" / "Cargo.toml").read_text()
    # The whole folder moves (another clone): it still builds.
    moved = tmp_path / "clone"
    (tmp_path / "checkout").rename(moved)
    code, _, err = cli(moved, "build", "hi", env={**ENV, "REACTR_WASM_SDK": str(moved / "sdk")})
    assert code == 0, err
    assert run_job(moved / "runnables" / "hi.wasm", "you") == (0, "hello you", "")


def test_the_cargo_beside_the_chosen_rustc_builds_with_it(hello: Path, runnables: Path, tmp_path: Path) -> None:
    toolchain = tmp_path / "toolchain"
    toolchain.mkdir()
    (toolchain / "rustc").write_text(f'#!/bin/sh\necho "$*" >> {toolchain}/calls\nexec {rustc.DEBIAN_RUSTC} "$@"\n')
    (toolchain / "rustc").chmod(0o755)
    code, out, err = cli(runnables.parent, "build", "hello", env={**ENV, "REACTR_RUSTC": str(toolchain / "rustc")})
    assert (code, out) == (2, "hello (rust): compiling… failed\n")
    assert err.splitlines()[0] == (
        f"reactr-wasm: Cargo projects need cargo, and there is none at {toolchain}/cargo (beside {toolchain}/rustc); "
        "set REACTR_CARGO, or install it: apt-get install -y cargo (for Debian's rustc), rustup component add cargo "
        "(for rustup's)"
    )

    (toolchain / "cargo").symlink_to(CARGO)
    code, _, err = cli(runnables.parent, "build", "hello", env={**ENV, "REACTR_RUSTC": str(toolchain / "rustc")})
    assert code == 0, err
    assert any("--crate-name hello" in line for line in (toolchain / "calls").read_text().splitlines())

    code, _, err = cli(runnables.parent, "build", "hello", env={**ENV, "REACTR_CARGO": str(tmp_path / "no-cargo")})
    assert code == 2 and f"there is none at {tmp_path}/no-cargo (REACTR_CARGO)" in err


def test_vendored_crates_build_offline(hello: Path, runnables: Path) -> None:
    # `cargo vendor` output: a crate in vendor/ and a source replacement in .cargo/config.toml.
    crate = hello / "vendor" / "greeting"
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text('[package]\nname = "greeting"\nversion = "0.1.3"\nedition = "2021"\n')
    (crate / "src" / "lib.rs").write_text('pub fn word() -> &\'static str { "howdy" }\n')
    (crate / ".cargo-checksum.json").write_text('{"files": {}, "package": null}')
    (hello / ".cargo").mkdir()
    (hello / ".cargo" / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "vendored"\n\n[source.vendored]\ndirectory = "vendor"\n'
    )
    manifest = hello / "Cargo.toml"
    manifest.write_text(manifest.read_text().replace("[dependencies]\n", '[dependencies]\ngreeting = "0.1"\n'))
    lib = hello / "src" / "lib.rs"
    lib.write_text(lib.read_text().replace('format!("hello {}", text)', 'format!("{} {}", greeting::word(), text)'))

    code, _, err = cli(runnables.parent, "build", "hello")
    assert code == 0, err
    assert run_job(runnables / "hello.wasm", "joe") == (0, "howdy joe", "")


def test_compile_errors_and_warnings_name_paths_from_the_current_folder(hello: Path, runnables: Path) -> None:
    lib = hello / "src" / "lib.rs"
    lib.write_text(lib.read_text() + "fn unused() {}\n")
    code, out, err = cli(runnables.parent, "build", "hello")
    assert code == 0, err
    assert out.startswith("hello (rust): compiling…\n  warning: function `unused` is never used\n")
    assert "  --> runnables/src/hello/src/lib.rs:24:4" in out
    built = (runnables / "hello.wasm").read_bytes()

    lib.write_text(lib.read_text() + "fn broken() -> u32 { missing }\n")
    code, out, err = cli(runnables.parent, "build", "hello")
    assert (code, out) == (1, "hello (rust): compiling… failed\n")
    assert "error[E0425]: cannot find value `missing` in this scope" in err
    assert "--> runnables/src/hello/src/lib.rs:25:22" in err
    assert err.rstrip().endswith("reactr-wasm: 1 of 1 runnables did not build: hello")
    assert (runnables / "hello.wasm").read_bytes() == built  # the previous module stays
    assert not list(runnables.glob(".*.partial"))


def test_a_moved_sdk_is_named_with_the_line_to_write(hello: Path, runnables: Path) -> None:
    manifest = hello / "Cargo.toml"
    sdk = str((ROOT / "sdk" / "rust").resolve())
    manifest.write_text(manifest.read_text().replace(sdk_path_for(hello), "/old/venv/reactr_wasm/sdk/rust"))
    code, out, err = cli(runnables.parent, "build", "hello")
    assert (code, out) == (1, "hello (rust): compiling… failed\n")
    assert err.splitlines()[0] == (
        "runnables/src/hello/Cargo.toml: the suborbital dependency's path '/old/venv/reactr_wasm/sdk/rust' holds "
        f'no crate; this reactr-wasm\'s SDK is at {sdk}: write suborbital = {{ path = "{sdk_path_for(hello)}" }}'
    )


def test_a_project_that_is_not_a_cdylib_is_refused(hello: Path, runnables: Path) -> None:
    manifest = hello / "Cargo.toml"
    manifest.write_text(manifest.read_text().replace('crate-type = ["cdylib"]', 'crate-type = ["rlib"]'))
    code, out, err = cli(runnables.parent, "build", "hello")
    assert (code, out) == (1, "hello (rust): compiling… failed\n")
    assert err.splitlines()[0] == (
        "runnables/src/hello/Cargo.toml: cargo built no .wasm module; a runnable is a library with "
        '[lib] crate-type = ["cdylib"]'
    )
    assert not (runnables / "hello.wasm").exists()


def test_a_broken_manifest_shows_cargos_message(hello: Path, runnables: Path) -> None:
    (hello / "Cargo.toml").write_text("[package\nname = 1\n")
    code, out, err = cli(runnables.parent, "build", "hello")
    assert (code, out) == (1, "hello (rust): compiling… failed\n")
    assert "failed to parse manifest" in err and "Traceback" not in err
