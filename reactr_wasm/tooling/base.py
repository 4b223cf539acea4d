"""What every guest language offers the ``new`` and ``build`` commands.

One module per language (``rust.py``, ``assemblyscript.py``, ``wat.py``) defines a
``Language`` from module functions named as its fields (``detect``, ``scaffold``,
``check_toolchain``, ``build``); ``build.py`` and ``scaffold.py`` only talk to this interface.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reactr_wasm.errors import ReactrError

PACKAGED_SDK = Path(__file__).resolve().parents[1] / "sdk"  # package data; a link in a checkout
CHECKOUT_SDK = Path(__file__).resolve().parents[2] / "sdk"

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
    """Where the guest SDK of ``language`` lives, e.g. ``.../reactr_wasm/sdk/rust``.

    The SDKs ship inside the package (``reactr_wasm/sdk``, a link to ``sdk/`` in a checkout);
    ``REACTR_WASM_SDK`` names another root holding ``rust/`` and ``assemblyscript/``.
    Raises ToolchainMissing when the folder is not there.
    """
    root = Path(os.environ.get("REACTR_WASM_SDK") or PACKAGED_SDK)
    if root == PACKAGED_SDK and not root.is_dir() and CHECKOUT_SDK.is_dir():
        root = CHECKOUT_SDK  # a checkout made without symbolic links
    path = root / language
    if not path.is_dir():
        raise ToolchainMissing(
            f"the {language} SDK is not at {path}; point REACTR_WASM_SDK at the sdk/ folder of a reactr-wasm checkout"
        )
    return path


def shown(path: Path) -> str:
    """``path`` as a user can paste or click it: relative to the current folder when inside it, else absolute."""
    absolute = path.absolute()
    try:
        relative = str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
    return f"./{relative}" if relative.startswith("-") else relative


_LOCATION = r"^(?P<lead>\s*(?:-->|:::) )"  # rustc's "  --> file:line:col" and "  ::: file:line:col"


def relocate(output: str, prefix: str, folder: Path) -> str:
    """rustc's ``output`` with the locations under ``prefix/`` shown under ``folder`` instead.

    Builds remap source paths to short, location-free prefixes (``hello/lib.rs``) so the module
    bytes do not depend on where the sources are; an editor needs the real path to jump to.
    An empty ``prefix`` moves every relative location (cargo prints paths relative to the package).
    """
    where = shown(folder)
    if prefix:
        pattern = re.compile(_LOCATION + re.escape(prefix) + "/", re.MULTILINE)
    else:
        pattern = re.compile(_LOCATION + "(?![/<])", re.MULTILINE)
    return pattern.sub(lambda match: f"{match['lead']}{where}/", output)
