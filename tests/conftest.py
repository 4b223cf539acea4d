"""Shared fixtures: real Wasm modules compiled from sources in the repository."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from reactr_wasm import Reactr, WasmEngine
from reactr_wasm.capabilities.cache import MemoryCache

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "tests" / "modules"
RUNNABLES = ROOT / "runnables"


def wat_module(name: str) -> bytes:
    """The binary of ``tests/modules/NAME.wat``, compiled from its source."""
    return bytes(wasmtime.wat2wasm((MODULES / f"{name}.wat").read_text()))


@pytest.fixture
def engine() -> Iterator[WasmEngine]:
    with WasmEngine(cache=MemoryCache()) as wasm_engine:
        yield wasm_engine


@pytest.fixture
def reactr(engine: WasmEngine) -> Iterator[Reactr]:
    with Reactr(engine=engine) as scheduler:
        yield scheduler


@pytest.fixture
def module_dir(tmp_path: Path) -> Path:
    """A folder of test modules as .wasm files, for server and reload tests."""
    folder = tmp_path / "runnables"
    folder.mkdir()
    for source in MODULES.glob("*.wat"):
        try:
            (folder / f"{source.stem}.wasm").write_bytes(wat_module(source.stem))
        except Exception:
            continue
    return folder
