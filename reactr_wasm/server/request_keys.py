"""What the server stores on a request for its later stages (guard, routes, the access log)."""

from __future__ import annotations

from aiohttp import web

REQUEST_ID = web.RequestKey("reactr_request_id", str)  # the client's X-Request-Id, when sane, else ours
# (job name, result id) a request started or asked about, for the access log
RESULT = web.RequestKey("reactr_job", tuple)
STARTED = web.RequestKey("reactr_started", float)  # perf_counter() when the request reached the app

__all__ = ["REQUEST_ID", "RESULT", "STARTED"]
