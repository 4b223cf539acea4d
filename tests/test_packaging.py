"""A wheel of reactr-wasm carries the guest SDKs: ``new`` + ``build`` work from a plain ``pip install``.

Builds the wheel from a copy of the checkout, installs it into a fresh venv (its
dependencies from the system's site-packages), then runs the venv's ``reactr-wasm`` as a
user would: in a folder outside the checkout, without ``REACTR_WASM_SDK`` or ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

WHEEL_LIMIT = 400 * 1024  # bytes; today ~180 KB. node_modules alone would be ~100 MB.
JUNK = shutil.ignore_patterns(
    ".git", "node_modules", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "*.wasm", "target"
)


def sdk_files() -> set[str]:
    """The SDK files of the checkout, as the wheel should name them (``reactr_wasm/sdk/...``)."""
    listed = subprocess.run(["git", "ls-files", "sdk"], cwd=ROOT, capture_output=True, text=True, check=True)
    return {f"reactr_wasm/{name}" for name in listed.stdout.split() if not name.endswith(".gitignore")}


def run(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel`` of a clean copy of the checkout (no build/ left in the real one)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=JUNK)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (built,) = (tmp / "dist").glob("reactr_wasm-*.whl")
    return built


def test_the_wheel_holds_the_sdk_sources_and_nothing_heavy(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert sdk_files() <= names, sorted(sdk_files() - names)
    in_sdk = {name for name in names if name.startswith("reactr_wasm/sdk/")}
    assert in_sdk == sdk_files()  # no node_modules, no build output
    assert "reactr_wasm/sdk/rust/src/lib.rs" in names and "reactr_wasm/sdk/assemblyscript/package-lock.json" in names
    assert {f"reactr_wasm/server/ui/{name}" for name in ("index.html", "app.js", "style.css")} <= names  # /ui
    assert wheel.stat().st_size < WHEEL_LIMIT


def test_an_installed_wheel_writes_and_builds_runnables_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "REACTR_WASM_SDK", "VIRTUAL_ENV")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # a cold SDK cache
    venv, project = tmp_path / "venv", tmp_path / "project"
    project.mkdir()
    # No pip in the venv (ensurepip is slow): this interpreter's pip installs into it. The wheel's
    # dependencies come from this interpreter's site-packages, on the path through a .pth file (which,
    # unlike --system-site-packages, works when this interpreter is itself in a venv).
    done = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    site_packages = run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                        cwd=tmp_path, env=env).stdout.strip()  # fmt: skip
    Path(site_packages, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-deps"]
    done = run(*pip, "--force-reinstall", wheel, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    where = run(venv / "bin" / "python", "-c", "import reactr_wasm; print(reactr_wasm.__file__)", cwd=tmp_path, env=env)
    assert where.stdout.startswith(str(venv)), where.stdout  # the installed copy, not the checkout's
    reactr_wasm = venv / "bin" / "reactr-wasm"

    done = run(reactr_wasm, "new", "x", "--lang", "rust", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    done = run(reactr_wasm, "build", "x", cwd=project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compiling the suborbital SDK (rust, wasm32-unknown-unknown" in done.stdout
    assert run(reactr_wasm, "run", "runnables/x.wasm", "--data", "joe", cwd=project, env=env).stdout == "hello joe"

    # AssemblyScript: the compiler is not in the wheel; the message says how to install it there.
    done = run(reactr_wasm, "new", "y", "--lang", "assemblyscript", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    sdk = venv / "lib" / python / "site-packages" / "reactr_wasm" / "sdk" / "assemblyscript"
    install = f"npm ci --prefix {sdk}"
    assert (
        f"before building it: the AssemblyScript compiler is not installed at {sdk}/node_modules/.bin/asc; "
        f"install the SDK's pinned compiler: {install}\n"
    ) in done.stdout
    done = run(reactr_wasm, "build", "y", cwd=project, env=env)
    assert done.returncode == 2 and done.stderr.endswith(f": {install}\n"), done.stderr
    npm = run(*install.split(), "--prefer-offline", "--no-audit", "--no-fund", cwd=project, env=env)
    assert npm.returncode == 0, npm.stderr
    done = run(reactr_wasm, "build", "y", cwd=project, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert run(reactr_wasm, "run", "runnables/y.wasm", "--data", "joe", cwd=project, env=env).stdout == "hello joe"
    shutil.rmtree(sdk / "node_modules")  # ~100 MB: not to be kept among pytest's last temporary folders
