"""An HTTP client for a running reactr-wasm server: ``Client`` (blocking) and ``AsyncClient``.

Both speak the HTTP API (README, "HTTP API") over httpx, with one API::

    with Client("http://127.0.0.1:8080", token="...") as client:
        client.do("hello-echo", "joe")                  # b'hello joe'
        result_id = client.do_async("hello-echo", "later")
        client.then(result_id)                          # b'hello later'

Errors are the embedded API's (``reactr_wasm.errors``): a runnable's own error
is ``RunErr(code, message)``, then ``JobTimeout``, ``JobCancelled``,
``ExecutionError``, ``RunnableNotFound``, and ``ServerUnavailable`` (a
``QueueFull``) for a 503. Only a client meets ``ResultNotFound``,
``JobPending``, ``Unauthorized``, ``RequestRejected`` and ``ConnectionFailed``.

Each operation is written once, as a generator that yields the requests to send
and receives their responses; ``Client`` sends them blocking, ``AsyncClient``
awaiting. ``verify_signature`` (for callback receivers) is re-exported here.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Generator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from reactr_wasm.errors import (
    ConnectionFailed,
    ExecutionError,
    JobCancelled,
    JobPending,
    JobTimeout,
    ReactrError,
    RequestRejected,
    ResultNotFound,
    RunErr,
    RunnableNotFound,
    ServerUnavailable,
    Unauthorized,
)
from reactr_wasm.scheduler.job import Job
from reactr_wasm.signing import SIGNATURE_HEADER, verify_signature

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 10.0  # seconds to connect, send, and read an answer that does not wait for a job
ERROR_TYPE_HEADER = "X-Reactr-Error"  # set by the server on errors of the job API

T = TypeVar("T")
Exchange = Generator[httpx.Request, httpx.Response, T]

# the job API's errors the server names in X-Reactr-Error, built from their message
_BY_TYPE: dict[str, type[ReactrError]] = {
    "JobTimeout": JobTimeout,
    "JobCancelled": JobCancelled,
    "ExecutionError": ExecutionError,
}
_NOT_FOUND = re.compile(r"runnable '(.*)' not found")


def error_from(response: httpx.Response, *, name: str | None = None, result_id: str | None = None) -> ReactrError:
    """The error a non-2xx answer stands for; ``name``/``result_id``: what the request was about."""
    status = response.status_code
    code, message = _error_body(response)
    kind = response.headers.get(ERROR_TYPE_HEADER)
    if kind == "RunErr":
        return RunErr(code, message)
    if kind == "RunnableNotFound" or (kind is None and status == 404 and name is not None):
        found = _NOT_FOUND.fullmatch(message)
        return RunnableNotFound(found.group(1) if found else name or "")
    if kind in _BY_TYPE:
        return _BY_TYPE[kind](message)
    return _error_by_status(response, message, result_id)


def _error_by_status(response: httpx.Response, message: str, result_id: str | None) -> ReactrError:
    status = response.status_code
    if status == 401:
        return Unauthorized(message)
    if status == 404 and result_id is not None:
        return ResultNotFound(result_id, message)
    if status == 409:
        return JobCancelled(message)
    if status == 504:
        return JobTimeout(message)
    if status == 500:
        return ExecutionError(message)
    if status >= 500:
        return ServerUnavailable(message, _retry_after(response), status)
    return RequestRejected(status, message)


def _error_body(response: httpx.Response) -> tuple[int, str]:
    """``(code, message)`` of the server's JSON error; another body (a proxy's page) as text."""
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            code = body.get("code")
            return (code if isinstance(code, int) else response.status_code), body["message"]
    except ValueError:
        pass
    text = response.text.strip()
    return response.status_code, text[:500] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None  # absent, or an HTTP date: not worth parsing for a hint
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        text = response.text[:200]
        raise ReactrError(f"HTTP {response.status_code}: not the JSON answer expected: {text!r}") from None


class _Exchanges:
    """The operations as request/response exchanges, shared by both clients; no I/O here."""

    def __init__(self, base_url: str, token: str | None, timeout: float, headers: Mapping[str, str] | None) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"server URL must be http(s)://HOST[:PORT], got {base_url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a number of seconds above 0, got {timeout!r}")
        self.base_url = str(url).rstrip("/")
        self.timeout = timeout
        self._headers = {"User-Agent": "reactr-wasm client", **(headers or {})}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"

    def _request(
        self,
        method: str,
        path: str,
        read: float | None,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Request:
        """A request whose answer is read within ``read`` seconds (None: as long as the server takes)."""
        timeout = httpx.Timeout(self.timeout, read=read)
        return httpx.Request(
            method, self.base_url + path, params=params, content=content,
            headers={**self._headers, **(headers or {})}, extensions={"timeout": timeout.as_dict()},
        )  # fmt: skip

    def _post(self, name: str, data: Any, params: dict[str, str], key: str | None, read: float | None) -> httpx.Request:
        headers = {"Idempotency-Key": key} if key is not None else None
        body = Job(name, data).payload()  # the bytes Reactr.do would give a Wasm runnable
        return self._request("POST", f"/do/{quote(name, safe='')}", read, params=params, content=body, headers=headers)

    def _do(self, name: str, data: Any, key: str | None) -> Exchange[bytes]:
        # read=None: the server bounds its answer (server.max_wait), and a request
        # dropped early would lose the only handle on a job it started
        response = yield self._post(name, data, {"then": "true"}, key, None)
        if response.status_code == 202:  # still running after server.max_wait
            return (yield from self._then(_json(response)["resultId"], None))
        if response.is_error:
            raise error_from(response, name=name)
        return response.content

    def _do_async(self, name: str, data: Any, key: str | None) -> Exchange[str]:
        response = yield self._post(name, data, {}, key, self.timeout)
        if response.is_error:
            raise error_from(response, name=name)
        result_id: str = _json(response)["resultId"]
        return result_id

    def _with_callback(self, name: str, data: Any, url: str, key: str | None) -> Exchange[str]:
        response = yield self._post(name, data, {"callback": url}, key, self.timeout)
        if response.is_error:
            raise error_from(response, name=name)
        return response.headers["X-Reactr-Result-Id"]

    def _then(self, result_id: str, wait: float | None) -> Exchange[bytes]:
        if wait is not None and not wait >= 0:  # also refuses NaN
            raise ValueError(f"wait must be a number of seconds, 0 or more, got {wait!r}")
        deadline = None if wait is None else time.monotonic() + wait
        path = f"/then/{quote(result_id, safe='')}"
        while True:
            if deadline is None:
                request = self._request("GET", path, None)  # the server answers 202 after server.max_wait
            else:
                left = max(0.0, deadline - time.monotonic())
                request = self._request("GET", path, left + self.timeout, params={"wait": f"{left:.3f}"})
            response = yield request
            if response.status_code != 202:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise JobPending(result_id, str(_json(response).get("status")))
        if response.is_error:
            raise error_from(response, result_id=result_id)
        return response.content

    def _status(self, result_id: str) -> Exchange[dict[str, Any]]:
        response = yield self._request("GET", f"/jobs/{quote(result_id, safe='')}", self.timeout)
        if response.is_error:
            raise error_from(response, result_id=result_id)
        status: dict[str, Any] = _json(response)
        return status

    def _cancel(self, result_id: str) -> Exchange[None]:
        response = yield self._request("DELETE", f"/then/{quote(result_id, safe='')}", self.timeout)
        if response.is_error:
            raise error_from(response, result_id=result_id)


def _transport_error(base_url: str, error: httpx.TransportError) -> ConnectionFailed:
    if isinstance(error, httpx.ConnectError):
        reason = str(error) or type(error).__name__
        return ConnectionFailed(f"cannot connect to {base_url} ({reason}): is the server running at {base_url}?")
    what = type(error).__name__ + (f": {error}" if str(error) else "")  # e.g. ReadTimeout, RemoteProtocolError
    return ConnectionFailed(f"{error.request.method} {error.request.url}: {what}")


class Client(_Exchanges):
    """A blocking client of one reactr-wasm server. Close it (or use ``with``) when done.

    ``token``: the bearer token (``server.auth_tokens``); ``timeout``: seconds to
    connect, send and read answers that do not wait for a job (``do`` and
    ``then`` wait as long as the server does); ``headers``: sent on every request.
    Raises ValueError for a URL that is not http(s) or a timeout not above 0.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout, headers)
        self._http = httpx.Client()  # requests come whole from _request

    def _run(self, exchange: Exchange[T]) -> T:
        request = next(exchange)
        while True:
            try:
                response = self._http.send(request)
            except httpx.TransportError as error:
                raise _transport_error(self.base_url, error) from error
            try:
                request = exchange.send(response)
            except StopIteration as done:
                result: T = done.value
                return result

    def do(self, name: str, data: Any = b"", *, idempotency_key: str | None = None) -> bytes:
        """Run a job on runnable ``name`` and return its result bytes (``POST /do/NAME?then=true``).

        ``data``: bytes, str (UTF-8) or a JSON-able value, as ``Reactr.do`` takes.
        A JSON result is returned as its bytes too. Raises the job's error
        (``RunErr``, ``JobTimeout``, ...), ``RunnableNotFound``, or another
        ``ReactrError`` for a refused request or an unreachable server.
        """
        return self._run(self._do(name, data, idempotency_key))

    def do_async(self, name: str, data: Any = b"", *, idempotency_key: str | None = None) -> str:
        """Start a job and return its result id at once (``POST /do/NAME``); read it with ``then``."""
        return self._run(self._do_async(name, data, idempotency_key))

    def invoke_with_callback(self, name: str, data: Any, url: str, *, idempotency_key: str | None = None) -> str:
        """Start a job whose outcome the server POSTs to ``url``; returns its result id.

        Raises ``RequestRejected`` (400) when the server refuses the URL (``[callbacks]`` rules).
        """
        return self._run(self._with_callback(name, data, url, idempotency_key))

    def then(self, result_id: str, wait: float | None = None) -> bytes:
        """The result bytes of a job started before (``GET /then/ID``), waiting for it to end.

        With ``wait``, at most that many seconds, then ``JobPending`` with the
        job's status. Raises the job's error (``JobCancelled`` once cancelled),
        ``ResultNotFound`` for an unknown, expired or deleted id, ``RequestRejected``
        for a malformed one.
        """
        return self._run(self._then(result_id, wait))

    def status(self, result_id: str) -> dict[str, Any]:
        """The job's status (``GET /jobs/ID``): ``id``, ``job``, ``status``, timestamps, ``error``."""
        return self._run(self._status(result_id))

    def cancel(self, result_id: str) -> None:
        """Cancel an unfinished job, kept as cancelled, or forget a finished one's result (``DELETE /then/ID``).

        Raises ``ResultNotFound``.
        """
        self._run(self._cancel(result_id))

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Exchanges):
    """``Client`` for asyncio: the same arguments, methods and errors, awaited."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout, headers)
        self._http = httpx.AsyncClient()  # requests come whole from _request

    async def _run(self, exchange: Exchange[T]) -> T:
        request = next(exchange)
        while True:
            try:
                response = await self._http.send(request)
            except httpx.TransportError as error:
                raise _transport_error(self.base_url, error) from error
            try:
                request = exchange.send(response)
            except StopIteration as done:
                result: T = done.value
                return result

    async def do(self, name: str, data: Any = b"", *, idempotency_key: str | None = None) -> bytes:
        """As ``Client.do``."""
        return await self._run(self._do(name, data, idempotency_key))

    async def do_async(self, name: str, data: Any = b"", *, idempotency_key: str | None = None) -> str:
        """As ``Client.do_async``."""
        return await self._run(self._do_async(name, data, idempotency_key))

    async def invoke_with_callback(self, name: str, data: Any, url: str, *, idempotency_key: str | None = None) -> str:
        """As ``Client.invoke_with_callback``."""
        return await self._run(self._with_callback(name, data, url, idempotency_key))

    async def then(self, result_id: str, wait: float | None = None) -> bytes:
        """As ``Client.then``."""
        return await self._run(self._then(result_id, wait))

    async def status(self, result_id: str) -> dict[str, Any]:
        """As ``Client.status``."""
        return await self._run(self._status(result_id))

    async def cancel(self, result_id: str) -> None:
        """As ``Client.cancel``."""
        await self._run(self._cancel(result_id))

    async def close(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = [
    "DEFAULT_URL",
    "SIGNATURE_HEADER",
    "AsyncClient",
    "Client",
    "ConnectionFailed",
    "JobPending",
    "RequestRejected",
    "ResultNotFound",
    "ServerUnavailable",
    "Unauthorized",
    "error_from",
    "verify_signature",
]
