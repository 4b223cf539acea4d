"""reactr-wasm: run Suborbital Reactr WebAssembly runnables from Python."""

from .config import Config
from .errors import (
    ConfigError,
    ExecutionError,
    HostCallError,
    JobCancelled,
    JobTimeout,
    ModuleError,
    QueueFull,
    ReactrError,
    RunErr,
    RunnableNotFound,
)
from .limits import Limits
from .scheduler.job import Job, JobStatus, Result
from .scheduler.reactr import Reactr
from .scheduler.targets import Ctx
from .wasm.engine import FreshPool, WasmEngine
from .wasm.runnable import CoordinatedResponse, WasmRunnable

__all__ = [
    "Config",
    "ConfigError",
    "CoordinatedResponse",
    "Ctx",
    "ExecutionError",
    "FreshPool",
    "HostCallError",
    "Job",
    "JobCancelled",
    "JobStatus",
    "JobTimeout",
    "Limits",
    "ModuleError",
    "QueueFull",
    "Reactr",
    "ReactrError",
    "Result",
    "RunErr",
    "RunnableNotFound",
    "WasmEngine",
    "WasmRunnable",
]
