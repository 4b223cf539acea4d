"""``reactr-wasm new`` and ``build``, run as a user would: real compilers, a real server, HTTP.

Each test works in its own ``tmp_path/runnables`` folder; the Rust and AssemblyScript
builds use the machine's toolchains (``scripts/setup-dev`` installs them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reactr_wasm import Reactr
from reactr_wasm import cli as reactr_cli
from tests.conftest import RUNNABLES
from tests.services import serve_process
from tests.test_cli import ENV, cli, post

# A WAT runnable that answers a constant: cheap to rebuild with a new answer.
CONSTANT_WAT = """\
(module
  (import "env" "return_result" (func $return_result (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{answer}")
  (func (export "allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "deallocate") (param i32 i32))
  (func (export "run_e") (param i32 i32 i32)
    (call $return_result (i32.const 16) (i32.const {length}) (local.get 2))))
"""


def write_constant(runnables: Path, name: str, answer: str) -> Path:
    folder = runnables / "src" / name
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"{name}.wat"
    source.write_text(CONSTANT_WAT.format(answer=answer, length=len(answer)))
    return source


@pytest.fixture
def runnables(tmp_path: Path) -> Path:
    folder = tmp_path / "runnables"
    folder.mkdir()
    return folder


@contextmanager
def serving(runnables: Path) -> Iterator[str]:
    """``reactr-wasm serve`` watching ``runnables``; yields its base URL."""
    with serve_process(["--dir", runnables]) as (_, base):
        yield base


def text(done: subprocess.CompletedProcess[bytes]) -> tuple[int, str, str]:
    return done.returncode, done.stdout.decode(), done.stderr.decode()


BUILT = re.compile(
    r"(?P<name>[a-z0-9-]+) \((?P<lang>[a-z]+)\): compiling… built (?P<path>\S+) \(\d+(\.\d)? K?B, \d+\.\d s\)"
)


# --- new -> build -> serve, per language ------------------------------------------------------


def test_a_new_rust_runnable_builds_and_serves(runnables: Path) -> None:
    code, out, err = text(cli("new", "hello", "--lang", "rust", "--dir", str(runnables)))
    assert code == 0, err
    assert out.startswith(f"created {runnables}/src/hello/ (rust): lib.rs\nnext steps:\n")
    assert f"reactr-wasm build hello --dir {runnables} " in out and f"reactr-wasm serve --dir {runnables} " in out
    assert "curl -X POST 'localhost:8080/do/hello?then=true' -d 'joe'" in out

    code, out, err = text(cli("build", "hello", "--dir", str(runnables)))
    assert code == 0, err
    built = BUILT.fullmatch(out.rstrip("\n"))
    assert built and (built["name"], built["lang"], built["path"]) == ("hello", "rust", f"{runnables}/hello.wasm"), out

    with serving(runnables) as base:
        assert post(f"{base}/do/hello?then=true", b"joe") == (200, b"hello joe")
        status, body = post(f"{base}/do/hello?then=true", b"")
        assert (status, json.loads(body)) == (400, {"code": 400, "message": "send some input"})


def test_a_new_assemblyscript_runnable_builds_and_serves(runnables: Path) -> None:
    code, out, err = text(cli("new", "greet", "--lang", "assemblyscript", "--dir", str(runnables)))
    assert code == 0, err
    assert out.startswith(f"created {runnables}/src/greet/ (assemblyscript): index.ts\nnext steps:\n")
    assert f"reactr-wasm build greet --dir {runnables} " in out

    code, out, err = text(cli("build", "greet", "--dir", str(runnables)))
    assert code == 0, err
    built = BUILT.fullmatch(out.rstrip("\n"))
    assert built and (built["name"], built["lang"]) == ("greet", "assemblyscript"), out

    with serving(runnables) as base:
        assert post(f"{base}/do/greet?then=true", b"joe") == (200, b"hello joe")
        status, body = post(f"{base}/do/greet?then=true", b"")
        assert (status, json.loads(body)) == (400, {"code": 400, "message": "send a name as the input"})


# --- build ----------------------------------------------------------------------------------


def test_a_compile_error_shows_the_compilers_message_and_keeps_the_previous_module(runnables: Path) -> None:
    folder = runnables / "src" / "hello"
    folder.mkdir(parents=True)
    (folder / "lib.rs").write_text("pub fn run() -> u32 { undefined_thing }\n")
    previous = (RUNNABLES / "hello-echo.wasm").read_bytes()
    (runnables / "hello.wasm").write_bytes(previous)

    code, out, err = text(cli("build", "hello", "--dir", str(runnables)))
    assert (code, out) == (1, "hello (rust): compiling… failed\n")
    assert "error[E0425]: cannot find value `undefined_thing` in this scope" in err
    assert f"--> {folder}/lib.rs:1:23" in err  # outside the current folder: the absolute path
    assert err.rstrip().endswith("reactr-wasm: 1 of 1 runnables did not build: hello")
    assert "Traceback" not in err
    assert (runnables / "hello.wasm").read_bytes() == previous
    assert not list(runnables.glob(".*.partial"))


@pytest.mark.parametrize(
    ("language", "source", "error", "location"),
    [
        ("rust", "lib.rs", "pub fn run() -> u32 { undefined_thing }\n", "--> runnables/src/broken/lib.rs:1:23"),
        ("wat", "broken.wat", "(module (func (i32.add)))\n", "runnables/src/broken/broken.wat:1:16: error:"),
        ("assemblyscript", "index.ts", 'const x: i32 = "text";\n', "└─ in runnables/src/broken/index.ts(1,16)"),
    ],
)
def test_compile_errors_name_the_source_relative_to_the_current_folder(
    runnables: Path, language: str, source: str, error: str, location: str
) -> None:
    # So that an editor or terminal can open the location as printed.
    (runnables / "src" / "broken").mkdir(parents=True)
    (runnables / "src" / "broken" / source).write_text(error)
    done = subprocess.run(
        [sys.executable, "-m", "reactr_wasm", "build", "broken"], cwd=runnables.parent, env=ENV, capture_output=True
    )
    code, out, err = text(done)
    assert (code, out) == (1, f"broken ({language}): compiling… failed\n"), err
    assert any(line.lstrip().startswith(location) for line in err.splitlines()), err


def test_a_missing_node_prints_the_install_command(runnables: Path, tmp_path: Path) -> None:
    assert cli("new", "greet", "--lang", "assemblyscript", "--dir", str(runnables)).returncode == 0
    (tmp_path / "bin").mkdir()
    code, out, err = text(cli("build", "--all", "--dir", str(runnables), env={**ENV, "PATH": str(tmp_path / "bin")}))
    assert (code, out) == (2, "")
    assert err.startswith("reactr-wasm: AssemblyScript needs Node.js") and err.count("\n") == 1
    assert err.endswith(": apt-get install -y nodejs npm\n")  # the exact command, last
    assert not (runnables / "greet.wasm").exists()


def test_a_missing_rust_toolchain_prints_what_was_tried_and_the_fix(runnables: Path, tmp_path: Path) -> None:
    assert cli("new", "hello", "--lang", "rust", "--dir", str(runnables)).returncode == 0
    missing = tmp_path / "no-such" / "rustc"
    code, out, err = text(cli("build", "hello", "--dir", str(runnables), env={**ENV, "REACTR_RUSTC": str(missing)}))
    assert (code, out) == (2, "")
    assert err == (
        f"reactr-wasm: REACTR_RUSTC={missing} cannot build for wasm32-unknown-unknown: not installed; point "
        "REACTR_RUSTC at a rustc that has the wasm32-unknown-unknown std, unset it to search, or install one: "
        "rustup target add wasm32-unknown-unknown, or: apt-get install -y rustc libstd-rust-dev-wasm32 lld-14\n"
    )
    assert not (runnables / "hello.wasm").exists()

    # An SDK that is not where REACTR_WASM_SDK says.
    done = cli("build", "hello", "--dir", str(runnables), env={**ENV, "REACTR_WASM_SDK": str(tmp_path / "nowhere")})
    code, out, err = text(done)
    assert (code, out) == (2, "hello (rust): compiling… failed\n")
    assert f"reactr-wasm: the rust SDK is not at {tmp_path}/nowhere/rust; point REACTR_WASM_SDK at" in err
    assert "Traceback" not in err


def test_building_while_a_server_watches_reloads_the_job(runnables: Path) -> None:
    write_constant(runnables, "answer", "v1")
    assert cli("build", "answer", "--dir", str(runnables)).returncode == 0
    with serving(runnables) as base:
        assert post(f"{base}/do/answer?then=true", b"") == (200, b"v1")
        write_constant(runnables, "answer", "v2")
        code, out, err = text(cli("build", "answer", "--dir", str(runnables)))
        assert code == 0, err
        assert out.startswith("answer (wat): compiling… built ") and out.rstrip().endswith(" s)")
        deadline = time.monotonic() + 10
        while post(f"{base}/do/answer?then=true", b"") != (200, b"v2"):
            assert time.monotonic() < deadline, "the rebuilt module was not reloaded"
            time.sleep(0.1)
    assert not list(runnables.glob(".*.partial"))  # no scratch file left behind


def test_check_detects_a_module_that_differs_from_its_source(runnables: Path) -> None:
    write_constant(runnables, "answer", "v1")
    write_constant(runnables, "other", "ok")
    assert cli("build", "--all", "--dir", str(runnables)).returncode == 0
    code, out, _ = text(cli("build", "--all", "--check", "--dir", str(runnables)))
    assert code == 0
    assert out.splitlines() == [
        f"answer (wat): compiling… same as {runnables}/answer.wasm",
        f"other (wat): compiling… same as {runnables}/other.wasm",
    ]

    write_constant(runnables, "answer", "v2")  # the source moved on; answer.wasm was not rebuilt
    before = (runnables / "answer.wasm").read_bytes()
    code, out, err = text(cli("build", "--all", "--check", "--dir", str(runnables)))
    assert code == 1
    assert (
        "answer (wat): compiling… DIFFERS" in out and f"other (wat): compiling… same as {runnables}/other.wasm" in out
    )
    assert f"reactr-wasm: {runnables}/answer.wasm differs from a fresh build of" in err
    assert err.rstrip().endswith("1 of 2 runnables differ from their sources or did not build: answer")
    assert (runnables / "answer.wasm").read_bytes() == before  # --check changes nothing

    (runnables / "other.wasm").unlink()
    code, _, err = text(cli("build", "other", "--check", "--dir", str(runnables)))
    assert code == 1 and f"{runnables}/other.wasm is missing" in err


def test_a_folder_no_language_recognises_is_an_error_naming_it(runnables: Path) -> None:
    write_constant(runnables, "answer", "v1")
    (runnables / "src" / "notes").mkdir()
    (runnables / "src" / "notes" / "README.txt").write_text("not a runnable")
    code, out, err = text(cli("build", "--all", "--dir", str(runnables)))
    assert (code, out) == (2, "")
    assert f"reactr-wasm: {runnables}/src/notes: not a runnable source: no known language" in err
    assert not (runnables / "answer.wasm").exists()  # nothing is built when a folder is wrong

    code, _, err = text(cli("build", "nope", "--dir", str(runnables)))
    assert code == 2 and f"no source folder {runnables}/src/nope for runnable 'nope' (found: answer, notes)" in err
    code, _, err = text(cli("build", "--dir", str(runnables)))
    assert code == 2 and "name the runnables to build (answer, notes) or pass --all" in err


# --- new ------------------------------------------------------------------------------------


def test_new_refuses_a_bad_name(runnables: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ["Hello", "1st", "a b", "../up", "a/b", "x.y", "", "-x", "a" * 65, "héllo", "hello?then=true"]:
        assert reactr_cli.main(["new", "--lang", "rust", "--dir", str(runnables), "--", name]) == 2
        out, err = capsys.readouterr()
        assert (out, err.count("\n")) == ("", 1)
        assert err.startswith(f"reactr-wasm: bad runnable name {name!r}: use 1-64 lower-case letters"), err
    assert not (runnables / "src").exists()


def test_new_refuses_a_taken_name(runnables: Path) -> None:
    (runnables / "src" / "taken").mkdir(parents=True)
    (runnables / "src" / "taken" / "lib.rs").write_text("// mine\n")
    code, out, err = text(cli("new", "taken", "--lang", "rust", "--dir", str(runnables)))
    assert (code, out) == (2, "")
    assert (
        err == f"reactr-wasm: {runnables}/src/taken already exists and is not empty: pick another name or remove it\n"
    )
    assert (runnables / "src" / "taken" / "lib.rs").read_text() == "// mine\n"

    (runnables / "prebuilt.wasm").write_bytes(b"\0asm")
    code, _, err = text(cli("new", "prebuilt", "--lang", "rust", "--dir", str(runnables)))
    assert code == 2 and f"{runnables}/prebuilt.wasm already exists: building 'prebuilt' would replace it" in err
    assert not (runnables / "src" / "prebuilt").exists()


def test_a_new_wat_runnable_builds_and_runs_with_nothing_to_install(runnables: Path) -> None:
    code, out, err = text(cli("new", "tiny", "--lang", "wat", "--dir", str(runnables)))
    assert code == 0, err
    assert out.startswith(f"created {runnables}/src/tiny/ (wat): tiny.wat\nnext steps:\n")
    assert f"reactr-wasm build tiny --dir {runnables} " in out

    code, out, err = text(cli("build", "tiny", "--dir", str(runnables)))
    assert code == 0, err
    built = BUILT.fullmatch(out.rstrip("\n"))
    assert built and (built["name"], built["lang"]) == ("tiny", "wat"), out
    module = runnables / "tiny.wasm"
    assert module.stat().st_size < 1024  # the smallest starter

    assert text(cli("run", str(module), "--data", "joe")) == (0, "hello joe", "")
    code, out, err = text(cli("run", str(module), "--data", ""))
    assert (code, out) == (1, "")
    assert '{"code":400,"message":"send some input"}' in err
    # Many jobs on one instance: the bump allocator is rewound, memory does not creep.
    with Reactr() as reactr:
        reactr.register("tiny", str(module))
        for size in (1, 70_000, 3, 200_000, 5):
            assert reactr.do("tiny", b"x" * size).then(timeout=10) == b"hello " + b"x" * size


def test_new_cargo_goes_only_with_rust(runnables: Path) -> None:
    code, out, err = text(cli("new", "x", "--lang", "wat", "--cargo", "--dir", str(runnables)))
    assert (code, out) == (2, "")
    assert err == "reactr-wasm: --cargo makes a Rust Cargo project; it does not go with --lang wat\n"
    assert not (runnables / "src").exists()

    code, _, err = text(cli("new", "x", "--lang", "go", "--dir", str(runnables)))
    assert code == 2 and "argument --lang: invalid choice: 'go' (choose from 'rust', 'assemblyscript', 'wat')" in err
