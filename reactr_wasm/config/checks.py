"""The checks behind the config file: each takes a raw TOML value and returns the typed one.

A check raises ``Invalid`` with the reason; ``Reader`` applies a table of
``Rule``s to one parsed table and collects every problem as
``file: dotted.key: reason``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

MASK = "***"  # what a set secret looks like when printed


class Invalid(ValueError):
    """A value breaks its rule: ``reason``, then the value itself unless it is a secret."""

    def __init__(self, reason: str, *value: Any) -> None:
        self.reason = reason
        super().__init__(f"{reason}, got {show(value[0])}" if value else reason)


Check = Callable[[Any], Any]


def show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    text = printable(json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= 60 else text[:57] + "..."


def printable(text: str) -> str:
    """``text`` with every non-printable character (controls, line separators) as a \\u escape.

    Keeps a message to one line per problem; the escapes are valid in TOML and JSON strings.
    """
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}" for ch in text
    )


def quoted(text: str) -> str:
    """``text`` as a one-line TOML basic string."""
    return printable(json.dumps(text, ensure_ascii=False))


def toml_key(key: str) -> str:
    """``key`` as TOML writes it: bare when it can be, else quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else quoted(key)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(low: int, high: int | None = None) -> Check:
    reason = f"must be an integer between {low} and {high}" if high else f"must be an integer of at least {low}"

    def check(value: Any) -> int:
        if not is_int(value) or value < low or (high is not None and value > high):
            raise Invalid(reason, value)
        return int(value)

    return check


def seconds(*, allow_zero: bool = False) -> Check:
    reason = "must be a number of seconds" + (", 0 or more" if allow_zero else " above 0")

    def check(value: Any) -> float:
        try:
            number = float(value) if is_int(value) or isinstance(value, float) else math.nan
        except OverflowError:  # an integer too large for a float (TOML integers are unbounded here)
            number = math.inf
        if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
            raise Invalid(reason, value)
        return number

    return check


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_UNITS |= {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
MAX_SIZE = 2**63 - 1  # sizes reach wasmtime as signed 64-bit integers (which wrap silently beyond)


def parse_size(value: Any) -> int:
    """Bytes (1 to 2^63-1) from an integer or a string like ``"256MiB"``; raises Invalid."""
    reason = 'must be a size above 0: bytes as an integer or a string like "256MiB" or "10MB"'
    if is_int(value):
        size = int(value)
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        # Exact arithmetic: a float would round "1.1GB" and turn 400 digits into inf.
        size = int(Fraction(match.group(1)) * _UNITS[(match.group(2) or "b").lower()])
    else:
        raise Invalid(reason, value)
    if size <= 0:
        raise Invalid(reason, value)
    if size > MAX_SIZE:
        raise Invalid("must be at most 8 EiB (2^63-1 bytes)", value)
    return size


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false", value)
    return value


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid("must be a non-empty string", value)
    return value


def path_string(value: Any) -> str:
    """A file or folder name: a non-empty string without NUL (no file system takes one)."""
    if "\0" in text(value):
        raise Invalid("must not contain a NUL character", value)
    return str(value)


def strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise Invalid("must be a list of non-empty strings", value)
    return list(value)


def ports(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(is_int(item) and 1 <= item <= 65535 for item in value):
        raise Invalid("must be a list of port numbers (1-65535)", value)
    return [int(item) for item in value]


def string_table(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(item, str) and item for item in value.values()):
        raise Invalid("must be a table of non-empty strings")  # values are secrets: not shown
    return {str(key): item for key, item in value.items()}


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


_ENV = re.compile(r"env\(([A-Za-z_][A-Za-z0-9_]*)\)")


class Reader:
    """Applies the rules to one parsed file, collecting every problem."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source, self.env = source, env
        self.problems: list[str] = []

    def problem(self, key: str, reason: str) -> None:
        # printable: one line per problem, also when a reason quotes a value (a file name with a CR, say)
        self.problems.append(f"{self.source}: {key}: {printable(reason)}")

    def expand(self, value: Any) -> Any:
        """Replace every ``env(NAME)`` in strings (also in lists and tables) with the variable.

        ``"env(TOKEN)"`` is the variable's value; ``"Bearer env(TOKEN)"`` keeps the prefix.
        """
        if isinstance(value, list):
            return [self.expand(item) for item in value]
        if isinstance(value, dict):
            return {key: self.expand(item) for key, item in value.items()}
        if isinstance(value, str):
            if value.strip() != value and _ENV.fullmatch(value.strip()):
                value = value.strip()
            return _ENV.sub(self._variable, value)
        return value

    def _variable(self, match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in self.env:
            raise Invalid(f"environment variable {name} is not set")
        return self.env[name]

    def table(self, key: str, raw: Any, rules: Mapping[str, Rule]) -> dict[str, Any]:
        """The checked values of one table; unknown or bad keys become problems."""
        if not isinstance(raw, dict):
            self.problem(key, f"must be a table ([{key}]), got {show(raw)}")
            return {}
        values: dict[str, Any] = {}
        for name, value in raw.items():
            dotted = f"{key}.{toml_key(name)}" if key else toml_key(name)
            rule = rules.get(name)
            if rule is None:
                self.problem(dotted, f"unknown key; known keys: {', '.join(rules)}")
                continue
            try:
                values[name] = rule.check(self.expand(value))
            except Invalid as error:
                self.problem(dotted, error.reason if rule.secret else str(error))
        return values
