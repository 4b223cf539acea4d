"""The HTTP server: ``create_app(reactr, config)`` builds the aiohttp app, ``serve(reactr, config)`` runs it.

Both are imported on first use, so importing a module of this package (or
``reactr_wasm``) does not load the routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reactr_wasm.lazy import lazy_exports

if TYPE_CHECKING:
    from reactr_wasm.server.app import create_app
    from reactr_wasm.server.run import serve

__getattr__, __dir__ = lazy_exports(__name__, {"create_app": f"{__name__}.app", "serve": f"{__name__}.run"})

__all__ = ["create_app", "serve"]
