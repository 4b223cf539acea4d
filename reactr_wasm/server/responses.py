"""Errors and values as HTTP answers: the one place where an error becomes a status.

Errors are always a non-2xx status with ``{"code": int, "message": str}``; a
runnable's ``RunErr`` keeps its own code in the body. An error of the job API
(``RunErr``, ``JobTimeout``, ...) also names its type in ``X-Reactr-Error``,
so a client tells a runnable's own 400 or 404 from the server's.
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any

from aiohttp import web

from reactr_wasm.backends.records import ErrorKind, JobRecord, classify
from reactr_wasm.backends.redis_link import BackendUnavailable
from reactr_wasm.errors import RunnableNotFound
from reactr_wasm.scheduler.values import JSON, OCTET, encode_value
from reactr_wasm.server.callbacks import CallbackRefused

RETRY_AFTER = "1"  # seconds, on 503
ERROR_TYPE_HEADER = "X-Reactr-Error"
_COMPACT = (",", ":")
# The status of each kind of job error; a RunErr's comes from its own code.
_STATUS = {
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.TIMEOUT: 504,
    ErrorKind.CANCELLED: 409,
    ErrorKind.QUEUE_FULL: 503,
    ErrorKind.EXECUTION: 500,
    ErrorKind.EXCEPTION: 500,
    ErrorKind.UNENCODABLE: 500,
}
# What X-Reactr-Error says for each kind: the exception the embedded API raises for it.
_ERROR_TYPE = {
    ErrorKind.RUN_ERR: "RunErr",
    ErrorKind.NOT_FOUND: "RunnableNotFound",
    ErrorKind.TIMEOUT: "JobTimeout",
    ErrorKind.CANCELLED: "JobCancelled",
    ErrorKind.QUEUE_FULL: "QueueFull",
    ErrorKind.EXECUTION: "ExecutionError",
}
Answer = tuple[int, int, str, dict[str, str] | None]  # (HTTP status, body code, message, headers)


_REQUEST_IDS = itertools.count(1)
_REQUEST_ID_PREFIX = secrets.token_hex(4) + "-"


def new_request_id() -> str:
    """A new X-Request-Id: this process's random prefix and a counter."""
    return f"{_REQUEST_ID_PREFIX}{next(_REQUEST_IDS):x}"


class HTTPError(Exception):
    """An error answer the routes decide themselves (bad id, unknown id, draining, ...)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def _status_of(error: BaseException) -> Answer:
    """The answer for any error a request can end with."""
    if isinstance(error, HTTPError):
        return error.status, error.status, error.message, error.headers
    if isinstance(error, web.HTTPException):
        allow = error.headers.get("Allow")
        text = error.text or ""
        message = error.reason if not text or text == f"{error.status}: {error.reason}" else text
        return error.status, error.status, message, {"Allow": allow} if allow else None
    if isinstance(error, CallbackRefused):
        return 400, 400, str(error), None
    if isinstance(error, BackendUnavailable):  # Redis mode: Redis is away; the node reconnects by itself
        return 503, 503, "the job store is unavailable; retry later", {"Retry-After": RETRY_AFTER}
    return _job_error(*classify(error))


def _job_error(kind: ErrorKind, code: int, message: str) -> Answer:
    """The answer for a job's error, from its kind (``records.classify``), as a record keeps it."""
    headers = {ERROR_TYPE_HEADER: _ERROR_TYPE[kind]} if kind in _ERROR_TYPE else None
    if kind is ErrorKind.RUN_ERR:
        return (code if 400 <= code <= 599 else 500), code, message, headers
    status = _STATUS[kind]
    if kind is ErrorKind.QUEUE_FULL:
        headers = {**(headers or {}), "Retry-After": RETRY_AFTER}
    return status, status, message, headers


def _error_json(answer: Answer) -> web.Response:
    status, code, message, headers = answer
    body = json.dumps({"code": code, "message": message}, separators=_COMPACT, ensure_ascii=False).encode()
    response = web.Response(status=status, body=body, headers=headers)
    response.content_type = JSON
    return response


def error_response(error: BaseException) -> web.Response:
    """The JSON error answer for ``error``: ``{"code": int, "message": str}``."""
    return _error_json(_status_of(error))


def value_response(value: Any) -> web.Response:
    """A job's value as an HTTP answer (rules in ``scheduler/values.py``)."""
    if type(value) is bytes and value:
        return web.Response(body=value)  # aiohttp's default type is application/octet-stream
    return _body_response(*encode_value(value))


def record_response(record: JobRecord) -> web.Response:
    """A finished job's record as an HTTP answer: its value, or its error as JSON."""
    kind = record.error_kind
    if kind is not None:
        return _error_json(_job_error(kind, record.error_code, record.error_message))
    if record.content_type == OCTET and record.headers is None and record.value:
        return web.Response(body=record.value)  # as value_response: aiohttp's default type
    return _body_response(record.value, record.content_type, record.headers)


def _body_response(body: bytes, content_type: str | None, headers: Any) -> web.Response:
    response = web.Response(body=body, headers=headers)
    if content_type is not None:
        response.headers["Content-Type"] = content_type
    return response


def too_large(size: str, limit: int) -> HTTPError:
    """413 for a body of ``size`` over ``server.body_limit``, naming the setting."""
    return HTTPError(413, f"request body of {size} is over the limit of {limit} bytes (server.body_limit)")


def unavailable(name: str, load_error: str | None) -> Exception:
    """Why ``name`` is not served: its module does not load (503 with why, until one does), or there is none."""
    if load_error is None:
        return RunnableNotFound(name)
    return HTTPError(503, f"{load_error}; served once a module that loads replaces it", {"Retry-After": RETRY_AFTER})


def status_body(record: JobRecord) -> dict[str, Any]:
    """The ``GET /jobs/{id}`` answer: the record's status, its error as the ``{"code", "message"}`` a GET /then gets."""
    body = record.status_dict()
    if record.error_kind is not None and body["error"] is not None:
        _, code, message, _ = _job_error(record.error_kind, record.error_code, record.error_message)
        body["error"] = {"code": code, "message": message}
    return body


def json_response(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(status=status, body=json.dumps(data, separators=_COMPACT).encode(), headers=headers)
    response.content_type = JSON
    return response
