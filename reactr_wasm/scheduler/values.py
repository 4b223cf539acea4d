"""A job's value as bytes: the one encoding rule behind HTTP answers, callbacks, stored records and ``run_job``.

- bytes as they are, ``application/octet-stream``;
- a request job's ``CoordinatedResponse``: its output, with the headers the
  runnable set (a Content-Type among them wins; framing headers are dropped);
- str as UTF-8, ``text/plain; charset=utf-8``;
- None: empty, no Content-Type;
- anything else: compact JSON, ``application/json``.

``record_of`` applies it once, when a job's record is made for a result store.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from reactr_wasm.backends.records import FINISHED, ErrorKind, Headers, JobRecord, classify
from reactr_wasm.scheduler.job import Result
from reactr_wasm.wasm.runnable import CoordinatedResponse

log = logging.getLogger(__name__)

OCTET = "application/octet-stream"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"

# Headers a runnable may not set on an HTTP response: they frame the message
# or belong to the server.
_RESERVED_HEADERS = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "x-request-id",
    }
)
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def value_bytes(value: Any) -> bytes:
    """The body of ``value`` by the rules above; raises TypeError/ValueError for a value JSON cannot encode."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, CoordinatedResponse):
        return value.output
    if isinstance(value, str):
        return value.encode()
    if value is None:
        return b""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def encode_value(value: Any) -> tuple[bytes, str | None, dict[str, str] | None]:
    """``(body, content type, extra headers)`` for a job's value, by the rules above.

    Raises TypeError/ValueError for a value JSON cannot encode.
    """
    body = value_bytes(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return body, OCTET, None
    if isinstance(value, CoordinatedResponse):
        headers = response_headers(value.resp_headers)
        content_type = OCTET
        for name in [name for name in headers if name.lower() == "content-type"]:
            content_type = headers.pop(name)
        return body, content_type, headers or None
    if isinstance(value, str):
        return body, TEXT, None
    return body, (None if value is None else JSON), None


def response_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers a runnable set that can go on an HTTP response; others are dropped."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        if (
            name
            and set(name) <= _TOKEN
            and name.lower() not in _RESERVED_HEADERS
            and isinstance(value, str)
            and value.isprintable()
        ):
            kept[name] = value
        else:
            log.debug("dropping response header %r set by a runnable", name)
    return kept


def record_of(result: Result, *, key: str | None = None, fingerprint: str | None = None) -> JobRecord:
    """The record of ``result`` as it is now; a finished one carries its encoded value or its error."""
    status = result.status  # read first: a Result sets its value, error and finish time before its status
    if status not in FINISHED:
        return JobRecord(
            result.id, result.job.name, status, result.created, result.started, key=key, fingerprint=fingerprint
        )
    return JobRecord(
        result.id, result.job.name, status, result.created, result.started, result.finished, *_outcome(result),
        key=key, fingerprint=fingerprint,
    )  # fmt: skip


_Fields = tuple[bytes, str | None, Headers | None, ErrorKind | None, int, str, str | None]


def _outcome(result: Result) -> _Fields:
    """A finished result's fields of JobRecord, in order: value to error_text."""
    error = result.error
    if error is not None:
        kind, code, message = classify(error)
        return b"", None, None, kind, code, message, str(error)
    value = result.outcome()
    if type(value) is bytes:  # the common Wasm case, without encode_value's checks
        return value, OCTET, None, None, 0, "", None
    try:
        body, content_type, headers = encode_value(value)
    except (TypeError, ValueError) as failure:
        return b"", None, None, ErrorKind.UNENCODABLE, 0, f"{type(failure).__name__}: {failure}", str(failure)
    return body, content_type, tuple(headers.items()) if headers else None, None, 0, "", None


__all__ = ["JSON", "OCTET", "TEXT", "encode_value", "record_of", "response_headers", "value_bytes"]
