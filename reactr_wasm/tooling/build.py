"""Compile runnable sources: ``runnables/src/NAME/`` into ``runnables/NAME.wasm``.

The language of a folder is whichever ``Language.detect`` recognises it. The
compiler writes a hidden scratch file next to the target (``.NAME.XXXX.partial``,
which the hot-reload watcher ignores) that is renamed over ``NAME.wasm`` only
once the build succeeded: a failed build leaves the previous module serving,
and a watching server never reads a half-written one.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reactr_wasm.errors import ReactrError
from reactr_wasm.tooling import LANGUAGES
from reactr_wasm.tooling.base import BuildFailed, Language, Progress


class SourceError(ReactrError):
    """A runnable's source folder is missing, or no language (or more than one) recognises it."""


@dataclass(frozen=True)
class Source:
    """The source folder of runnable ``name`` and the language that builds it."""

    name: str
    folder: Path
    language: Language


@dataclass(frozen=True)
class Built:
    """A module written by ``build``: its file, size in bytes and compile time in seconds."""

    name: str
    path: Path
    size: int
    seconds: float


def source_names(runnables_dir: Path) -> list[str]:
    """The names of the source folders in ``runnables_dir/src``, sorted (hidden folders skipped)."""
    src = runnables_dir / "src"
    if not src.is_dir():
        return []
    return sorted(path.name for path in src.iterdir() if path.is_dir() and not path.name.startswith("."))


def find_source(runnables_dir: Path, name: str, languages: Mapping[str, Language] = LANGUAGES) -> Source:
    """The source of runnable ``name``; raises SourceError when there is none or its language is unclear."""
    folder = runnables_dir / "src" / name
    if not folder.is_dir():
        known = ", ".join(source_names(runnables_dir)) or "none"
        raise SourceError(f"no source folder {folder} for runnable '{name}' (found: {known})")
    found = [language for language in languages.values() if language.detect(folder)]
    if not found:
        names = ", ".join(languages)
        raise SourceError(f"{folder}: not a runnable source: no known language ({names}) recognises its files")
    if len(found) > 1:
        names = ", ".join(language.name for language in found)
        raise SourceError(f"{folder}: holds sources of several languages ({names}); keep one")
    return Source(name, folder.absolute(), found[0])


def check_toolchains(sources: Iterable[Source]) -> None:
    """Check each language of ``sources`` once; raises ToolchainMissing with the install command."""
    seen: set[str] = set()
    for source in sources:
        if source.language.name not in seen:
            seen.add(source.language.name)
            source.language.check_toolchain()


def build(source: Source, out_dir: Path, progress: Progress) -> Built:
    """Compile ``source`` into ``out_dir/NAME.wasm``, replaced only on success.

    Raises BuildFailed with the compiler's message, or ToolchainMissing.
    """
    started = time.perf_counter()
    target = out_dir / f"{source.name}.wasm"
    fd, scratch = tempfile.mkstemp(prefix=f".{source.name}.", suffix=".partial", dir=out_dir)
    os.close(fd)
    partial = Path(scratch)
    try:
        source.language.build(source.folder, partial, progress)
        with partial.open("rb") as module:
            if module.read(4) != b"\0asm":
                raise BuildFailed(f"the {source.language.name} build of {source.folder} wrote no WebAssembly module")
        partial.chmod(0o644)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Built(source.name, target, target.stat().st_size, time.perf_counter() - started)


def check(source: Source, out_dir: Path, progress: Progress) -> str | None:
    """Rebuild ``source`` in a scratch folder and compare it with ``out_dir/NAME.wasm``.

    Returns None when they are byte-for-byte equal, else why not. Raises like ``build``.
    """
    committed = out_dir / f"{source.name}.wasm"
    with tempfile.TemporaryDirectory(prefix="reactr-build-check-") as scratch:
        fresh = build(source, Path(scratch), progress).path.read_bytes()
    try:
        kept = committed.read_bytes()
    except FileNotFoundError:
        return f"{committed} is missing ({len(fresh)} bytes when built)"
    if kept == fresh:
        return None
    first = next((i for i, (a, b) in enumerate(zip(kept, fresh, strict=False)) if a != b), min(len(kept), len(fresh)))
    sizes = f"{len(kept)} bytes committed, {len(fresh)} built"
    return f"{committed} differs from a fresh build of {source.folder} ({sizes}; first difference at byte {first})"
