"""The HTTP API (design.md §2): a thin aiohttp layer over one ``Reactr``.

| route | answer |
|---|---|
| ``POST /do/{job}`` | 200 ``{"resultId": id}`` + ``Location: /then/{id}`` |
| ``POST /do/{job}?then=true`` | the result (waits up to ``server.max_wait``, else 202 + status) |
| ``POST /do/{job}?callback=URL`` | 200, empty, ``X-Reactr-Result-Id``; the result is POSTed to URL |
| ``GET /then/{id}[?wait=S]`` | the result or the job's error (202 + status when still running) |
| ``GET /jobs/{id}`` | status JSON, never blocks |
| ``DELETE /then/{id}`` | 204: a job in flight is cancelled (its record then says so); a finished one is forgotten |
| ``GET /health`` | 200 ``{"status": "ok", "node": id, "runnables": [...]}`` (503 while draining) |
| ``GET /openapi.json`` | the OpenAPI 3.1 document of these routes (``openapi.py``) |
| ``GET /metrics`` | Prometheus metrics (``metrics.py``) |
| ``GET /ui`` ... | the dashboard: public pages over guarded JSON and events (``dashboard.py``) |

Every route is registered through ``add_routes``, which wraps its handlers
in ``Server.guard``: bearer auth unless the route is declared ``public``,
request id, and every error as a JSON ``{"code": int, "message": str}`` built by
``error_response``, the one place that maps exceptions to statuses. Every
response carries ``X-Request-Id`` (the client's, when sane, else a new one).

The hot path, ``POST /do/NAME?then=true`` for a fast Wasm runnable, is kept
short on purpose: its jobs run in batches after each loop turn and the server
reaches its handler past the router (``fastpath.py``); a job that cannot run
inline is checked with ``done()`` before anything is awaited, and nothing is
stored, tracked or scheduled for it.

Every other job is kept in the result store as a ``JobRecord`` (``then=true``:
once it outlasts ``server.max_wait``); ``inflight.py`` starts such jobs and
stores their finished records; the routes read records.

Redis mode (``[cluster] redis``): ``cluster_jobs.py`` brings the store (in
Redis), queues every stored job instead of starting it here, cancels across
nodes and runs this node's worker; ``then=true`` for a runnable served here
still runs here, as above. The embedded mode does not import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reactr_wasm.backends.memory_results import MemoryResultStore
from reactr_wasm.backends.records import ErrorKind, JobRecord
from reactr_wasm.backends.results import ResultStore
from reactr_wasm.cluster.nodes import new_node_id
from reactr_wasm.config import Config
from reactr_wasm.errors import JobCancelled, ReactrError, RunErr
from reactr_wasm.scheduler.job import Job, Result, is_result_id, new_result_id
from reactr_wasm.scheduler.reactr import Reactr
from reactr_wasm.server.callbacks import Callbacks
from reactr_wasm.server.connections import BodyTimeout
from reactr_wasm.server.dashboard import dashboard_routes
from reactr_wasm.server.fastpath import DO_PREFIX, DO_ROUTE, Handler, ThenBatch
from reactr_wasm.server.inflight import InFlight
from reactr_wasm.server.metrics import METRICS, metrics_route
from reactr_wasm.server.openapi import openapi_route
from reactr_wasm.server.query import flag
from reactr_wasm.server.request_jobs import RequestJobs
from reactr_wasm.server.request_keys import REQUEST_ID, RESULT
from reactr_wasm.server.responses import (
    RETRY_AFTER,
    HTTPError,
    error_response,
    json_response,
    new_request_id,
    record_response,
    status_body,
    too_large,
    unavailable,
    value_response,
)

if TYPE_CHECKING:
    from reactr_wasm.server.cluster_jobs import ClusterJobs

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0  # longest pause between two sweeps of expired results
CANCEL_GRACE = 1.0  # seconds cancelled jobs get to stop when draining times out
SHUTDOWN_GRACE = 2.0  # seconds handlers get to finish writing once jobs are drained
CANCEL_WAIT = 1.0  # seconds DELETE waits for a cancelled job's record (a guest stops within a 10 ms tick)


def _refuse(status: int, message: str, headers: dict[str, str] | None = None) -> Handler:
    async def refuse(request: web.Request) -> web.StreamResponse:
        raise HTTPError(status, message, headers)

    return refuse


def _result_id(request: web.Request) -> str:
    result_id = request.match_info["id"]
    if not is_result_id(result_id):
        raise HTTPError(400, "invalid result ID")
    return result_id


def _seconds(request: web.Request, name: str, default: float) -> float:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses NaN
        raise HTTPError(400, f"{name} must be a number of seconds, 0 or more, got {text!r}")
    return min(value, default)


def _sane_request_id(text: str) -> bool:
    """A client's X-Request-Id is echoed (and logged) only when short and printable ASCII."""
    return 0 < len(text) <= 128 and text.isascii() and text.isprintable()


def _authorize(request: web.Request, tokens: list[bytes]) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    given = token.strip().encode("utf-8", "replace")
    # compare_digest with every token: the time taken does not tell which one nearly matched
    if scheme.lower() != "bearer" or not sum(hmac.compare_digest(given, known) for known in tokens):
        raise HTTPError(401, "missing or invalid bearer token", {"WWW-Authenticate": "Bearer"})


async def wait_done(result: Result, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``result``; whether it is done. Never raises the job's error."""
    if not result.done():
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                await result
    return result.done()


class Server:
    """The routes and their state: store, callbacks, jobs in flight (``jobs``), Redis mode (``cluster``)."""

    def __init__(self, reactr: Reactr, config: Config, store: ResultStore | None = None) -> None:
        self.reactr, self.config = reactr, config
        server = config.server
        self.callbacks = Callbacks(config.callbacks)
        self._request_jobs = RequestJobs(reactr, server_auth=bool(server.auth_tokens))
        self.cluster: ClusterJobs | None = None
        if config.cluster.enabled:
            if store is not None:
                raise ValueError("Redis mode ([cluster] redis) keeps its results in Redis: pass no store")
            from reactr_wasm.server.cluster_jobs import ClusterJobs  # imports redis: Redis mode only

            self.cluster = ClusterJobs(reactr, config, self.callbacks, self._request_jobs)
            store = self.cluster.store
        self.store = store or MemoryResultStore(
            ttl=server.result_ttl, max_results=server.max_results, max_bytes=server.max_result_bytes
        )
        self.node_id = new_node_id() if self.cluster is None else self.cluster.node_id
        self.max_wait = server.max_wait
        self.body_limit = server.body_limit
        self.draining = False
        self.jobs = InFlight(reactr, self.store, self.callbacks)
        self.load_errors: Mapping[str, str] = {}  # runnable -> why its module does not load (watch.py)
        self._then_batch = ThenBatch(reactr)
        self._tokens = [token.encode() for token in server.auth_tokens]

    # --- request handling -------------------------------------------------------------------

    def guard(self, handler: Handler, *, auth: bool = True) -> Handler:
        """Wrap a route: request id, bearer auth, and every error turned into its JSON answer.

        A wrapper rather than an aiohttp middleware: a middleware costs ~4 µs per
        request (two more coroutine layers), ~7% of a whole echo request.
        """
        tokens = self._tokens if auth else []

        async def guarded(request: web.Request) -> web.StreamResponse:
            request_id = request.headers.get("X-Request-Id")
            if request_id is None or not _sane_request_id(request_id):
                request_id = new_request_id()
            request[REQUEST_ID] = request_id
            try:
                if tokens:
                    _authorize(request, tokens)
                response = await handler(request)
            except Exception as error:
                response = error_response(error)
                if response.status >= 500 and not isinstance(error, (HTTPError, ReactrError)):
                    log.error("request %s %s %s failed", request_id, request.method, request.path, exc_info=error)
            response.headers["X-Request-Id"] = request_id
            return response

        return guarded

    # --- routes ---------------------------------------------------------------------------

    async def do(self, request: web.Request) -> web.StreamResponse:
        name = request.path[len(DO_PREFIX) :]  # same as match_info["job"]; also set on the fast path
        local = self._admit(name)  # before reading the body or starting anything
        length = request.content_length
        if length is not None and length > self.body_limit:
            raise too_large(f"{length} bytes", self.body_limit)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:  # a body without Content-Length, cut at the limit
            raise too_large(f"more than {self.body_limit} bytes", self.body_limit) from None
        except ConnectionError:  # the client hung up mid-upload: its doing, not a server error
            log.info("request %s: the client closed the connection before sending its whole body",
                     request.get(REQUEST_ID))  # fmt: skip
            raise HTTPError(499, "client closed the connection") from None  # nginx's "client closed request"
        except BodyTimeout as timeout:
            raise HTTPError(408, str(timeout), {"Connection": "close"}) from None
        if not local:  # Redis mode, a runnable another node serves: through the queue
            return await self._do(request, name, body, None)
        data = self._request_jobs.data(request, name, body, request[REQUEST_ID])  # body, or its request
        query = request.query_string
        if query == "then=true" and "Idempotency-Key" not in request.headers:
            if data is body:  # the fast path: no Result at all
                ran, value, error = await self._then_batch.run_soon(name, body)
                if error is not None:
                    log.log(
                        logging.INFO if isinstance(error, (RunErr, JobCancelled)) else logging.WARNING,
                        "request %s: job %s failed: %s",
                        request.get(REQUEST_ID),
                        name,
                        error,
                    )
                    raise error
                if ran:
                    return value_response(value)
            result = self.reactr.do(Job(name, data, new_result_id()))  # with an id: DELETE cancels by id
            if result.done():  # ran on this thread: answer without awaiting anything
                return value_response(self._outcome(result, request))
            return await self._then(request, result)
        return await self._do(request, name, body, data)

    def _admit(self, name: str) -> bool:
        """Whether runnable ``name`` is served here; raises when it is served nowhere or the server drains.

        Redis mode: a runnable another live node serves is admitted too (False).
        """
        if self.draining:
            raise HTTPError(503, "server is shutting down", {"Retry-After": RETRY_AFTER, "Connection": "close"})
        if self.reactr.has(name):
            return True
        if self.cluster is None or not self.cluster.serves(name):
            raise unavailable(name, self.load_errors.get(name))
        return False

    async def _do(self, request: web.Request, name: str, body: bytes, data: Any) -> web.StreamResponse:
        """A job kept in the store; ``data`` None: Redis mode, a runnable another node serves."""
        params = request.query
        then = flag(params, "then")  # 400 before the job runs, as for a refused callback
        callback = params.get("callback") or None
        url = await self.callbacks.check(callback) if callback is not None else None  # 400 before the job runs
        key = request.headers.get("Idempotency-Key")
        if self.cluster is not None and then and data is not None and url is None and key is None:
            return await self._then(request, self.reactr.do(Job(name, data, new_result_id())))  # here, as above
        if self.cluster is not None:  # queued in Redis; the node that runs it makes its data
            meta = self._request_jobs.meta(request, request[REQUEST_ID])
            record, new = await self.cluster.start(name, body, key, url, meta)
        else:
            record, new = await self.jobs.start(name, body, key, url, data=data)
        request[RESULT] = (name, record.id)
        if new:
            log.debug("request %s: job %s started (result %s)", request.get(REQUEST_ID), name, record.id)
        if url is not None:
            response: web.StreamResponse = web.Response(headers={"X-Reactr-Result-Id": record.id})
        else:
            location = {"Location": f"/then/{record.id}"}
            if then:
                if not record.done:
                    record = await self.store.wait(record.id, self.max_wait) or record
                response = self._reply(request, record, location)
            else:
                response = json_response({"resultId": record.id}, headers=location)
        if not new:
            response.headers["Idempotent-Replayed"] = "true"
        return response

    async def _then(self, request: web.Request, result: Result) -> web.StreamResponse:
        """``then=true`` without a stored record: wait up to max_wait; then store it and answer 202."""
        running = self.jobs.watch(result, stored=False)
        if await wait_done(result, self.max_wait):
            return value_response(self._outcome(result, request))
        await self.jobs.keep(running)
        request[RESULT] = (result.job.name, result.id)
        location = {"Location": f"/then/{result.id}"}
        return json_response({"resultId": result.id, "status": result.status.value}, 202, location)

    async def then(self, request: web.Request) -> web.StreamResponse:
        result_id = _result_id(request)
        wait = _seconds(request, "wait", self.max_wait)
        record = await self.store.wait(result_id, wait)
        if record is None:
            raise HTTPError(404, f"result with ID {result_id} not found")
        request[RESULT] = (record.runnable, result_id)
        return self._reply(request, record)

    async def status(self, request: web.Request) -> web.StreamResponse:
        record = await self._find(_result_id(request))
        request[RESULT] = (record.runnable, record.id)
        return json_response(status_body(self.jobs.live(record)))

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        """Cancel a job in flight and keep its record (``cancelled``) for the TTL; forget a finished one."""
        result_id = _result_id(request)
        jobs = self.jobs if self.cluster is None else self.cluster  # Redis mode: wherever the job is
        name = await jobs.cancel(result_id, CANCEL_WAIT)  # its record says cancelled once this answers
        if name is not None:
            request[RESULT] = (name, result_id)
            log.info("request %s: job %s (result %s) cancelled", request.get(REQUEST_ID), name, result_id)
            return web.Response(status=204)
        record = await self.store.delete(result_id)
        if record is None:
            raise HTTPError(404, f"result with ID {result_id} not found")
        request[RESULT] = (record.runnable, result_id)
        if self.reactr.cancel(result_id):  # in flight elsewhere, or ending as it was deleted
            log.info("request %s: job %s (result %s) cancelled", request.get(REQUEST_ID), record.runnable, result_id)
        return web.Response(status=204)

    async def health(self, request: web.Request) -> web.StreamResponse:
        runnables = self.reactr.names()
        if self.draining:
            draining = {"code": 503, "message": "draining", "status": "draining", "node": self.node_id,
                        "runnables": runnables}  # fmt: skip
            return json_response(draining, 503)
        health = {"status": "ok", "node": self.node_id, "runnables": runnables}
        if self.cluster is not None:  # still 200 without Redis: then=true for a runnable served here runs
            reachable = self.cluster.nodes.reachable
            health |= {"status": "ok" if reachable else "degraded", "redis": "ok" if reachable else "unreachable"}
        return json_response(health)

    # --- helpers --------------------------------------------------------------------------

    async def _find(self, result_id: str) -> JobRecord:
        record = await self.store.get(result_id)
        if record is None:
            raise HTTPError(404, f"result with ID {result_id} not found")
        return record

    def _reply(self, request: web.Request, record: JobRecord, headers: dict[str, str] | None = None) -> web.Response:
        """A finished record's answer, or 202 with the job's status."""
        if not record.done:
            return json_response({"resultId": record.id, "status": self.jobs.live(record).status.value}, 202, headers)
        if record.error_kind is not None:
            level = logging.INFO if record.error_kind in (ErrorKind.RUN_ERR, ErrorKind.CANCELLED) else logging.WARNING
            log.log(
                level,
                "request %s: job %s (result %s) failed: %s",
                request.get(REQUEST_ID),
                record.runnable,
                record.id,
                record.error_text,
            )
        return record_response(record)

    def _outcome(self, result: Result, request: web.Request) -> Any:
        error = result.error
        if error is not None:
            level = logging.WARNING if not isinstance(error, (RunErr, JobCancelled)) else logging.INFO
            log.log(
                level,
                "request %s: job %s (result %s) failed: %s",
                request.get(REQUEST_ID),
                result.job.name,
                result.id,
                error,
            )
        return result.outcome()

    # --- lifecycle ------------------------------------------------------------------------

    async def drain(self, timeout: float) -> None:
        """Refuse new jobs, wait up to ``timeout`` s for jobs and callbacks in flight, cancel the rest.

        Redis mode: the node first stops taking jobs and stores what it holds (``ClusterJobs.drain``).
        """
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.cluster is not None:
            await self.cluster.drain(timeout)
        if self.jobs:
            log.info("draining: waiting for %d job(s) and %d callback(s)", len(self.jobs), self.callbacks.pending)
            await self.jobs.settled(deadline)
            cancelled = [result_id for result_id in self.jobs.ids() if self.reactr.cancel(result_id)]
            if cancelled:
                log.warning("draining: %d job(s) still running after %.1fs; cancelled", len(cancelled), timeout)
                await self.jobs.settled(loop.time() + CANCEL_GRACE)  # a guest stops at its next epoch tick
        await self.callbacks.drain(max(0.0, deadline - loop.time()))

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: sweep expired results while the app runs (Redis mode: the node works); close after."""
        self.jobs.bind()
        if self.cluster is not None:
            await self.cluster.open()
        sweeper = asyncio.create_task(self._sweep())
        yield
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        if self.cluster is not None:
            await self.cluster.close()
        await self.callbacks.close()
        await self.store.close()

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.drain(self.config.server.drain_timeout)

    async def _sweep(self) -> None:
        interval = min(SWEEP_SECONDS, max(0.05, self.store.ttl / 2))
        while True:
            await asyncio.sleep(interval)
            try:
                dropped = await self.store.sweep()
            except Exception:
                log.exception("sweeping expired results failed")
                continue
            if dropped:
                log.debug("dropped %d expired result(s)", dropped)


SERVER = web.AppKey("reactr_server", Server)


def create_app(reactr: Reactr, config: Config | None = None, *, store: ResultStore | None = None) -> web.Application:
    """The aiohttp application serving ``reactr`` as design.md §2 says.

    ``store`` defaults to a memory store with ``server.result_ttl``,
    ``server.max_results`` and ``server.max_result_bytes``; in Redis mode
    (``config.cluster.redis``) the store is Redis's and ``store`` must be None.
    On shutdown the app drains (``Server.drain``), then closes the store.
    """
    config = config if config is not None else Config()
    server = Server(reactr, config, store)
    app = web.Application(client_max_size=config.server.body_limit)
    app[SERVER] = server
    app[DO_ROUTE] = add_routes(app, server, "/do/{job}", POST=server.do)["POST"]
    add_routes(app, server, "/then/{id}", GET=server.then, DELETE=server.cancel)
    add_routes(app, server, "/jobs/{id}", GET=server.status)
    add_routes(app, server, "/metrics", GET=metrics_route(app, server))
    if server.cluster is not None:
        app[METRICS].add_cluster(server.cluster.worker)
    for path, public, methods in dashboard_routes(server):  # /ui: the pages are public, their data is not
        add_routes(app, server, path, public=public, **methods)
    # Public routes (no bearer token) are declared here, and only here.
    add_routes(app, server, "/health", public=True, GET=server.health)
    add_routes(app, server, "/openapi.json", public=True, GET=openapi_route(config, reactr.names))  # describes these
    # No middleware (see Server.guard): any other path gets its JSON 404 from a route of its own, tried last.
    app.router.add_route("*", "/{tail:.*}", server.guard(_refuse(404, "not found")))
    app.cleanup_ctx.append(server.lifetime)
    app.on_shutdown.append(server._on_shutdown)
    return app


def add_routes(
    app: web.Application, server: Server, path: str, *, public: bool = False, **methods: Handler
) -> dict[str, Handler]:
    """Route ``path``'s ``methods`` (``GET=handler``, ...) through ``server.guard``; the guarded handlers, by method.

    Every handler is guarded: a request id, JSON errors, and a bearer token
    unless ``public``. A GET route answers HEAD too; any other method gets 405
    with ``Allow`` (behind the token, so the token-less learn nothing of a
    public route but its GET). The one place routes are added, besides the
    catch-all 404.
    """
    if "GET" in methods:
        methods["HEAD"] = methods["GET"]
    guarded = {method: server.guard(handler, auth=not public) for method, handler in methods.items()}
    for method, handler in guarded.items():
        app.router.add_route(method, path, handler)
    allowed = ",".join(sorted(methods))
    app.router.add_route("*", path, server.guard(_refuse(405, "method not allowed", {"Allow": allowed})))
    return guarded


__all__ = ["SERVER", "Server", "add_routes", "create_app", "error_response", "value_response", "wait_done"]
