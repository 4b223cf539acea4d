"""Start a new runnable: ``runnables/src/NAME/`` from a language's starter."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from reactr_wasm.errors import ReactrError
from reactr_wasm.tooling.base import Language

# The name becomes the job name, the URL path segment of POST /do/NAME, the file NAME.wasm
# and (with '-' as '_') a Rust crate name: lower case keeps it one file on every file system.
NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


class ScaffoldError(ReactrError):
    """The runnable's name is not usable, or its folder is taken."""


def check_name(name: str) -> None:
    """Raise ScaffoldError unless ``name`` is usable as a job name and URL path segment."""
    if not NAME.fullmatch(name):
        raise ScaffoldError(
            f"bad runnable name {name!r}: use 1-64 lower-case letters, digits, '-' and '_', starting with a letter"
            " (it becomes the job name in POST /do/NAME and the file NAME.wasm)"
        )


def new_runnable(name: str, language: Language, runnables_dir: Path) -> Path:
    """Write the starter of ``language`` into ``runnables_dir/src/NAME/`` and return that folder.

    Raises ScaffoldError for a bad name, a non-empty folder or an existing ``NAME.wasm``;
    whatever the language's scaffold raises, after removing what it left.
    """
    check_name(name)
    folder = runnables_dir / "src" / name
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScaffoldError(f"{folder} already exists and is not empty: pick another name or remove it")
    module = runnables_dir / f"{name}.wasm"
    if module.exists():
        raise ScaffoldError(f"{module} already exists: building '{name}' would replace it; pick another name")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        language.scaffold(name, folder)
    except BaseException:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        else:  # it was empty: leave it empty
            for path in folder.iterdir():
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise
    return folder
