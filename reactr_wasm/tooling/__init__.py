"""Guest-language tooling behind ``reactr-wasm new`` and ``reactr-wasm build``.

``LANGUAGES`` maps each ``--lang`` name to its ``Language`` (see ``base.py``), in the
order ``build`` tries them; ``new`` offers a starter in each. ``RUST_CARGO`` is the
Rust starter as a Cargo project (``new --lang rust --cargo``).
"""

from __future__ import annotations

from reactr_wasm.tooling.assemblyscript import ASSEMBLYSCRIPT
from reactr_wasm.tooling.base import BuildFailed, Language, ToolchainMissing
from reactr_wasm.tooling.rust import RUST, RUST_CARGO
from reactr_wasm.tooling.wat import WAT

LANGUAGES: dict[str, Language] = {language.name: language for language in (RUST, ASSEMBLYSCRIPT, WAT)}
STARTERS: tuple[str, ...] = tuple(LANGUAGES)

__all__ = ["LANGUAGES", "RUST_CARGO", "STARTERS", "BuildFailed", "Language", "ToolchainMissing"]
