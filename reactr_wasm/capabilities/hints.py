"""What a refusal tells the operator to change: the setting, and the TOML line or table it goes in.

The guest receives Reactr's refusal text with the hint after it
(``capability is not enabled; grant it with [runnables.fetch] capabilities =
["http"]``), so an SDK comparing the start of the text still matches; the
host's log line carries the same hint.
"""

from __future__ import annotations

import json
import re

from reactr_wasm.capabilities.registry import NAMES

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(name: str) -> str:
    """``name`` as a TOML key: bare when it can be, else quoted (``"my app"``)."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def grant_line(runnable: str, capabilities: list[str]) -> str:
    """The config line granting ``capabilities`` to ``runnable``: ``[runnables.fetch] capabilities = ["http"]``."""
    listed = ", ".join(f'"{name}"' for name in NAMES if name in capabilities)
    return f"[runnables.{toml_key(runnable)}] capabilities = [{listed}]"


def grant_hint(runnable: str, granted: list[str], capability: str) -> str:
    """How to grant ``capability`` to ``runnable`` while keeping what it is ``granted`` now."""
    return f"grant it with {grant_line(runnable, [*granted, capability])}"


def rule_hint(runnable: str, setting: str) -> str:
    """Where ``setting`` of the HTTP rules goes: for every runnable, or for this one."""
    return f"allow with {setting} in [capabilities.http] or [runnables.{toml_key(runnable)}.http]"


__all__ = ["grant_hint", "grant_line", "rule_hint", "toml_key"]
