"""The HTTP server: ``create_app(reactr, config)`` builds the aiohttp app, ``serve(reactr, config)`` runs it.

Both are imported on first use, so importing a module of this package (or
``reactr_wasm``) does not load the routes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reactr_wasm.server.app import create_app
    from reactr_wasm.server.run import serve

_LAZY = {"create_app": f"{__name__}.app", "serve": f"{__name__}.run"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found directly from now on
    return value


__all__ = ["create_app", "serve"]
