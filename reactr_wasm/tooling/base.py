"""What every guest language offers the ``new`` and ``build`` commands.

One module per language (``rust.py``, ``assemblyscript.py``) defines a
``Language``; ``build.py`` and ``scaffold.py`` only talk to this interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reactr_wasm.errors import ReactrError

Progress = Callable[[str], None]  # one line of progress output, e.g. "compiling hello (rust)"


class ToolchainMissing(ReactrError):
    """A compiler or SDK piece is not installed; the message ends with the exact command that installs it."""


class BuildFailed(ReactrError):
    """The compiler refused the source; the message is the compiler's own output."""


@dataclass(frozen=True)
class Language:
    name: str  # as written after --lang: "rust", "assemblyscript"
    # True when the folder holds this language's runnable source (e.g. lib.rs, index.ts).
    detect: Callable[[Path], bool]
    # Writes a starter runnable NAME into the (existing, empty) folder.
    scaffold: Callable[[str, Path], None]
    # Raises ToolchainMissing when something needed to build is absent.
    check_toolchain: Callable[[], None]
    # Compiles the source folder into the module file ``out``; raises BuildFailed.
    # ``out`` is a scratch path: the caller renames it into place only on success.
    build: Callable[[Path, Path, Progress], None]


def sdk_dir(language: str) -> Path:
    """Where the guest SDK of ``language`` lives: ``sdk/<language>/`` of this checkout.

    ``REACTR_WASM_SDK`` names another root holding ``rust/`` and ``assemblyscript/``.
    """
    import os

    root = Path(os.environ.get("REACTR_WASM_SDK") or Path(__file__).resolve().parents[2] / "sdk")
    path = root / language
    if not path.is_dir():
        raise ToolchainMissing(
            f"the {language} SDK is not at {path}; point REACTR_WASM_SDK at the sdk/ folder of a reactr-wasm checkout"
        )
    return path
