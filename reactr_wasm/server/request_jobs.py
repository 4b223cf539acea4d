"""Request mode over plain HTTP: a job submitted to ``POST /do/NAME`` carries its HTTP request.

Reactr's request mode (``reactr-abi.md`` §3) lets a guest read the request's
method, URL, headers and body (``request_get_field``) and set response headers
(``resp_set_header``). Here every ``POST /do/NAME`` to a runnable that imports
one of those functions becomes a request job whose ``CoordinatedRequest`` is the
HTTP request itself:

- ``method``: ``POST``; ``url``: the request target as sent, path and query
  (``/do/transform?then=true&lang=en``); ``id``: the request's ``X-Request-Id``;
- ``body``: the raw body, which stays the payload the guest's ``run`` receives
  (Reactr's contract);
- ``headers``: the request's headers, names lower-cased, repeated ones joined
  with ``", "``, except the hop-by-hop ones (they describe this connection, not
  the request) and, when the server checks bearer tokens (``server.auth_tokens``),
  ``Authorization``: that credential is the server's, not the guest's;
- ``params`` and ``state``: empty (the route has no path parameters).

A body that is itself a CoordinatedRequest in JSON form keeps the mode it had
before: that request, as sent, is the job (Reactr's tests and hand-made
requests rely on it). Runnables that import no request function get the raw
body as always, so the echo hot path builds nothing.

In Redis mode the node that takes a request may not serve its runnable: the
request's method, target, id and (shown) headers travel with the queued job as
its ``meta`` (``meta()``), and the node that runs it builds the same request
from them (``queued()``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from reactr_wasm.scheduler.reactr import Reactr
from reactr_wasm.wasm.request import CoordinatedRequest

# Connection-level headers (RFC 9110 §7.6.1) and the proxy's credential: never the guest's business.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
     "transfer-encoding", "upgrade"}
)  # fmt: skip


class RequestJobs:
    """Turns an HTTP request to a runnable into its job's data: the raw body, or a CoordinatedRequest."""

    def __init__(self, reactr: Reactr, *, server_auth: bool) -> None:
        self.reactr = reactr
        self.hidden = HOP_BY_HOP | {"authorization"} if server_auth else HOP_BY_HOP

    def data(self, request: web.Request, name: str, body: bytes, request_id: str) -> bytes | CoordinatedRequest:
        """What the job of ``name`` gets: ``body``, or the request when the runnable reads request fields.

        Raises RunnableNotFound for an unknown name.
        """
        if not getattr(self.reactr.worker(name).target, "wants_request", False):
            return body
        sent = CoordinatedRequest.from_payload(body)
        if sent is not None:
            return sent
        return CoordinatedRequest.from_http(request.method, request.raw_path, request_id, body, self._shown(request))

    def meta(self, request: web.Request, request_id: str) -> dict[str, Any]:
        """What a queued job carries of its HTTP request, for the node that runs it (msgpack-able)."""
        headers = [[key, value] for key, value in self._shown(request)]
        return {"method": request.method, "url": request.raw_path, "id": request_id, "headers": headers}

    def queued(self, name: str, payload: bytes, meta: dict[str, Any] | None) -> bytes | CoordinatedRequest:
        """The data of a queued job of ``name`` run here: as ``data`` makes it, from the request in ``meta``."""
        if meta is None or not getattr(self.reactr.worker(name).target, "wants_request", False):
            return payload
        sent = CoordinatedRequest.from_payload(payload)
        if sent is not None:
            return sent
        headers = [(str(key), str(value)) for key, value in meta["headers"]]
        return CoordinatedRequest.from_http(meta["method"], meta["url"], meta["id"], payload, headers)

    def _shown(self, request: web.Request) -> list[tuple[str, str]]:
        return [(key, value) for key, value in request.headers.items() if key.lower() not in self.hidden]


__all__ = ["HOP_BY_HOP", "RequestJobs"]
