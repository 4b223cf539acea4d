"""Guest-language tooling behind ``reactr-wasm new`` and ``reactr-wasm build``.

``LANGUAGES`` maps each ``--lang`` name to its ``Language`` (see ``base.py``);
``STARTERS`` are the languages ``new`` offers: those with a guest SDK.
"""

from __future__ import annotations

from .base import BuildFailed, Language, ToolchainMissing
from .rust import RUST
from .wat import WAT

_languages: list[Language] = [RUST]
try:  # TEMPORARY while the AssemblyScript module is being written
    from .assemblyscript import ASSEMBLYSCRIPT  # type: ignore[import-not-found, unused-ignore]

    _languages.append(ASSEMBLYSCRIPT)
except ImportError:
    pass

LANGUAGES: dict[str, Language] = {language.name: language for language in (*_languages, WAT)}
STARTERS: tuple[str, ...] = tuple(name for name in LANGUAGES if name != WAT.name)

__all__ = ["LANGUAGES", "STARTERS", "BuildFailed", "Language", "ToolchainMissing"]
