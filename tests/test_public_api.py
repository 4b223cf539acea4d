"""The public API is what the README uses: every import in its Python examples works, ``__all__``
is exactly the names it imports from ``reactr_wasm``, its embedding examples print what their
comments say, and ``import reactr_wasm`` leaves the HTTP server unloaded."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

import reactr_wasm
from reactr_wasm import WasmEngine
from tests.conftest import ROOT

README = ROOT / "README.md"


def python_blocks() -> list[str]:
    """The code of every ```python block of the README."""
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)


def uses() -> Iterator[tuple[str, str | None]]:
    """``(module, name)`` for each ``from reactr_wasm... import name``; ``(module, None)`` for
    ``import reactr_wasm...`` and each ``reactr_wasm.X`` attribute read, in the README's examples."""
    for block in python_blocks():
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "reactr_wasm":
                yield from ((node.module or "", alias.name) for alias in node.names)
            elif isinstance(node, ast.Import):
                yield from ((alias.name, None) for alias in node.names if alias.name.split(".")[0] == "reactr_wasm")
            elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "reactr_wasm":
                yield "reactr_wasm", node.attr


def test_the_readme_has_examples_to_check() -> None:
    assert len(python_blocks()) >= 4
    assert {module for module, _ in uses()} >= {"reactr_wasm", "reactr_wasm.client"}


@pytest.mark.parametrize(("module", "name"), sorted(set(uses()), key=str))
def test_every_name_the_readme_imports_exists(module: str, name: str | None) -> None:
    imported = importlib.import_module(module)
    if name is not None:
        assert hasattr(imported, name), f"README: from {module} import {name}"


def test_all_is_exactly_what_the_readme_imports_from_the_package() -> None:
    documented = {name for module, name in uses() if module == "reactr_wasm" and name is not None}
    assert set(reactr_wasm.__all__) == documented
    assert len(reactr_wasm.__all__) == len(set(reactr_wasm.__all__))
    for name in reactr_wasm.__all__:
        assert getattr(reactr_wasm, name) is not None


def embedding_examples() -> list[str]:
    return [block for block in python_blocks() if "with Reactr(" in block]


@pytest.mark.parametrize("block", embedding_examples(), ids=lambda block: block.splitlines()[0])
def test_the_embedding_examples_print_what_their_comments_say(block: str) -> None:
    expected = [line.split("#", 1)[1].strip() for line in block.splitlines() if line.lstrip().startswith("print(")]
    assert expected, "an embedding example shows what it prints"
    done = subprocess.run([sys.executable, "-c", block], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected


def test_importing_the_package_leaves_the_server_unloaded_until_asked() -> None:
    code = (
        "import sys, reactr_wasm\n"
        "loaded = lambda: sorted(m for m in sys.modules if m in ('reactr_wasm.server.app', 'reactr_wasm.server.run'))\n"
        "print(loaded())\n"
        "from reactr_wasm import create_app, serve\n"
        "import reactr_wasm.server.app as app, reactr_wasm.server.run as run\n"
        "print(loaded(), create_app is app.create_app, serve is run.serve)\n"
        "from reactr_wasm.server import create_app as again\n"
        "print(again is create_app)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[]",
        "['reactr_wasm.server.app', 'reactr_wasm.server.run'] True True",
        "True",
    ]


def test_importing_the_package_does_not_load_aiohttp() -> None:
    code = "import sys, reactr_wasm; print('aiohttp' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'create_ap'"):
        reactr_wasm.create_ap  # noqa: B018
    with pytest.raises(ImportError):
        exec("from reactr_wasm.server import nothing_here", {})
    assert {"create_app", "serve"} <= set(dir(reactr_wasm))


def test_the_version_is_the_packages() -> None:
    assert reactr_wasm.__version__ == importlib.metadata.version("reactr-wasm")


def test_the_engine_keeps_its_wasmtime_objects_private() -> None:
    with WasmEngine() as engine:
        public = {name for name in dir(engine) if not name.startswith("_")}
    assert not public & {"engine", "linker", "drivers", "modules", "capabilities", "fresh_pool"}
    assert {"load", "load_file", "close", "fresh_slots_free"} <= public
