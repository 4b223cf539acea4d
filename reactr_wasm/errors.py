"""The error hierarchy: everything reactr-wasm raises is a ``ReactrError``."""

from __future__ import annotations

import json


class ReactrError(Exception):
    """Root of every error reactr-wasm raises."""


class RunErr(ReactrError):
    """A runnable's own error (``return_error(code, message)`` in a guest).

    ``str()`` is Reactr's JSON form, ``{"code":400,"message":"job failed"}``, with
    zero/empty fields omitted as Reactr did.
    """

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(self.to_json())

    def to_json(self) -> str:
        fields: dict[str, object] = {}
        if self.code:
            fields["code"] = self.code
        if self.message:
            fields["message"] = self.message
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


class ExecutionError(ReactrError):
    """The guest trapped, aborted through the engine, or broke the ABI."""


class JobTimeout(ReactrError):
    """The job did not finish before its timeout; a Wasm guest was stopped."""

    def __init__(self, message: str = "job timeout") -> None:
        super().__init__(message)


class JobCancelled(ReactrError):
    """The job was cancelled before it finished."""

    def __init__(self, message: str = "job cancelled") -> None:
        super().__init__(message)


class RunnableNotFound(ReactrError):
    """No runnable is registered under the job's name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f'failed to getWorker for jobType "{name}"')


class QueueFull(ReactrError):
    """The runnable's queue is at its bound; retry later."""


class ModuleError(ReactrError):
    """A Wasm module cannot be used: corrupt, wrong ABI, or failing to start."""


class HostCallError(ReactrError):
    """A host function was called with arguments the host refuses."""


class ConfigError(ReactrError):
    """The configuration is invalid; the message names the file, key and reason."""


# --- raised by the HTTP client (reactr_wasm.client) only -----------------------------------


class ServerUnavailable(QueueFull):
    """The server refused the job for now (HTTP 503: a full queue, or shutting down; or another 5xx).

    ``retry_after`` is the seconds of its ``Retry-After`` header, or None.
    A ``QueueFull``, so code that catches the embedded error catches this one.
    """

    def __init__(self, message: str, retry_after: float | None = None, status: int = 503) -> None:
        super().__init__(message)
        self.retry_after, self.status = retry_after, status


class ResultNotFound(ReactrError):
    """The server has no result with this id: never made, expired (``server.result_ttl``) or deleted."""

    def __init__(self, result_id: str, message: str | None = None) -> None:
        self.result_id = result_id
        super().__init__(message or f"result with ID {result_id} not found")


class JobPending(ReactrError):
    """The job had not finished when the client stopped waiting (``then(id, wait=S)``).

    ``status`` is the job's status then (``queued`` or ``running``); ask again later.
    """

    def __init__(self, result_id: str, status: str) -> None:
        self.result_id, self.status = result_id, status
        super().__init__(f"job {result_id} is still {status}")


class Unauthorized(ReactrError):
    """The server wants a bearer token and got none or a wrong one (HTTP 401)."""


class RequestRejected(ReactrError):
    """The server refused the request itself (HTTP 400, 405, 413, 422, ...): ``status``, ``message``."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(f"HTTP {status}: {message}")


class ConnectionFailed(ReactrError):
    """The server could not be reached, or the connection broke or timed out before its answer."""
