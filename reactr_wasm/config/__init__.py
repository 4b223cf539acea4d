"""Typed configuration. Built once at start and passed down explicitly.

``load_config(path)`` reads one TOML file (design.md §4) and refuses a bad one
with a ``ConfigError`` whose every line names the file, the dotted key and the
reason: ``reactr.toml: server.port: must be an integer between 1 and 65535, got "x"``.

Why plain dataclasses and a table of small checks rather than pydantic (or
attrs/cattrs, msgspec): the config is four flat sections of scalars; the
dataclasses below are used across the package and must keep their shape; the
messages must read ``file: dotted.key: reason`` (pydantic's need reformatting
anyway); and ``env(NAME)`` secrets, size strings and masking are ours either
way. A table keeps each rule on one line, next to the field it checks, for
about 150 lines and no new dependency (pydantic is a compiled package of its
own, pulled in for one function that runs once at start).

File rules:
- Sizes are integers (bytes) or strings with a unit: ``"10MB"`` (1000-based),
  ``"256MiB"`` (1024-based), ``"512 KiB"``, ``"1.5GiB"``.
- Durations are numbers of seconds (``10``, ``0.5``).
- Any string value may be written ``env(NAME)``: it is read from the
  environment when the file is loaded; an unset variable is an error.
- Relative paths are relative to the folder of the config file.
- ``Config.redacted()`` is the config as plain data with secrets masked, for
  printing; ``dump_toml`` turns it back into TOML that ``load_config`` reads.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

MIB = 1024 * 1024
MASK = "***"  # what a set secret looks like in redacted()


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
    cache_dir: Path | None = None  # compiled-module cache; None: see compose.cache_dir_for
    source: str = "<defaults>"  # where this config came from, for messages

    def runnable(self, name: str) -> RunnableConfig:
        return self.runnables.get(name) or RunnableConfig()

    def redacted(self) -> dict[str, Any]:
        """This config as plain TOML-shaped data, secrets masked; for printing."""
        data: dict[str, Any] = {key: str(getattr(self, key)) for key in TOP_LEVEL if getattr(self, key) is not None}
        for section, (_, fields) in SECTIONS.items():
            values = asdict(getattr(self, section))
            for key, rule in fields.items():
                if rule.secret and values[key]:
                    values[key] = [MASK] * len(values[key]) if isinstance(values[key], list) else MASK
            data[section] = values
        data["runnables"] = {name: asdict(overrides) for name, overrides in self.runnables.items()}
        return data


# ---------------------------------------------------------------------------
# Checks: each takes the raw TOML value and returns the typed one, or raises
# Invalid with the reason.


class Invalid(ValueError):
    """A value breaks its rule: ``reason``, then the value itself unless it is a secret."""

    def __init__(self, reason: str, *value: Any) -> None:
        self.reason = reason
        super().__init__(f"{reason}, got {_show(value[0])}" if value else reason)


Check = Callable[[Any], Any]


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(low: int, high: int | None = None) -> Check:
    reason = f"must be an integer between {low} and {high}" if high else f"must be an integer of at least {low}"

    def check(value: Any) -> int:
        if not _is_int(value) or value < low or (high is not None and value > high):
            raise Invalid(reason, value)
        return int(value)

    return check


def seconds(*, allow_zero: bool = False) -> Check:
    reason = "must be a number of seconds" + (", 0 or more" if allow_zero else " above 0")

    def check(value: Any) -> float:
        ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
        if not ok or value < 0 or (value == 0 and not allow_zero):
            raise Invalid(reason, value)
        return float(value)

    return check


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_UNITS |= {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(value: Any) -> int:
    """Bytes from an integer or a string like ``"256MiB"``; raises Invalid."""
    reason = 'must be a size above 0: bytes as an integer or a string like "256MiB" or "10MB"'
    if _is_int(value):
        size = int(value)
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        size = int(float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()])
    else:
        raise Invalid(reason, value)
    if size <= 0:
        raise Invalid(reason, value)
    return size


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false", value)
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid("must be a non-empty string", value)
    return value


def strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise Invalid("must be a list of non-empty strings", value)
    return list(value)


def choice(*options: str) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            raise Invalid(f"must be one of {', '.join(map(json.dumps, options))}", value)
        return str(value)

    return check


@dataclass(frozen=True)
class Rule:
    check: Check
    secret: bool = False  # masked in redacted() and in error messages


SERVER = {
    "host": Rule(text),
    "port": Rule(integer(1, 65535)),
    "body_limit": Rule(parse_size),
    "result_ttl": Rule(seconds()),
    "max_results": Rule(integer(1)),
    "max_wait": Rule(seconds()),
    "auth_tokens": Rule(strings, secret=True),
    "drain_timeout": Rule(seconds(allow_zero=True)),
}
LIMITS = {
    "timeout": Rule(seconds()),
    "memory": Rule(parse_size),
    "result_size": Rule(parse_size),
    "queue_size": Rule(integer(1)),
}
CALLBACKS = {
    "allow_private": Rule(boolean),
    "allow_http": Rule(boolean),
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
}
TOP_LEVEL = {"runnables_dir": Rule(text), "cache_dir": Rule(text)}

# Top-level [section] -> (its dataclass, its rules); a new section is one line
# here plus its dataclass and a field of the same name on Config.
SECTIONS: dict[str, tuple[type[Any], dict[str, Rule]]] = {
    "server": (ServerConfig, SERVER),
    "limits": (LimitsConfig, LIMITS),
    "callbacks": (CallbackConfig, CALLBACKS),
}

_ENV = re.compile(r"^env\(([A-Za-z_][A-Za-z0-9_]*)\)$")


class _Reader:
    """Applies the rules to one parsed file, collecting every problem."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source, self.env = source, env
        self.problems: list[str] = []

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(f"{self.source}: {key}: {reason}")

    def expand(self, value: Any) -> Any:
        """Replace ``env(NAME)`` strings (alone or in a list) with the variable."""
        if isinstance(value, list):
            return [self.expand(item) for item in value]
        if isinstance(value, str) and (match := _ENV.match(value.strip())):
            name = match.group(1)
            if name not in self.env:
                raise Invalid(f"environment variable {name} is not set")
            return self.env[name]
        return value

    def table(self, key: str, raw: Any, rules: Mapping[str, Rule]) -> dict[str, Any]:
        """The checked values of one table; unknown or bad keys become problems."""
        if not isinstance(raw, dict):
            self.problem(key, f"must be a table ([{key}]), got {_show(raw)}")
            return {}
        values: dict[str, Any] = {}
        for name, value in raw.items():
            dotted = f"{key}.{name}" if key else name
            rule = rules.get(name)
            if rule is None:
                self.problem(dotted, f"unknown key; known keys: {', '.join(rules)}")
                continue
            try:
                values[name] = rule.check(self.expand(value))
            except Invalid as error:
                self.problem(dotted, error.reason if rule.secret else str(error))
        return values


def _known_top_level() -> list[str]:
    return [*TOP_LEVEL, *SECTIONS, "runnables"]


def parse_config(data: Mapping[str, Any], *, source: str, base: Path, env: Mapping[str, str]) -> Config:
    """Build a Config from parsed TOML; raises ConfigError listing every problem."""
    reader = _Reader(source, env)
    top = reader.table("", {k: v for k, v in data.items() if k in TOP_LEVEL}, TOP_LEVEL)
    sections: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS:
            cls, rules = SECTIONS[key]
            sections[key] = cls(**reader.table(key, value, rules))
        elif key not in TOP_LEVEL and key != "runnables":
            reader.problem(key, f"unknown key; known keys: {', '.join(_known_top_level())}")
    runnables: dict[str, RunnableConfig] = {}
    raw_runnables = data.get("runnables", {})
    if not isinstance(raw_runnables, dict):
        reader.problem("runnables", f"must be a table of [runnables.NAME] tables, got {_show(raw_runnables)}")
    else:
        for name, raw in raw_runnables.items():
            runnables[name] = RunnableConfig(**reader.table(f"runnables.{name}", raw, RUNNABLE))
    callbacks = sections.get("callbacks")
    if callbacks is not None and callbacks.backoff_max < callbacks.backoff:
        reader.problem("callbacks.backoff_max", f"must be at least callbacks.backoff ({callbacks.backoff})")
    if reader.problems:
        raise ConfigError("\n".join(reader.problems))
    paths = {key: base / os.path.expanduser(value) for key, value in top.items()}
    return Config(**sections, runnables=runnables, source=source, **paths)


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
    return parse_config(data, source=source, base=path.parent, env=os.environ if env is None else env)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # JSON string escapes are valid TOML


def dump_toml(data: Mapping[str, Any]) -> str:
    """TOML text for ``Config.redacted()``-shaped data; None values are left out."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if key == "runnables":
            tables += [(f"{key}.{_toml_key(name)}", sub) for name, sub in value.items()]
        elif isinstance(value, dict):
            tables.append((_toml_key(key), value))
        elif value is not None:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for header, values in tables:
        lines += ["", f"[{header}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines).lstrip("\n") + "\n"
