"""Which ``rustc`` builds Rust runnables: the first one that has the wasm32 std.

The order, first match wins:

1. ``REACTR_RUSTC``, then ``RUSTC``: used as given; when it lacks the target's std the
   build stops there (an explicit choice is never second-guessed).
2. ``rustc`` on PATH (usually rustup's), then ``$CARGO_HOME/bin/rustc`` (rustup's default
   place, often missing from an IDE's PATH), then Debian's ``/usr/bin/rustc``: the first
   whose ``--print target-libdir --target T`` folder holds a ``libstd-*``.

Each probe runs ``rustc`` once per (path, target) and process: a few tens of milliseconds.
Newer rustc calls ``wasm32-wasi`` ``wasm32-wasip1``; both spellings are tried.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from reactr_wasm.tooling.base import ToolchainMissing

DEBIAN_RUSTC = Path("/usr/bin/rustc")
APT_INSTALL = "apt-get install -y rustc libstd-rust-dev-wasm32 lld-14"
# Spellings of a target across rustc versions, the one older rustc knows first (wasm32-wasi
# became wasm32-wasip1 in 1.78 and was removed in 1.84).
SPELLINGS = {"wasm32-wasi": ("wasm32-wasi", "wasm32-wasip1"), "wasm32-wasip1": ("wasm32-wasi", "wasm32-wasip1")}
PROBE_TIMEOUT = 60.0  # seconds; a rustup proxy may first sync its toolchain


@dataclass(frozen=True)
class Rustc:
    """A rustc that has the std of ``target``, spelled as this rustc spells it."""

    path: Path
    target: str
    version: str  # ``rustc -vV``: part of the SDK cache key, so rlibs never mix versions
    sysroot: Path

    @property
    def release(self) -> str:
        """The release, e.g. ``1.63.0``."""
        return _field(self.version, "release")


def _field(version: str, name: str) -> str:
    """A field of ``rustc -vV``'s output (``release``, ``host``), or ``?``."""
    return next((line.split(":", 1)[1].strip() for line in version.splitlines() if line.startswith(f"{name}:")), "?")


@dataclass(frozen=True)
class _Probe:
    found: Rustc | None
    why_not: str  # for the error that lists every rustc tried


def candidates() -> list[tuple[str, Path]]:
    """The rustc binaries to try, in order, each with where it came from (deduplicated)."""
    for variable in ("REACTR_RUSTC", "RUSTC"):
        value = os.environ.get(variable)
        if value:
            if os.sep not in value:  # a bare name is looked up on PATH, as a shell would
                value = shutil.which(value) or value
            return [(variable, Path(value))]
    found: list[tuple[str, Path]] = []
    on_path = shutil.which("rustc")
    if on_path:
        found.append(("PATH", Path(on_path)))
    cargo_home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    found.append(("rustup", cargo_home / "bin" / "rustc"))
    found.append(("Debian", DEBIAN_RUSTC))
    seen: set[str] = set()
    unique = []
    for origin, path in found:
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            unique.append((origin, path))
    return unique


def _run(rustc: Path, *args: str) -> str:
    """stdout of ``rustc ARGS``; raises OSError or SubprocessError (with rustc's stderr) on failure."""
    done = subprocess.run([str(rustc), *args], capture_output=True, text=True, timeout=PROBE_TIMEOUT)
    if done.returncode != 0:
        raise subprocess.SubprocessError((done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1])
    return done.stdout.strip()


@functools.cache
def probe(rustc: Path, target: str) -> _Probe:
    """Does ``rustc`` run and have the std of ``target``? Cached per process."""
    if not os.access(rustc, os.X_OK):
        return _Probe(None, "not installed")
    try:
        version = _run(rustc, "-vV")
        sysroot = Path(_run(rustc, "--print", "sysroot"))
    except (OSError, subprocess.SubprocessError) as error:
        return _Probe(None, f"does not run: {error}")
    release = _field(version, "release")
    for spelling in SPELLINGS.get(target, (target,)):
        try:
            libdir = Path(_run(rustc, "--print", "target-libdir", "--target", spelling))
        except (OSError, subprocess.SubprocessError):
            continue  # this rustc does not know the spelling
        if libdir.is_dir() and any(libdir.glob("libstd-*")):
            return _Probe(Rustc(rustc, spelling, version, sysroot), "")
    return _Probe(None, f"rustc {release}, no std for {target}")


def _fix(target: str) -> str:
    rustup_target = SPELLINGS.get(target, (target,))[-1]
    return f"rustup target add {rustup_target}, or: {APT_INSTALL}"


def find_rustc(target: str) -> Rustc:
    """The rustc that builds for ``target`` (see the module's docstring for the order).

    Raises ToolchainMissing naming every rustc tried and why not, ending with the fix.
    """
    tried = []
    for origin, path in candidates():
        result = probe(path, target)
        if result.found is not None:
            return result.found
        tried.append(f"{path} ({origin}: {result.why_not})")
        if origin in ("REACTR_RUSTC", "RUSTC"):
            raise ToolchainMissing(
                f"{origin}={path} cannot build for {target}: {result.why_not}; point {origin} at a rustc "
                f"that has the {target} std, unset it to search, or install one: {_fix(target)}"
            )
    raise ToolchainMissing(f"no rustc with the {target} std: tried {', '.join(tried)}; install one: {_fix(target)}")


def check_linker(rustc: Rustc) -> None:
    """Raises ToolchainMissing unless rust-lld, the wasm linker rustc calls, exists."""
    host = _field(rustc.version, "host")
    bundled = rustc.sysroot / "lib" / "rustlib" / host / "bin" / "rust-lld"
    if shutil.which("rust-lld") is None and not os.access(bundled, os.X_OK):
        raise ToolchainMissing(
            f"rust-lld (the wasm linker {rustc.path} calls) not found; install it with: {APT_INSTALL}"
        )


def find_cargo(rustc: Rustc) -> Path:
    """The cargo to run with ``rustc``: ``REACTR_CARGO``, else the ``cargo`` beside it.

    A cargo from another toolchain may pass flags this rustc does not know (rustup's cargo
    with Debian's rustc fails on ``split-debuginfo``), hence the sibling. Raises ToolchainMissing.
    """
    explicit = os.environ.get("REACTR_CARGO")
    cargo = Path(explicit) if explicit else rustc.path.with_name("cargo")
    if not os.access(cargo, os.X_OK):
        where = "REACTR_CARGO" if explicit else f"beside {rustc.path}"
        raise ToolchainMissing(
            f"Cargo projects need cargo, and there is none at {cargo} ({where}); set REACTR_CARGO, or install "
            f"it: apt-get install -y cargo (for Debian's rustc), rustup component add cargo (for rustup's)"
        )
    return cargo
