"""``GET /ui/api/events``: finished jobs as server-sent events, for the dashboard's live list.

Every job that finishes on the server's ``Reactr`` - async, ``then=true`` (also
the fast path, which has no result id), callback, in-process - is told to the
listeners of ``Reactr.job_events``. A stream adds one while it is open, so with
no dashboard open a job pays one attribute test and nothing more.

Each stream has its own ``Subscription``: the last ``BUFFER`` events, appended
from whatever thread finished the job. Every ``FLUSH_SECONDS`` the stream sends
what gathered as one ``jobs`` event (a JSON object: ``jobs``, a list, oldest
first, and ``dropped``, how many older ones the buffer let go). A client that
reads slowly therefore costs at most its buffer and what the socket holds;
one that stops reading for ``WRITE_TIMEOUT`` seconds is cut off. At most
``MAX_STREAMS`` streams are open at once (then 503), and every stream ends
when the server starts draining.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from reactr_wasm.scheduler.stats import JobEvent, JobEvents
from reactr_wasm.server.request_keys import REQUEST_ID
from reactr_wasm.server.responses import RETRY_AFTER, HTTPError

BUFFER = 256  # events kept per stream between two flushes
FLUSH_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0  # a comment line this often when nothing happens: proxies keep the stream open
WRITE_TIMEOUT = 10.0
MAX_STREAMS = 16


class Subscription:
    """One stream's buffer of finished jobs: the newest ``size`` events, and a count of those let go."""

    def __init__(self, size: int = BUFFER) -> None:
        self._events: collections.deque[JobEvent] = collections.deque(maxlen=size)
        self._dropped = 0
        self._lock = threading.Lock()  # jobs finish on several threads; taken only while a dashboard listens

    def __call__(self, event: JobEvent) -> None:
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self._dropped += 1
            self._events.append(event)

    def take(self) -> tuple[list[JobEvent], int]:
        """The events gathered since the last call, oldest first, and how many were let go meanwhile."""
        with self._lock:
            events, dropped = list(self._events), self._dropped
            self._events.clear()
            self._dropped = 0
        return events, dropped


def event_json(event: JobEvent) -> dict[str, Any]:
    return {
        "at": round(event.at, 3),
        "runnable": event.runnable,
        "id": event.result_id or None,
        "outcome": event.outcome,
        "seconds": event.seconds,
        "error": event.error,
    }


class JobFeed:
    """The event streams of one server over ``events``; each ends once ``stopping()`` (the server drains)."""

    def __init__(self, events: JobEvents, stopping: Callable[[], bool]) -> None:
        self._events = events
        self._stopping = stopping
        self.streams = 0

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """The ``GET /ui/api/events`` handler. Raises HTTPError 503 past ``MAX_STREAMS``."""
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            "X-Request-Id": request[REQUEST_ID],  # the guard sets it after the handler: too late for a stream
        })  # fmt: skip
        if request.method == "HEAD":  # the headers a GET would get, and no stream to keep open
            return response
        if self.streams >= MAX_STREAMS:
            raise HTTPError(503, f"at most {MAX_STREAMS} dashboard event streams at once", {"Retry-After": RETRY_AFTER})
        subscription = Subscription()
        self.streams += 1
        self._events.add(subscription)
        try:
            await response.prepare(request)
            await self._send(request, response, subscription)
        except (ConnectionError, TimeoutError):
            pass  # the client went away, or stopped reading: nothing to answer
        finally:
            self._events.remove(subscription)
            self.streams -= 1
        return response

    async def _send(self, request: web.Request, response: web.StreamResponse, subscription: Subscription) -> None:
        await self._write(response, b"retry: 2000\n: reactr-wasm job events\n\n")
        quiet_since = time.monotonic()
        while not self._stopping():
            await asyncio.sleep(FLUSH_SECONDS)
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            events, dropped = subscription.take()
            if events or dropped:
                body = json.dumps({"jobs": [event_json(event) for event in events], "dropped": dropped})
                await self._write(response, f"event: jobs\ndata: {body}\n\n".encode())
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                await self._write(response, b": keep-alive\n\n")
                quiet_since = time.monotonic()

    @staticmethod
    async def _write(response: web.StreamResponse, data: bytes) -> None:
        async with asyncio.timeout(WRITE_TIMEOUT):  # write() waits while the client's socket is full
            await response.write(data)


__all__ = ["BUFFER", "MAX_STREAMS", "JobFeed", "Subscription", "event_json"]
