"""The compiled-module disk cache: only entries this user wrote, undamaged, are ever loaded.

Loading a compiled artefact maps it as machine code without verifying it, so a
damaged entry does not raise: it kills the process. These tests damage,
truncate, swap and expose entries and folders, and check that each is refused
with a warning naming it, and that the module is compiled (and the entry
rewritten where that is safe) instead.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from wasmtime import Config, Engine, Module

from reactr_wasm.wasm.module import ModuleCache
from tests.conftest import RUNNABLES, wat_module
from tests.services import serve_process
from tests.test_cli import post

OTHER_UID = 65534  # nobody
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")


@pytest.fixture
def engine() -> Engine:
    return Engine()


@pytest.fixture
def wasm() -> bytes:
    return wat_module("echo")


def entry_of(folder: Path) -> Path:
    [entry] = folder.glob("*.cwasm")
    return entry


def load(folder: Path | None, engine: Engine, wasm: bytes) -> Module:
    """One load through a fresh cache (as a restart would), checked to be the right module."""
    module = ModuleCache(folder).load(engine, wasm)
    assert {export.name for export in module.exports} >= {"memory", "allocate", "run_e"}
    return module


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def identity(path: Path) -> tuple[int, int]:
    """Inode and modification time: both change when the entry is rewritten (a new file renamed over it)."""
    info = path.stat()
    return info.st_ino, info.st_mtime_ns


# --- the crash of issue 9, end to end ---------------------------------------------------------


def stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr.decode()
    return stderr.decode()


def test_a_damaged_entry_is_refused_and_rewritten_and_the_server_comes_back(tmp_path: Path) -> None:
    shutil.copy(RUNNABLES / "hello-echo.wasm", tmp_path / "hello-echo.wasm")
    with serve_process(["--dir", tmp_path]) as (process, base):
        assert post(f"{base}/do/hello-echo?then=true", b"joe") == (200, b"hello joe")
        assert "WARNING" not in stop(process)
    entry = entry_of(tmp_path / ".reactr-cache")
    assert entry.stat().st_size > 4096 + 80 * 1024
    with entry.open("r+b") as file:  # as the issue did it: 80 KiB of noise inside the code
        file.seek(4096)
        file.write(random.Random(9).randbytes(80 * 1024))
    damaged = entry.read_bytes()

    with serve_process(["--dir", tmp_path]) as (process, base):
        assert post(f"{base}/do/hello-echo?then=true", b"joe") == (200, b"hello joe")
        log = stop(process)
    assert "WARNING" in log and f"ignoring compiled cache entry {entry}: damaged" in log
    assert entry.read_bytes() != damaged  # rewritten

    with serve_process(["--dir", tmp_path]) as (process, base):  # and the new entry is used as it is
        before = identity(entry)
        assert post(f"{base}/do/hello-echo?then=true", b"again") == (200, b"hello again")
        assert "WARNING" not in stop(process)
    assert identity(entry) == before


# --- entries ----------------------------------------------------------------------------------


def test_an_entry_is_written_once_and_then_used(tmp_path: Path, engine: Engine, wasm: bytes) -> None:
    folder = tmp_path / "cache"
    load(folder, engine, wasm)
    entry = entry_of(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    before = identity(entry)
    load(folder, engine, wasm)
    assert identity(entry) == before  # read, not compiled and written again
    assert [path.name for path in folder.iterdir()] == [entry.name]  # no temporary files left


def damage(entry: Path) -> None:
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one bit pattern in the middle of the artefact
    entry.write_bytes(bytes(data))


def truncate_artefact(entry: Path) -> None:
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])


def truncate_header(entry: Path) -> None:
    entry.write_bytes(entry.read_bytes()[:10])


def unframed(entry: Path) -> None:
    """What versions before the header wrote: the bare artefact."""
    entry.write_bytes(Module(Engine(), wat_module("echo")).serialize())


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (damage, "damaged (its SHA-256 does not match)"),
        (truncate_artefact, "truncated ("),
        (truncate_header, "truncated (10 of "),
        (unframed, "not a reactr-wasm cache entry"),
    ],
)
def test_a_spoiled_entry_is_refused_with_its_reason_and_rewritten(
    tmp_path: Path,
    engine: Engine,
    wasm: bytes,
    caplog: pytest.LogCaptureFixture,
    spoil: Callable[[Path], None],
    reason: str,
) -> None:
    load(tmp_path, engine, wasm)
    entry = entry_of(tmp_path)
    good = entry.read_bytes()
    spoil(entry)
    load(tmp_path, engine, wasm)
    [warning] = warnings(caplog)
    assert warning.startswith(f"ignoring compiled cache entry {entry}: {reason}"), warning
    assert warning.endswith("; compiling it again")
    assert len(entry.read_bytes()) == len(good)  # rewritten whole (the artefact itself may differ byte-wise)
    caplog.clear()
    load(tmp_path, engine, wasm)
    assert warnings(caplog) == []


def test_an_entry_of_another_module_is_refused(
    tmp_path: Path, engine: Engine, wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    other = wat_module("counter")
    load(tmp_path, engine, other)
    load(tmp_path / "mine", engine, wasm)
    mine = entry_of(tmp_path / "mine")
    shutil.copy(entry_of(tmp_path), mine)  # a valid entry under the wrong name
    load(tmp_path / "mine", engine, wasm)  # checks the exports: echo's, not counter's
    [warning] = warnings(caplog)
    assert warning == f"ignoring compiled cache entry {mine}: compiled from another module; compiling it again"


def test_an_entry_of_another_engine_configuration_is_refused_by_wasmtime(
    tmp_path: Path, wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config()
    config.epoch_interruption = True
    load(tmp_path, Engine(config), wasm)
    entry = entry_of(tmp_path)
    before = identity(entry)
    load(tmp_path, Engine(), wasm)
    [warning] = warnings(caplog)
    assert warning.startswith(f"ignoring compiled cache entry {entry}: wasmtime refused it: ")
    assert identity(entry) != before


def test_an_entry_others_can_write_is_not_read_and_is_replaced(
    tmp_path: Path, engine: Engine, wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    load(tmp_path, engine, wasm)
    entry = entry_of(tmp_path)
    damage(entry)  # were it read, the warning would say "damaged"
    entry.chmod(0o622)
    load(tmp_path, engine, wasm)
    [warning] = warnings(caplog)
    assert warning == (
        f"ignoring compiled cache entry {entry}: writable by group or others (mode 0o622); compiling it again"
    )
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    caplog.clear()
    load(tmp_path, engine, wasm)
    assert warnings(caplog) == []


@needs_root
def test_an_entry_of_another_user_is_not_read_and_is_replaced(
    tmp_path: Path, engine: Engine, wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    load(tmp_path, engine, wasm)
    entry = entry_of(tmp_path)
    damage(entry)
    os.chown(entry, OTHER_UID, -1)
    load(tmp_path, engine, wasm)
    [warning] = warnings(caplog)
    assert warning == (
        f"ignoring compiled cache entry {entry}: owned by uid {OTHER_UID}, not this user"
        f" (uid {os.geteuid()}); compiling it again"
    )
    assert entry.stat().st_uid == os.geteuid()


def test_a_symlinked_entry_is_not_followed(
    tmp_path: Path, engine: Engine, wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    load(tmp_path / "cache", engine, wasm)
    entry = entry_of(tmp_path / "cache")
    planted = tmp_path / "planted.cwasm"
    entry.rename(planted)
    entry.symlink_to(planted)
    load(tmp_path / "cache", engine, wasm)
    [warning] = warnings(caplog)
    assert warning == f"ignoring compiled cache entry {entry}: a symbolic link, not a file; compiling it again"
    assert not entry.is_symlink()


# --- the folder -------------------------------------------------------------------------------


@pytest.fixture
def exposed(tmp_path: Path, engine: Engine, wasm: bytes) -> Iterator[Path]:
    """A cache folder holding a damaged entry for ``wasm``: if it were read, it would be rewritten."""
    folder = tmp_path / "cache"
    load(folder, engine, wasm)
    damage(entry_of(folder))
    yield folder


def test_a_folder_others_can_write_is_not_used(
    exposed: Path, engine: Engine, wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    exposed.chmod(0o777)
    entry = entry_of(exposed)
    before = identity(entry)
    cache = ModuleCache(exposed)
    for _ in range(2):
        module = cache.load(engine, wasm)
        assert "run_e" in {export.name for export in module.exports}
    assert warnings(caplog) == [  # once per folder, not per module
        f"not using the compiled cache folder {exposed}: writable by group or others (mode 0o777); compiling in memory"
    ]
    assert identity(entry) == before and [path.name for path in exposed.iterdir()] == [entry.name]


@needs_root
def test_a_folder_of_another_user_is_not_used(
    exposed: Path, engine: Engine, wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    os.chown(exposed, OTHER_UID, -1)
    entry = entry_of(exposed)
    before = identity(entry)
    load(exposed, engine, wasm)
    assert warnings(caplog) == [
        f"not using the compiled cache folder {exposed}: owned by uid {OTHER_UID}, not this user"
        f" (uid {os.geteuid()}); compiling in memory"
    ]
    assert identity(entry) == before


def test_a_folder_that_cannot_be_made_compiles_in_memory(
    tmp_path: Path, engine: Engine, wasm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("not a folder")
    load(tmp_path / "file", engine, wasm)
    [warning] = warnings(caplog)
    assert warning.startswith(f"not using the compiled cache folder {tmp_path / 'file'}: cannot create it: ")
    assert (tmp_path / "file").read_text() == "not a folder"


def test_no_folder_means_no_cache(engine: Engine, wasm: bytes, caplog: pytest.LogCaptureFixture) -> None:
    load(None, engine, wasm)
    assert warnings(caplog) == []
