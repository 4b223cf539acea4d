"""The HTTP API as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

Built in code from the server's config, next to the routes it describes
(``app.create_app``): ``tests/test_openapi.py`` checks that both list the same
paths and methods, and ``tests/test_openapi_fuzz.py`` fuzzes a live server
against the document. What OpenAPI cannot express is said in its descriptions
(``DESCRIPTION``): a runnable's own error may be any 4xx or 5xx, so the job
routes list ``4XX`` and ``5XX`` besides the statuses the server answers itself.

The bearer security scheme is in the document only when ``server.auth_tokens``
is set. ``/health`` and ``/openapi.json`` never ask for a token: the document
describes the API's shape, holds no secret, and tools read it before they
have a token (the runnable names it lists as examples, ``/health`` lists too).
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from reactr_wasm.config import Config
from reactr_wasm.scheduler.job import RESULT_ID_LENGTH, JobStatus
from reactr_wasm.server.responses import json_response

Schema = dict[str, Any]

TITLE = "reactr-wasm"
JSON = "application/json"
BEARER = "bearerAuth"


DESCRIPTION = """\
Runs WebAssembly runnables as jobs, with the semantics of Suborbital's Reactr.

Every error is a non-2xx status with a JSON body `{"code": int, "message": str}`, and
every answer carries `X-Request-Id`. A runnable's own error (`return_error(code, msg)`)
is answered with its code when that is 400-599, else 500, so the job routes may answer
any 4xx or 5xx the runnable chooses; `X-Reactr-Error` names the job API's error type.

`HEAD` is answered for every `GET`, with the same status and headers. Another method
on a documented path is answered 405 with `Allow`; an undocumented path 404; a request
HTTP itself cannot parse (a request line or a header over 8190 bytes, framing headers
in conflict) 400, and the connection is closed: all with the error body."""


@functools.cache
def _version() -> str:
    try:
        return importlib.metadata.version("reactr-wasm")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "0+unknown"


def _ref(kind: str, name: str) -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


# --- reusable parts ---------------------------------------------------------------------

_SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "description": "Every error answer. A runnable's own error keeps its own `code`, whatever the status.",
        "required": ["code", "message"],
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    },
    "ResultId": {"type": "string", "pattern": f"^[0-9a-z]{{{RESULT_ID_LENGTH}}}$"},
    "JobState": {"type": "string", "enum": [status.value for status in JobStatus]},
    "Accepted": {
        "type": "object",
        "description": "The job was queued; read its result at `/then/{resultId}`.",
        "required": ["resultId"],
        "properties": {"resultId": _ref("schemas", "ResultId")},
    },
    "Pending": {
        "type": "object",
        "description": "The job had not finished when the wait ended; ask `GET /then/{resultId}` again.",
        "required": ["resultId", "status"],
        "properties": {"resultId": _ref("schemas", "ResultId"), "status": _ref("schemas", "JobState")},
    },
    "JobStatus": {
        "type": "object",
        "description": "A job's state; times are Unix seconds.",
        "required": ["id", "job", "status", "created", "started", "finished", "error"],
        "properties": {
            "id": _ref("schemas", "ResultId"),
            "job": {"type": "string", "description": "the runnable's name"},
            "status": _ref("schemas", "JobState"),
            "created": {"type": "number"},
            "started": {"type": ["number", "null"]},
            "finished": {"type": ["number", "null"]},
            "error": {
                "oneOf": [_ref("schemas", "Error"), {"type": "null"}],
                "description": "the job's error, as `GET /then/{id}` answers it; null unless it failed",
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "node", "runnables"],
        "properties": {
            "status": {
                "type": "string",
                "enum": ["ok", "degraded", "draining"],
                "description": "degraded: Redis mode, and the node's last heartbeat did not reach Redis",
            },
            "redis": {
                "type": "string",
                "enum": ["ok", "unreachable"],
                "description": "Redis mode only: whether the node's last heartbeat reached Redis",
            },
            "node": {"type": "string", "description": "This node's id, host-pid-random (Redis mode: its consumer)"},
            "runnables": {"type": "array", "items": {"type": "string"}},
            "code": {"type": "integer", "description": "503 while draining"},
            "message": {"type": "string"},
        },
    },
}

_HEADERS: dict[str, Schema] = {
    "X-Request-Id": {
        "description": "The client's X-Request-Id when it is 1 to 128 printable ASCII characters, else a new one.",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    },
    "X-Reactr-Error": {
        "description": (
            "The error's type when the job API raised it: RunErr (the runnable's own error), "
            "JobTimeout, JobCancelled, ExecutionError, RunnableNotFound, QueueFull. "
            "Absent when the server refused the request itself."
        ),
        "schema": {"type": "string", "pattern": "^[A-Za-z]+$"},
    },
    "Location": {"description": "Where the result will be: /then/{resultId}.", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when an earlier request with this Idempotency-Key started the job.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "X-Reactr-Result-Id": {"description": "The job's result id.", "schema": _ref("schemas", "ResultId")},
    "WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}},
}

_PARAMETERS: dict[str, Schema] = {
    "ResultId": {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "A result id from POST /do; any other form is answered 400.",
        "schema": _ref("schemas", "ResultId"),
    },
    "RequestId": {
        "name": "X-Request-Id",
        "in": "header",
        "description": "Echoed on the answer and logged when 1 to 128 printable ASCII characters, else replaced.",
        "schema": {"type": "string"},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": (
            "The same key (for the same runnable) within `server.result_ttl` answers the job already "
            "started instead of starting another one; reused for a different request: 422."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    "Then": {
        "name": "then",
        "in": "query",
        "description": (
            "`true`, `1`, `yes` or `on`: wait (at most `server.max_wait`) and answer the result itself; "
            "`false`, `0`, `no` or `off` (the default): do not (any case). Another value: 400. "
            "Ignored with `callback`."
        ),
        "schema": {"type": "string", "examples": ["true"]},
    },
    "Callback": {
        "name": "callback",
        "in": "query",
        "description": (
            "An http(s) URL the outcome is POSTed to when the job ends; refused (400) when malformed "
            "or not allowed by the callbacks config. An empty value is ignored."
        ),
        "schema": {"anyOf": [{"type": "string", "format": "uri"}, {"const": ""}]},
    },
    "Wait": {
        "name": "wait",
        "in": "query",
        "description": "At most this many seconds to wait (capped at `server.max_wait`), then 202.",
        "schema": {"type": "number", "minimum": 0},
    },
}


def _headers(*names: str) -> dict[str, Schema]:
    """The answer's headers: X-Request-Id (on every answer) and ``names``."""
    return {name: _ref("headers", name) for name in ("X-Request-Id", *names)}


def _error(description: str, *headers: str) -> Schema:
    return {
        "description": description,
        "headers": _headers(*headers),
        "content": {JSON: {"schema": _ref("schemas", "Error")}},
    }


def _job_error(description: str) -> Schema:
    """An answer that may carry the job's own outcome, which X-Reactr-Error names."""
    return _error(description, "X-Reactr-Error")


# Where a result id in an answer leads (OpenAPI links; fuzzers follow them too).
_LINKS = {
    name: {"operationId": operation, "parameters": {"id": "$response.body#/resultId"}}
    for name, operation in (("GetResult", "getResult"), ("GetJobStatus", "getJobStatus"), ("CancelJob", "cancelJob"))
}
_RESULT = {
    "description": (
        "The job's value: bytes as application/octet-stream; a request job's output with the "
        "Content-Type it set; text as text/plain; other values as JSON; none as an empty body."
    ),
    "content": {"*/*": {"schema": {}}},
}
_JOB_OUTCOMES = {
    "409": _job_error("The job was cancelled (`DELETE /then/{id}`) before it finished; or the runnable's own 409."),
    "500": _job_error(
        "The runnable trapped, aborted or broke the ABI (`X-Reactr-Error: ExecutionError`); or its own "
        "error with code 500 or a code outside 400-599; or a Python runnable raised (no `X-Reactr-Error`)."
    ),
    "504": _job_error(
        "The job did not finish within its timeout (`JobTimeout`; the message names the limit and its keys, "
        "`limits.timeout` or `runnables.NAME.timeout`); or the runnable's own 504."
    ),
    "4XX": _job_error("The runnable's own error: `return_error(code, msg)` with a 4xx code it chose (`RunErr`)."),
    "5XX": _job_error("The runnable's own error: `return_error(code, msg)` with a 5xx code it chose (`RunErr`)."),
}


# --- operations -------------------------------------------------------------------------


def _do() -> Schema:
    return {
        "operationId": "doJob",
        "summary": "Run a job on a runnable",
        "description": (
            "Without `then` or `callback`: queue the job and answer its result id at once. "
            "`then=true`: wait for the result (202 when it takes longer than `server.max_wait`). "
            "`callback=URL`: answer at once with an empty body; the outcome is POSTed to URL."
        ),
        "parameters": [
            {
                "name": "job",
                "in": "path",
                "required": True,
                "description": "The runnable's name (its file name without .wasm).",
                "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
            },
            _ref("parameters", "Then"),
            _ref("parameters", "Callback"),
            _ref("parameters", "IdempotencyKey"),
        ],
        "requestBody": {
            "description": (
                "The job's input, any bytes of any Content-Type (it is not read); at most `server.body_limit`."
            ),
            "required": False,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        "responses": {
            "200": {
                "description": (
                    'Queued: `{"resultId"}` as JSON, with Location. With `then=true`: the job\'s '
                    "value (as `GET /then/{id}` answers it). With `callback`: an empty body and X-Reactr-Result-Id."
                ),
                "headers": _headers("Location", "X-Reactr-Result-Id", "Idempotent-Replayed"),
                "content": {
                    JSON: {"schema": {"anyOf": [_ref("schemas", "Accepted"), {"description": "a JSON job value"}]}},
                    "*/*": {"schema": {}},
                },
                "links": _LINKS,
            },
            "202": {
                "description": "`then=true`, and the job outlived `server.max_wait`.",
                "headers": _headers("Location", "Idempotent-Replayed"),
                "content": {JSON: {"schema": _ref("schemas", "Pending")}},
                "links": _LINKS,
            },
            "400": _job_error(
                "A refused callback URL; `then` not a boolean; an Idempotency-Key not 1 to 255 characters; "
                "or the runnable's."
            ),
            "404": _job_error("No runnable with this name (`RunnableNotFound`); or the runnable's own 404."),
            "413": _error("The body is over `server.body_limit`."),
            "422": _error("The Idempotency-Key was used before for a different request."),
            "503": _error(
                "The server is draining, the runnable's queue is full (`QueueFull`), or its module failed to "
                "load (the message says why; served once a fixed module loads); in Redis mode, Redis is "
                "unavailable; or the runnable's own 503.",
                "Retry-After",
                "X-Reactr-Error",
            ),
            **_JOB_OUTCOMES,
        },
    }


def _then() -> Schema:
    return {
        "operationId": "getResult",
        "summary": "The job's result, waiting for it",
        "description": "Safe to retry: a result stays readable for `server.result_ttl` after the job ends.",
        "parameters": [_ref("parameters", "ResultId"), _ref("parameters", "Wait")],
        "responses": {
            "200": {**_RESULT, "headers": _headers()},
            "202": {
                "description": "The job had not finished when the wait ended.",
                "headers": _headers(),
                "content": {JSON: {"schema": _ref("schemas", "Pending")}},
            },
            "400": _job_error("The id is not a result id, or `wait` is not a number of seconds; or the runnable's."),
            "404": _job_error("No result with this id: never made, expired or deleted; or the runnable's own 404."),
            "503": _error(
                "Redis mode: Redis is unavailable; or the runnable's own 503.", "Retry-After", "X-Reactr-Error"
            ),
            **_JOB_OUTCOMES,
        },
    }


def _status() -> Schema:
    return {
        "operationId": "getJobStatus",
        "summary": "The job's state, never waiting",
        "parameters": [_ref("parameters", "ResultId")],
        "responses": {
            "200": {
                "description": "The job's state.",
                "headers": _headers(),
                "content": {JSON: {"schema": _ref("schemas", "JobStatus")}},
            },
            "400": _error("The id is not a result id."),
            "404": _error("No result with this id: never made, expired or deleted."),
            "503": _error("Redis mode: Redis is unavailable.", "Retry-After"),
        },
    }


def _cancel() -> Schema:
    return {
        "operationId": "cancelJob",
        "summary": "Cancel an unfinished job (a running guest is interrupted); forget a finished one",
        "parameters": [_ref("parameters", "ResultId")],
        "responses": {
            "204": {
                "description": (
                    "An unfinished job was cancelled: its result is kept as `cancelled` for `server.result_ttl` "
                    "(`GET /then/{id}`: 409). A finished job's result was forgotten."
                ),
                "headers": _headers(),
            },
            "400": _error("The id is not a result id."),
            "404": _error("No result with this id: never made, expired or deleted."),
            "503": _error("Redis mode: Redis is unavailable.", "Retry-After"),
        },
    }


def _health() -> Schema:
    health = {JSON: {"schema": _ref("schemas", "Health")}}
    return {
        "operationId": "health",
        "summary": "Whether the server takes jobs, and its runnables",
        "security": [],
        "responses": {
            "200": {"description": "Serving.", "headers": _headers(), "content": health},
            "503": {"description": "Draining: shutting down.", "headers": _headers(), "content": health},
        },
    }


def _openapi() -> Schema:
    return {
        "operationId": "openapi",
        "summary": "This document",
        "description": "Public, as `/health` is: it describes the API and holds no secret.",
        "security": [],
        "responses": {
            "200": {
                "description": "The OpenAPI 3.1 document.",
                "headers": _headers(),
                "content": {JSON: {"schema": {"type": "object"}}},
            },
        },
    }


def _metrics() -> Schema:
    return {
        "operationId": "metrics",
        "summary": "Prometheus metrics: jobs, runs, durations, queues, instances, callbacks, the result store",
        "description": "In the OpenMetrics format when `Accept` asks for it, else the Prometheus text format.",
        "responses": {
            "200": {"description": "The metrics.", "headers": _headers(),
                    "content": {"text/plain": {"schema": {"type": "string"}},
                                "application/openmetrics-text": {"schema": {"type": "string"}}}},
        },
    }  # fmt: skip


def _head(get: Schema) -> Schema:
    """HEAD of a GET route: the same answers without their bodies."""
    head = copy.deepcopy(get)
    head["operationId"] += "Head"
    for response in head["responses"].values():
        response.pop("content", None)
    return head


# --- the document -----------------------------------------------------------------------


def openapi_document(config: Config, runnables: Sequence[str] = ()) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a server with ``config`` serving ``runnables``.

    ``runnables`` become the job name's examples. The server URL is relative
    (the document's own origin), which stays true behind a proxy or on 0.0.0.0.
    The dashboard (``/ui``: pages and an event stream for a browser) is not in it.
    """
    paths: dict[str, dict[str, Schema]] = {
        "/do/{job}": {"post": _do()},
        "/then/{id}": {"get": _then(), "delete": _cancel()},
        "/jobs/{id}": {"get": _status()},
        "/health": {"get": _health()},
        "/openapi.json": {"get": _openapi()},
        "/metrics": {"get": _metrics()},
    }
    if runnables:  # the names served now; any other is answered 404
        paths["/do/{job}"]["post"]["parameters"][0]["schema"]["examples"] = list(runnables)
    components: dict[str, Any] = {"schemas": _SCHEMAS, "headers": _HEADERS, "parameters": _PARAMETERS}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": _version(), "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": components,
    }
    secured = bool(config.server.auth_tokens)
    if secured:
        components["securitySchemes"] = {BEARER: {"type": "http", "scheme": "bearer"}}
        document["security"] = [{BEARER: []}]
    for methods in paths.values():
        for operation in methods.values():
            operation.setdefault("parameters", []).append(_ref("parameters", "RequestId"))
            if secured and "security" not in operation:
                operation["responses"]["401"] = _error("No bearer token, or a wrong one.", "WWW-Authenticate")
        if "get" in methods:
            methods["head"] = _head(methods["get"])
    return document


def openapi_route(
    config: Config, runnables: Callable[[], Sequence[str]]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The ``GET /openapi.json`` handler: the document for ``config``, listing ``runnables()`` now."""

    async def openapi(request: web.Request) -> web.StreamResponse:
        return json_response(openapi_document(config, runnables()))

    return openapi


__all__ = ["openapi_document", "openapi_route"]
