"""Errors and values as HTTP answers: the one place where an error becomes a status.

Errors are always a non-2xx status with ``{"code": int, "message": str}``; a
runnable's ``RunErr`` keeps its own code in the body.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..errors import ExecutionError, JobCancelled, JobTimeout, QueueFull, ReactrError, RunErr, RunnableNotFound
from ..scheduler.values import JSON, encode_value
from .callbacks import CallbackRefused

RETRY_AFTER = "1"  # seconds, on 503
_COMPACT = (",", ":")


class HTTPError(Exception):
    """An error answer the routes decide themselves (bad id, unknown id, draining, ...)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def _status_of(error: BaseException) -> tuple[int, int, str, dict[str, str] | None]:
    """``(HTTP status, body code, message, headers)`` for any error a request can end with."""
    if isinstance(error, HTTPError):
        return error.status, error.status, error.message, error.headers
    if isinstance(error, web.HTTPException):
        allow = error.headers.get("Allow")
        text = error.text or ""
        message = error.reason if not text or text == f"{error.status}: {error.reason}" else text
        return error.status, error.status, message, {"Allow": allow} if allow else None
    if isinstance(error, RunErr):
        status = error.code if 400 <= error.code <= 599 else 500
        return status, error.code, error.message, None
    if isinstance(error, RunnableNotFound):
        return 404, 404, f"runnable '{error.name}' not found", None
    if isinstance(error, JobTimeout):
        return 504, 504, str(error), None
    if isinstance(error, JobCancelled):
        return 409, 409, str(error), None
    if isinstance(error, QueueFull):
        return 503, 503, str(error), {"Retry-After": RETRY_AFTER}
    if isinstance(error, CallbackRefused):
        return 400, 400, str(error), None
    if isinstance(error, (ExecutionError, ReactrError)):
        return 500, 500, str(error), None
    return 500, 500, f"{type(error).__name__}: {error}", None  # a Python runnable's own exception


def error_response(error: BaseException) -> web.Response:
    """The JSON error answer for ``error``: ``{"code": int, "message": str}``."""
    status, code, message, headers = _status_of(error)
    body = json.dumps({"code": code, "message": message}, separators=_COMPACT, ensure_ascii=False).encode()
    response = web.Response(status=status, body=body, headers=headers)
    response.content_type = JSON
    return response


def value_response(value: Any) -> web.Response:
    """A job's value as an HTTP answer (rules in ``scheduler/values.py``)."""
    if type(value) is bytes and value:
        return web.Response(body=value)  # aiohttp's default type is application/octet-stream
    body, content_type, headers = encode_value(value)
    response = web.Response(body=body, headers=headers)
    if content_type is not None:
        response.headers["Content-Type"] = content_type
    return response


def json_response(data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(status=status, body=json.dumps(data, separators=_COMPACT).encode(), headers=headers)
    response.content_type = JSON
    return response
