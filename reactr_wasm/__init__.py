"""reactr-wasm: run Suborbital Reactr WebAssembly runnables from Python.

The public API is what this module exports (``__all__``, each name used in the
README); every other module may change. ``create_app`` and ``serve`` need
aiohttp, so they are imported on first use: ``import reactr_wasm`` does not
load the HTTP server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .capabilities.cache import MemoryCache
from .capabilities.grants import Capabilities
from .config import Config
from .errors import (
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
from .limits import Limits
from .scheduler.group import Group
from .scheduler.job import Job, JobStatus, Result
from .scheduler.reactr import Reactr
from .scheduler.schedule import after, every
from .scheduler.targets import Ctx
from .signing import verify_signature
from .wasm.engine import FreshPool, WasmEngine
from .wasm.runnable import CoordinatedResponse, WasmRunnable

if TYPE_CHECKING:
    from .server.app import create_app
    from .server.run import serve

__version__ = "0.1.0"  # the package's version: pyproject.toml reads it from here

# Imported on first use, not with the package: they load aiohttp.
_LAZY = {"create_app": "reactr_wasm.server.app", "serve": "reactr_wasm.server.run"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Capabilities",
    "Config",
    "ConfigError",
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
