"""The access log: one INFO record per HTTP request on the ``reactr_wasm.access`` logger.

Text::

    127.0.0.1 "POST /do/hello-echo?then=true" 200 198 0.41ms request_id=5f2c01aa-1 job=hello-echo result_id=-

With ``--log-format json`` the same line is the ``message`` and each part is a field:
``remote``, ``method``, ``path`` (the request target as sent, query included),
``status``, ``bytes`` (the response, headers included), ``duration_ms`` (request head
read to response written), ``request_id`` (the ``X-Request-Id`` answered), ``job``
(the runnable a ``/do/{job}`` request named, or the job of the result a
``/then``/``/jobs`` request found) and ``result_id`` (the result the request
started or found, when the client can read it back; ``null``/``-`` otherwise, e.g.
a ``then=true`` answer). The route hands the job over as ``request[RESULT]``.

The log's filters (``redaction.py``) mask credentials in the line and in every field.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time as clock

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from reactr_wasm.server.fastpath import DO_PREFIX
from reactr_wasm.server.request_keys import REQUEST_ID, RESULT, STARTED

ACCESS_LOGGER = "reactr_wasm.access"


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access-log hook writing the line and fields of the module docstring.

    aiohttp makes one per connection. A request only notes its objects and
    the time; the records are made and handed to the logger's handlers after
    the event-loop turn, all of the turn's requests back to back, as
    ``Server._run_soon`` does for jobs: interleaved with the HTTP work, the
    same logging calls cost about twice as much here (measured: ~50 vs ~25 µs
    of server CPU per request; caches). Its own line formatting and one record
    made per connection and copied per request also skip what aiohttp's
    AccessLogger and ``Logger.info`` do per request (interpret an Apache-style
    format, find the caller's frame, fill a new LogRecord). The duration is
    taken from ``request[STARTED]`` when set: aiohttp's ``time`` comes from
    ``loop.time()``, which uvloop keeps in whole milliseconds, cached per turn.
    """

    def __init__(self, logger: logging.Logger, log_format: str = "") -> None:
        super().__init__(logger, log_format)
        template = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "", (), None, "log")
        self._record_class, self._template = type(template), vars(template)
        self._start = template.created - template.relativeCreated / 1000  # logging's own start time
        self._loop = asyncio._get_running_loop()  # aiohttp makes connections on the loop's thread
        self._waiting = _waiting()

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        waiting = self._waiting
        waiting.append((self, request, response, time, clock.time(), clock.perf_counter()))
        if len(waiting) == 1:
            if self._loop is None:
                write_waiting()
            else:
                self._loop.call_soon(write_waiting)

    def _write(self, request: web.BaseRequest, response: web.StreamResponse, time: float, now: float,
               ended: float) -> None:  # fmt: skip
        if not self.logger.isEnabledFor(logging.INFO):  # the level changed since the connection was made
            return
        started = request.get(STARTED)
        fields = _fields(request, response, (ended - started if started is not None else time) * 1000)
        line = (
            f'{fields["remote"] or "-"} "{fields["method"]} {fields["path"]}" {fields["status"]} {fields["bytes"]} '
            f"{fields['duration_ms']:.2f}ms request_id={fields['request_id'] or '-'} job={fields['job'] or '-'} "
            f"result_id={fields['result_id'] or '-'}"
        )
        record = _new_record(self._record_class)
        record.__dict__ = {
            **self._template, "msg": line, "created": now, "msecs": now % 1 * 1000,
            "relativeCreated": (now - self._start) * 1000, **fields,
        }  # fmt: skip
        self.logger.handle(record)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)  # aiohttp asks once per connection


def _fields(request: web.BaseRequest, response: web.StreamResponse, ms: float) -> dict[str, object]:
    named = request.get(RESULT)
    if named is not None:
        job, result_id = named
    else:  # the route's {job}, when the path is /do/{job}
        name = request.path[len(DO_PREFIX) :] if request.path.startswith(DO_PREFIX) else ""
        job, result_id = (name if "/" not in name else ""), None
    return {
        "remote": request.remote, "method": request.method, "path": request.raw_path, "status": response.status,
        "bytes": response.body_length, "duration_ms": round(ms, 3), "request_id": request.get(REQUEST_ID),
        "job": job or None, "result_id": result_id,
    }  # fmt: skip


_new_record = object.__new__
_Entry = tuple[AccessLogger, web.BaseRequest, web.StreamResponse, float, float, float]
_local = threading.local()  # a loop runs on one thread: its access log waits in its thread's list


def _waiting() -> list[_Entry]:
    waiting: list[_Entry] | None = getattr(_local, "waiting", None)
    if waiting is None:
        waiting = _local.waiting = []
    return waiting


def write_waiting() -> None:
    """Write the access log's lines waiting on this thread (``serve`` calls it once more at the end)."""
    waiting = _waiting()
    entries = waiting[:]
    waiting.clear()
    for logger, request, response, time, now, ended in entries:
        try:
            logger._write(request, response, time, now, ended)
        except Exception:
            logging.getLogger(ACCESS_LOGGER).exception("access log line not written")
