"""Typed configuration. Built once at start and passed down explicitly.

``load_config(path)`` reads one TOML file (design.md §4) and refuses a bad one
with the file, the key and the reason (``ConfigError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

MIB = 1024 * 1024


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    body_limit: int = 10 * MIB  # bytes; larger bodies get 413
    result_ttl: float = 600.0  # seconds a finished result stays readable
    max_results: int = 10_000  # results kept at most; the oldest expire first
    max_wait: float = 300.0  # longest a then=true or GET /then waits, seconds
    auth_tokens: list[str] = field(default_factory=list)  # empty: no auth
    drain_timeout: float = 30.0  # seconds to finish in-flight work on shutdown


@dataclass
class LimitsConfig:
    timeout: float = 10.0  # seconds per job; the guest is stopped
    memory: int = 256 * MIB  # bytes of linear memory per instance
    result_size: int = 16 * MIB  # bytes of output per job
    queue_size: int = 10_000  # queued jobs per runnable before 503


@dataclass
class CallbackConfig:
    allow_private: bool = False  # loopback, private, link-local, metadata ranges
    allow_http: bool = True
    secret: str | None = None  # HMAC-SHA256 key for X-Reactr-Signature
    attempts: int = 5
    timeout: float = 5.0  # seconds per attempt
    backoff: float = 0.5  # first retry delay, doubled each time, with jitter
    backoff_max: float = 30.0


@dataclass
class RunnableConfig:
    """Per-runnable overrides (``[runnables.NAME]``); None means the global value."""

    pool_size: int = 1
    isolation: Literal["reuse", "fresh"] = "reuse"
    timeout: float | None = None
    memory: int | None = None
    result_size: int | None = None
    queue_size: int | None = None
    prewarm: bool = False


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)
    runnables: dict[str, RunnableConfig] = field(default_factory=dict)
    runnables_dir: Path | None = None
    cache_dir: Path | None = None  # compiled-module cache; None: no disk cache
    source: str = "<defaults>"  # where this config came from, for messages

    def runnable(self, name: str) -> RunnableConfig:
        return self.runnables.get(name) or RunnableConfig()
