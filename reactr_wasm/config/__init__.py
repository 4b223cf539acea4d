"""Typed configuration. Built once at start and passed down explicitly.

``load_config(path)`` reads one TOML file (design.md §4) and refuses a bad one
with a ``ConfigError`` whose every line names the file, the dotted key and the
reason: ``reactr.toml: server.port: must be an integer between 1 and 65535, got "x"``.

Why plain dataclasses and a table of small checks rather than pydantic (or
attrs/cattrs, msgspec): the config is a few small sections; the
dataclasses below are used across the package and must keep their shape; the
messages must read ``file: dotted.key: reason`` (pydantic's need reformatting
anyway); and ``env(NAME)`` secrets, size strings and masking are ours either
way. A table keeps each rule on one line, next to the field it checks, for
about 150 lines and no new dependency (pydantic is a compiled package of its
own, pulled in for one function that runs once at start).

File rules:
- Sizes are integers (bytes) or strings with a unit: ``"10MB"`` (1000-based),
  ``"256MiB"`` (1024-based), ``"512 KiB"``, ``"1.5GiB"``; from 1 byte to 2^63-1.
- Durations are numbers of seconds (``10``, ``0.5``).
- Any string value may hold ``env(NAME)`` (``"env(TOKEN)"``, ``"Bearer env(TOKEN)"``):
  it is read from the environment when the file is loaded; an unset variable
  is an error.
- The checks live in ``checks.py``; the ``[capabilities]`` section in
  ``capabilities.py``.
- Relative paths are relative to the folder of the config file; a NUL in a path is refused.
- Keys that are not bare TOML keys are quoted in messages (``runnables."my app".timeout``),
  and control characters escaped, so each problem is one line.
- ``Config.redacted()`` is the config as plain data with secrets masked, for
  printing; ``dump_toml`` turns it back into TOML that ``load_config`` reads.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from reactr_wasm.config.capabilities import (
    SECRET_KEYS,
    CapabilitiesConfig,
    check_grants,
    grant_list,
    read_capabilities,
    read_http,
    redact_table,
)
from reactr_wasm.config.checks import (
    MASK,
    Invalid,
    Reader,
    Rule,
    boolean,
    choice,
    integer,
    parse_size,
    path_string,
    quoted,
    seconds,
    show,
    strings,
    text,
    toml_key,
)
from reactr_wasm.config.cluster import CLUSTER, ClusterConfig, check_cluster, visibility_problem
from reactr_wasm.config.egress import EGRESS, EgressSettings, finish_egress
from reactr_wasm.errors import ConfigError
from reactr_wasm.limits import MIB, QUEUE_SIZE, Limits

__all__ = [
    "MASK",
    "CallbackConfig",
    "CapabilitiesConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "Invalid",
    "LimitsConfig",
    "LogConfig",
    "RunnableConfig",
    "ServerConfig",
    "dump_toml",
    "job_timeouts",
    "load_config",
    "parse_config",
    "parse_size",
    "visibility_problem",
]


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    body_limit: int = 10 * MIB  # bytes; larger bodies get 413
    result_ttl: float = 600.0  # seconds a finished result stays readable
    max_results: int = 10_000  # results kept at most; the oldest expire first
    max_result_bytes: int = 512 * MIB  # bytes of results kept at most; the oldest expire first
    max_wait: float = 300.0  # longest a then=true or GET /then waits, seconds
    auth_tokens: list[str] = field(default_factory=list)  # empty: no auth
    drain_timeout: float = 30.0  # seconds to finish in-flight work on shutdown
    # Slow and idle clients (server/connections.py): each holds a connection, so each is bounded.
    header_timeout: float = 10.0  # seconds for a request line and headers to arrive, from the first byte
    body_timeout: float = 60.0  # seconds for a whole request body to arrive, from the end of its head
    keepalive_timeout: float = 75.0  # seconds an idle keep-alive connection stays open
    max_connections: int = 10_000  # open connections at most (fewer if the open-file limit is lower)
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"  # auto: uvloop when installed (extra [fast])
    workers: int = 1  # server processes sharing the port (server/supervisor.py); more than 1 needs [cluster] redis


@dataclass
class LimitsConfig:
    """``[limits]``: every runnable's ``Limits`` and queue bound, unless ``[runnables.NAME]`` says otherwise."""

    timeout: float = Limits.timeout  # seconds per job; the guest is stopped
    memory: int = Limits.memory  # bytes of linear memory per instance
    result_size: int = Limits.result_size  # bytes of output per job
    queue_size: int = QUEUE_SIZE  # queued jobs per runnable before 503
    fresh_instances: int | None = None  # isolation="fresh" instances at once; None: 2 x their pool sizes + 16


@dataclass
class LogConfig:
    """``[log]``: what ``serve`` writes to stderr (server/logformat.py, server/access_log.py)."""

    access: bool = False  # one line per request on the reactr_wasm.access logger, at INFO
    format: Literal["text", "json"] = "text"  # json: one object per line, for every record


@dataclass
class CallbackConfig(EgressSettings):
    """``[callbacks]``: where callback URLs may point, retries, signing; and how requests leave (``EgressSettings``)."""

    allow_private: bool = False  # loopback, private, link-local, metadata ranges
    allow_http: bool = True
    allowed_domains: list[str] = field(default_factory=list)  # empty: any; "*.example.com" patterns
    blocked_domains: list[str] = field(default_factory=list)
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
    capabilities: list[str] | None = None  # None: [capabilities].grant
    http: dict[str, Any] = field(default_factory=dict)  # [runnables.NAME.http]: over [capabilities.http]


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)
    capabilities: CapabilitiesConfig = field(default_factory=CapabilitiesConfig)
    runnables: dict[str, RunnableConfig] = field(default_factory=dict)
    log: LogConfig = field(default_factory=LogConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # [cluster]: Redis mode (config/cluster.py)
    runnables_dir: Path | None = None
    cache_dir: Path | None = None  # compiled-module cache; None: see compose.cache_dir_for
    source: str = "<defaults>"  # where this config came from, for messages

    def runnable(self, name: str) -> RunnableConfig:
        return self.runnables.get(name) or RunnableConfig()

    def grants(self, name: str) -> list[str]:
        """The capabilities runnable ``name`` may use."""
        own = self.runnable(name).capabilities
        return own if own is not None else self.capabilities.grant

    def secrets(self) -> list[str]:
        """Every secret value as configured (what ``redacted`` masks): from rules marked secret, every table."""
        found: list[Any] = []
        for section, (_, rules) in SECTIONS.items():
            found += [getattr(getattr(self, section), key) for key, rule in rules.items() if rule.secret]
        for key in SECRET_KEYS:
            found += [getattr(settings, key, None) for settings in self.capabilities.sections().values()]
            found += [overrides.http.get(key) for overrides in self.runnables.values()]
        values: list[str] = []
        for value in found:
            items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
            values += [item for item in items if isinstance(item, str) and item]
        return values

    def redacted(self) -> dict[str, Any]:
        """This config as plain TOML-shaped data, secrets masked; for printing."""
        data: dict[str, Any] = {key: str(getattr(self, key)) for key in TOP_LEVEL if getattr(self, key) is not None}
        for section, (_, fields) in SECTIONS.items():
            values = redact_table(asdict(getattr(self, section)))
            for key, rule in fields.items():
                if rule.secret and values[key]:
                    values[key] = [MASK] * len(values[key]) if isinstance(values[key], list) else MASK
            data[section] = values
        data["capabilities"] = self.capabilities.redacted()
        data["runnables"] = {name: _runnable_data(overrides) for name, overrides in self.runnables.items()}
        return data


def job_timeouts(limits: LimitsConfig, runnables: dict[str, RunnableConfig]) -> list[tuple[str, float]]:
    """Every job timeout a config sets, as ``(dotted key, seconds)``: the default and each runnable's own."""
    timeouts = [("limits.timeout", limits.timeout)]
    return timeouts + [(f"runnables.{toml_key(n)}.timeout", r.timeout) for n, r in runnables.items() if r.timeout]


def _runnable_data(overrides: RunnableConfig) -> dict[str, Any]:
    data = asdict(overrides)
    data["http"] = redact_table(dict(overrides.http))
    if not data["http"]:
        del data["http"]
    return data


SERVER = {
    "host": Rule(text),
    "port": Rule(integer(1, 65535)),
    "body_limit": Rule(parse_size),
    "result_ttl": Rule(seconds()),
    "max_results": Rule(integer(1)),
    "max_result_bytes": Rule(parse_size),
    "max_wait": Rule(seconds()),
    "auth_tokens": Rule(strings, secret=True),
    "drain_timeout": Rule(seconds(allow_zero=True)),
    "header_timeout": Rule(seconds()),
    "body_timeout": Rule(seconds()),
    "keepalive_timeout": Rule(seconds()),
    "max_connections": Rule(integer(1)),
    "loop": Rule(choice("auto", "asyncio", "uvloop")),
    "workers": Rule(integer(1, 256)),
}
LIMITS = {
    "timeout": Rule(seconds()),
    "memory": Rule(parse_size),
    "result_size": Rule(parse_size),
    "queue_size": Rule(integer(1)),
    "fresh_instances": Rule(integer(1, 100_000)),
}
CALLBACKS = {
    **EGRESS,  # first, as EgressSettings' fields come first
    "allow_private": Rule(boolean),
    "allow_http": Rule(boolean),
    "allowed_domains": Rule(strings),
    "blocked_domains": Rule(strings),
    "secret": Rule(text, secret=True),
    "attempts": Rule(integer(1, 100)),
    "timeout": Rule(seconds()),
    "backoff": Rule(seconds(allow_zero=True)),
    "backoff_max": Rule(seconds(allow_zero=True)),
}
RUNNABLE = {
    "pool_size": Rule(integer(1, 1024)),
    "isolation": Rule(choice("reuse", "fresh")),
    "timeout": Rule(seconds()),
    "memory": Rule(parse_size),
    "result_size": Rule(parse_size),
    "queue_size": Rule(integer(1)),
    "prewarm": Rule(boolean),
    "capabilities": Rule(grant_list),
}
LOG = {
    "access": Rule(boolean),
    "format": Rule(choice("text", "json")),
}
TOP_LEVEL = {"runnables_dir": Rule(path_string), "cache_dir": Rule(path_string)}

# Top-level [section] -> (its dataclass, its rules); a new section is one line
# here plus its dataclass and a field of the same name on Config.
SECTIONS: dict[str, tuple[type[Any], dict[str, Rule]]] = {
    "server": (ServerConfig, SERVER),
    "limits": (LimitsConfig, LIMITS),
    "callbacks": (CallbackConfig, CALLBACKS),
    "log": (LogConfig, LOG),
    "cluster": (ClusterConfig, CLUSTER),
}


def _known_top_level() -> list[str]:
    return [*TOP_LEVEL, *SECTIONS, "capabilities", "runnables"]


def parse_config(data: Mapping[str, Any], *, source: str, base: Path, env: Mapping[str, str]) -> Config:
    """Build a Config from parsed TOML; raises ConfigError listing every problem."""
    reader = Reader(source, env)
    top = reader.table("", {k: v for k, v in data.items() if k in TOP_LEVEL}, TOP_LEVEL)
    sections: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS:
            cls, rules = SECTIONS[key]
            values = reader.table(key, value, rules)
            if issubclass(cls, EgressSettings):
                values = finish_egress(reader, key, values, base)
            sections[key] = cls(**values)
        elif key == "capabilities":
            sections[key] = read_capabilities(reader, value, base)
        elif key not in TOP_LEVEL and key != "runnables":
            reader.problem(toml_key(key), f"unknown key; known keys: {', '.join(_known_top_level())}")
    runnables: dict[str, RunnableConfig] = {}
    raw_runnables = data.get("runnables", {})
    if not isinstance(raw_runnables, dict):
        reader.problem("runnables", f"must be a table of [runnables.NAME] tables, got {show(raw_runnables)}")
    else:
        for name, raw in raw_runnables.items():
            runnables[name] = _runnable(reader, name, raw, base)
    capabilities = sections.get("capabilities") or CapabilitiesConfig()
    grants = {"capabilities.grant": capabilities.grant}
    for name, own in runnables.items():
        if own.capabilities:
            grants[f"runnables.{toml_key(name)}.capabilities"] = own.capabilities
    check_grants(reader, capabilities, grants)
    callbacks = sections.get("callbacks")
    if callbacks is not None and callbacks.backoff_max < callbacks.backoff:
        reader.problem("callbacks.backoff_max", f"must be at least callbacks.backoff ({callbacks.backoff})")
    limits = sections.get("limits") or LimitsConfig()
    check_cluster(reader, sections.get("cluster"), job_timeouts(limits, runnables))
    if reader.problems:
        raise ConfigError("\n".join(reader.problems))
    paths = {key: base / os.path.expanduser(value) for key, value in top.items()}
    return Config(**sections, runnables=runnables, source=source, **paths)


def _runnable(reader: Reader, name: str, raw: Any, base: Path) -> RunnableConfig:
    where = f"runnables.{toml_key(name)}"
    if not isinstance(raw, dict):
        reader.problem(where, f"must be a table ([{where}]), got {show(raw)}")
        return RunnableConfig()
    own = RunnableConfig(**reader.table(where, {k: v for k, v in raw.items() if k != "http"}, RUNNABLE))
    if "http" in raw:
        own.http = read_http(reader, f"{where}.http", raw["http"], base)
    return own


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate one TOML config file.

    ``env`` defaults to ``os.environ`` (for ``env(NAME)`` values). Raises
    ConfigError naming the file, the key and the reason for each problem.
    """
    path = Path(path)
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{source}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: invalid TOML: {error}") from None
    except ValueError as error:  # an integer too long to convert (tomllib does not wrap it)
        raise ConfigError(f"{source}: invalid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: arrays or tables nested too deeply") from None
    return parse_config(data, source=source, base=path.parent, env=os.environ if env is None else env)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    return quoted(str(value))


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _dump_table(lines: list[str], path: list[str], table: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if v is not None and not isinstance(v, dict) and not _is_table_array(v)}
    nested = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not nested) and (table or len(path) > 1):  # no empty top-level [runnables]
        lines += ["", f"[{'.'.join(path)}]"]
    lines += [f"{toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items()]
    for key, value in table.items():
        if _is_table_array(value):
            for item in value:
                lines += ["", f"[[{'.'.join([*path, toml_key(key)])}]]"]
                lines += [f"{toml_key(k)} = {_toml_value(v)}" for k, v in item.items() if v is not None]
    for key, value in nested.items():
        _dump_table(lines, [*path, toml_key(key)], value)


def dump_toml(data: Mapping[str, Any]) -> str:
    """TOML text for ``Config.redacted()``-shaped data; None values are left out."""
    lines: list[str] = []
    _dump_table(lines, [], data)
    return "\n".join(lines).lstrip("\n") + "\n"
