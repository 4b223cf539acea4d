"""A job's value as bytes: the one rule shared by HTTP answers, callbacks and ``run_job``."""

from __future__ import annotations

import json
from typing import Any

from ..wasm.runnable import CoordinatedResponse


def value_bytes(value: Any) -> bytes:
    """bytes as they are; a request job's response -> its output; str -> UTF-8; None -> empty;
    anything else -> compact JSON. Raises TypeError/ValueError for a value JSON cannot encode.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, CoordinatedResponse):
        return value.output
    if isinstance(value, str):
        return value.encode()
    if value is None:
        return b""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
