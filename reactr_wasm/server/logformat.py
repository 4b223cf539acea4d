"""How log records become lines on stderr: the text format and JSON lines.

- ``text``: ``2026-12-02 13:57:42,182 INFO reactr_wasm.server.run: listening on 127.0.0.1:8080``
- ``json``: one object per line, ``{"time": "2026-12-02T13:57:42.182Z", "level": "INFO",
  "logger": "reactr_wasm.server.run", "message": "listening on 127.0.0.1:8080"}``, plus the
  record's ``extra`` fields under their own names (a guest's log line: ``runnable``,
  ``result_id``, ``request_id``; an access line: see ``access_log.py``), a traceback under
  ``exception`` and a stack under ``stack``. Times are UTC; text times are local, as before.

Neither format needs a library: the standard ``logging`` module does the work and the
JSON object is ~20 lines here (python-json-logger would add a dependency for the same
dict-to-``json.dumps``; structlog would replace ``logging`` everywhere).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HANDLER_NAME = "reactr_wasm.stderr"  # the handler setup_logging installs
RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}  # not extra fields


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller added to ``record`` with ``extra=``, in order; not the LogRecord's own attributes.

    Names starting with ``_`` are markers for the log filters, not fields.
    """
    return {key: value for key, value in vars(record).items() if key not in RECORD_ATTRIBUTES and key[0] != "_"}


class _Stamps:
    """``time.strftime`` of a record's second, kept for the next record in the same second (~1.5 µs each)."""

    def __init__(self, fmt: str, convert: Any) -> None:
        self._fmt, self._convert = fmt, convert
        self._last: tuple[int, str] = (-1, "")  # one tuple: threads read and swap it whole

    def __call__(self, created: float) -> str:
        second = int(created)
        last = self._last
        if last[0] != second:
            last = self._last = (second, time.strftime(self._fmt, self._convert(second)))
        return last[1]


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, as ``logging.Formatter(TEXT_FORMAT)`` writes it, in half the time.

    The time string is made once a second and the line with an f-string.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._stamps = _Stamps("%Y-%m-%d %H:%M:%S", time.localtime)

    def usesTime(self) -> bool:
        return True

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{self._stamps(record.created)},{int(record.msecs):03d}"

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"{record.asctime} {record.levelname} {record.name}: {record.message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring); any value JSON lacks is written as ``str(value)``."""

    def __init__(self) -> None:
        super().__init__()
        self._stamps = _Stamps("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": f"{self._stamps(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            data.setdefault(key, value)  # an extra named like a standard field does not replace it
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str)  # ASCII only: any stderr encoding takes it; newlines escaped


def make_formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def setup_logging(level: str, log_format: LogFormat = "text", stream: TextIO | None = None) -> None:
    """Log records of ``level`` and above to ``stream`` (stderr) in ``log_format``, as ``logging.basicConfig``.

    Like basicConfig, does nothing when the root logger has handlers already.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(make_formatter(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def set_log_format(log_format: LogFormat) -> None:
    """Switch the handler ``setup_logging`` installed to ``log_format``."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == HANDLER_NAME:
            handler.setFormatter(make_formatter(log_format))
