"""Guest-language tooling behind ``reactr-wasm new`` and ``reactr-wasm build``.

``LANGUAGES`` maps each ``--lang`` name to its ``Language`` (see ``base.py``), in the
order ``build`` tries them; ``STARTERS`` are the languages ``new`` offers: those with
a guest SDK (WAT has no starter).
"""

from __future__ import annotations

from .assemblyscript import ASSEMBLYSCRIPT
from .base import BuildFailed, Language, ToolchainMissing
from .rust import RUST
from .wat import WAT

LANGUAGES: dict[str, Language] = {language.name: language for language in (RUST, ASSEMBLYSCRIPT, WAT)}
STARTERS: tuple[str, ...] = (RUST.name, ASSEMBLYSCRIPT.name)

__all__ = ["LANGUAGES", "STARTERS", "BuildFailed", "Language", "ToolchainMissing"]
