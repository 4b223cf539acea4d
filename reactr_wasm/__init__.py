"""reactr-wasm: run Suborbital Reactr WebAssembly runnables from Python.

The public API is what this module exports (``__all__``, each name used in the
README); every other module may change. ``create_app`` and ``serve`` need
aiohttp, so they are imported on first use: ``import reactr_wasm`` does not
load the HTTP server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reactr_wasm.capabilities.cache import MemoryCache
from reactr_wasm.capabilities.grants import Capabilities
from reactr_wasm.config import Config
from reactr_wasm.errors import (
    ConfigError,
    ExecutionError,
    JobCancelled,
    JobTimeout,
    ModuleError,
    QueueFull,
    ReactrError,
    RunErr,
    RunnableNotFound,
)
from reactr_wasm.lazy import lazy_exports
from reactr_wasm.limits import Limits
from reactr_wasm.scheduler.group import Group
from reactr_wasm.scheduler.job import Job, JobStatus, Result
from reactr_wasm.scheduler.reactr import Reactr
from reactr_wasm.scheduler.schedule import after, every
from reactr_wasm.scheduler.targets import Ctx
from reactr_wasm.signing import verify_signature
from reactr_wasm.wasm.engine import FreshPool, WasmEngine
from reactr_wasm.wasm.request import CoordinatedRequest
from reactr_wasm.wasm.runnable import CoordinatedResponse, WasmRunnable

if TYPE_CHECKING:
    from reactr_wasm.server.app import create_app
    from reactr_wasm.server.run import serve

__version__ = "0.1.0"  # the package's version: pyproject.toml reads it from here

# Imported on first use, not with the package: they load aiohttp.
__getattr__, __dir__ = lazy_exports(__name__, {"create_app": "reactr_wasm.server", "serve": "reactr_wasm.server"})


__all__ = [
    "Capabilities",
    "Config",
    "ConfigError",
    "CoordinatedRequest",
    "CoordinatedResponse",
    "Ctx",
    "ExecutionError",
    "FreshPool",
    "Group",
    "Job",
    "JobCancelled",
    "JobStatus",
    "JobTimeout",
    "Limits",
    "MemoryCache",
    "ModuleError",
    "QueueFull",
    "Reactr",
    "ReactrError",
    "Result",
    "RunErr",
    "RunnableNotFound",
    "WasmEngine",
    "WasmRunnable",
    "__version__",
    "after",
    "create_app",
    "every",
    "serve",
    "verify_signature",
]
