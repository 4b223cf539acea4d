"""JSON as Reactr's Go host wrote it, for what guests compare byte for byte.

``go_json`` encodes like Go's ``json.Marshal`` of decoded JSON (compact, sorted
keys, HTML-safe escapes): GraphQL answers and ``db_exec`` results.
``json_value`` turns a database driver's value into what Go's encoder showed
for it through Reactr (bytes as base64, times in RFC 3339).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import uuid
from typing import Any

# Go's encoding/json escapes these even inside strings; guests compare bytes.
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(value: Any) -> bytes:
    """Encode like Go's ``json.Marshal`` of decoded JSON: compact, sorted keys, HTML-safe escapes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)  # these characters only occur inside strings
    return text.encode()


def _go_time(value: datetime.datetime) -> str:
    """Go's ``time.Time`` JSON (RFC 3339, nanosecond fraction trimmed); naive values are UTC as pgx reads them."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset() or datetime.timedelta(0)
    if not offset:
        return text + "Z"
    sign, minutes = ("-", -offset) if offset < datetime.timedelta(0) else ("+", offset)
    hours, rest = divmod(int(minutes.total_seconds()) // 60, 60)
    return f"{text}{sign}{hours:02d}:{rest:02d}"


def json_value(value: Any) -> Any:
    """A driver value as Go's ``json.Marshal`` showed it through Reactr: bytes base64, times RFC 3339."""
    if value is None or isinstance(value, bool | int | str | dict | list):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime.datetime):
        return _go_time(value)
    if isinstance(value, datetime.date):
        return _go_time(datetime.datetime(value.year, value.month, value.day))
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, tuple):
        return [json_value(item) for item in value]
    return str(value)


__all__ = ["go_json", "json_value"]
