"""``reactr-wasm build --watch``, run as a user would: a real subprocess, real edits, signals.

Edits are made the way editors make them (write in place), and every wait is bounded.
WAT runnables keep the rebuilds fast; one test watches a real Cargo project.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reactr_wasm.tooling import rustc
from tests.conftest import ROOT
from tests.test_tooling import write_constant

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
WAIT = 30.0  # seconds: the bound on any one expected line


class Watcher:
    """A running ``build --watch``: its output lines (stdout and stderr merged), read as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, fragment: str, timeout: float = WAIT) -> list[str]:
        """The lines up to and including the first one holding ``fragment``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.01))
            except queue.Empty:
                pytest.fail(f"no line with {fragment!r} within {timeout} s; got {got} after {self.seen}")
            got.append(line)
            if fragment in line:
                self.seen += got
                return got
            if remaining <= 0:
                pytest.fail(f"no line with {fragment!r} within {timeout} s; got {got}")

    def quiet_for(self, seconds: float) -> list[str]:
        """The lines printed during the next ``seconds`` (none expected, usually)."""
        time.sleep(seconds)
        got = []
        while not self.lines.empty():
            got.append(self.lines.get())
        return got

    def stop(self, signum: int = signal.SIGINT) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=WAIT)


@contextmanager
def watching(runnables: Path, *args: str) -> Iterator[Watcher]:
    process = subprocess.Popen(
        [sys.executable, "-m", "reactr_wasm", "build", "--watch", *args],
        cwd=runnables.parent, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    watcher = Watcher(process)
    try:
        yield watcher
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        watcher.reader.join(timeout=WAIT)  # it ends at end of output; then the pipe can close
        assert process.stdout is not None
        process.stdout.close()


def run_job(module: Path, data: str = "") -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "reactr_wasm", "run", str(module), "--data", data],
        env=ENV, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.returncode, done.stdout


@pytest.fixture
def runnables(tmp_path: Path) -> Path:
    (tmp_path / "runnables" / "src").mkdir(parents=True)
    return tmp_path / "runnables"


def test_watch_rebuilds_on_change_keeps_the_old_module_on_error_and_exits_0_on_ctrl_c(runnables: Path) -> None:
    source = write_constant(runnables, "answer", "v1")
    module = runnables / "answer.wasm"
    with watching(runnables, "answer") as watcher:
        assert watcher.expect("built")[-1].startswith("answer (wat): compiling… built runnables/answer.wasm (")
        watcher.expect("watching runnables/src/ for changes (Ctrl-C to stop)")
        assert run_job(module) == (0, "v1")

        write_constant(runnables, "answer", "v2")
        assert watcher.expect("answer (wat)")[-1].startswith("answer (wat): compiling… built runnables/answer.wasm")
        assert run_job(module) == (0, "v2")

        source.write_text('(module (func (export "run_e") (i32.add)))\n')  # broken
        lines = watcher.expect("answer (wat)")
        assert lines[-1] == "answer (wat): compiling… failed"
        error = watcher.expect("type mismatch in i32.add")
        assert error[-1].startswith("runnables/src/answer/answer.wat:1:")
        assert run_job(module) == (0, "v2")  # the previous module stays
        assert watcher.process.poll() is None  # and it keeps watching

        write_constant(runnables, "answer", "v3")  # fixed again
        watcher.expect("answer (wat): compiling… built")
        assert run_job(module) == (0, "v3")
        assert watcher.stop(signal.SIGINT) == 0
    assert watcher.expect("stopped watching")
    assert not list(runnables.glob(".*.partial"))


def test_named_runnables_are_the_only_ones_watched_and_sigterm_exits_0(runnables: Path) -> None:
    write_constant(runnables, "mine", "a")
    write_constant(runnables, "other", "b")
    with watching(runnables, "mine") as watcher:
        watcher.expect("watching runnables/src/")
        write_constant(runnables, "other", "c")
        time.sleep(0.5)  # a separate batch
        write_constant(runnables, "mine", "d")
        assert watcher.expect("built")[-1].startswith("mine (wat): compiling… built")
        assert watcher.quiet_for(1.0) == []
        assert not (runnables / "other.wasm").exists()
        assert watcher.stop(signal.SIGTERM) == 0


def test_watch_all_builds_a_runnable_added_while_it_runs(runnables: Path) -> None:
    with watching(runnables, "--all") as watcher:
        watcher.expect("watching runnables/src/")  # an empty src/: nothing to build yet
        done = subprocess.run(
            [sys.executable, "-m", "reactr_wasm", "new", "tiny", "--lang", "wat"],
            cwd=runnables.parent, env=ENV, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        watcher.expect("tiny (wat): compiling… built runnables/tiny.wasm")
        assert run_job(runnables / "tiny.wasm", "joe") == (0, "hello joe")

        (runnables / "src" / "notes").mkdir()
        (runnables / "src" / "notes" / "todo.txt").write_text("not a runnable")
        assert watcher.expect("notes")[-1] == (
            "reactr-wasm: runnables/src/notes: not a runnable source: no known language (rust, assemblyscript, wat) "
            "recognises its files"
        )
        assert watcher.process.poll() is None
        assert watcher.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--check", "--all"], "reactr-wasm: --watch rebuilds and --check only compares: pass one of them"),
        ([], "reactr-wasm: name the runnables to build (answer) or pass --all"),
        (["nope"], "reactr-wasm: no source folder runnables/src/nope for runnable 'nope' (found: answer)"),
    ],
)
def test_bad_watch_arguments_exit_2(runnables: Path, args: list[str], message: str) -> None:
    write_constant(runnables, "answer", "v1")
    done = subprocess.run(
        [sys.executable, "-m", "reactr_wasm", "build", "--watch", *args],
        cwd=runnables.parent, env=ENV, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (2, "", message + "\n")


def test_watch_without_a_source_folder_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reactr_wasm", "build", "--watch", "--all", "--dir", "nothing-here"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "reactr-wasm: no folder nothing-here/src to watch; start a runnable with: reactr-wasm new NAME --lang rust\n"
    )


@pytest.mark.slow
@pytest.mark.skipif(not rustc.DEBIAN_RUSTC.with_name("cargo").exists(), reason="needs cargo: apt-get install cargo")
def test_what_cargo_writes_while_building_does_not_trigger_a_build(runnables: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reactr_wasm", "new", "crab", "--lang", "rust", "--cargo"],
        cwd=runnables.parent, env=ENV, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with watching(runnables, "crab") as watcher:
        watcher.expect("crab (rust): compiling… built", timeout=300)  # writes target/ and Cargo.lock
        watcher.expect("watching runnables/src/")
        assert (runnables / "src" / "crab" / "Cargo.lock").is_file()
        assert watcher.quiet_for(2.0) == []
        lib = runnables / "src" / "crab" / "src" / "lib.rs"
        lib.write_text(lib.read_text().replace('format!("hello {}", text)', 'format!("ahoy {}", text)'))
        watcher.expect("crab (rust): compiling… built", timeout=300)
        assert watcher.quiet_for(2.0) == []
        assert run_job(runnables / "crab.wasm", "joe") == (0, "ahoy joe")
        assert watcher.stop() == 0
