"""The dashboard at ``/ui``: static pages (``ui/``, plain JavaScript, no build step) over JSON and an event stream.

| route | answer | token |
|---|---|---|
| ``GET /ui``, ``/ui/``, ``/ui/app.js``, ``/ui/style.css`` | the page and its assets | public |
| ``GET /ui/api/runnables`` | each runnable: ABI verdict, capabilities, pool, counters; the server's state | bearer |
| ``GET /ui/api/events`` | finished jobs as server-sent events (``job_feed.py``) | bearer |

The pages are public because a browser cannot send a bearer token when it
navigates; they hold only the code the package ships, and a strict
Content-Security-Policy (scripts and styles from this origin only, no inline
code, no framing). Everything about the server comes from the two API routes,
guarded like the job API: the page asks for the token, keeps it in the tab's
``sessionStorage`` and sends it as ``Authorization`` on every ``fetch`` - the
event stream included, read with ``fetch`` rather than ``EventSource``, which
cannot send headers. So a token never appears in a URL (logs, history,
Referer); the price is that a script injected into the page could read it,
which the CSP and the page's text-only rendering (never ``innerHTML``) guard.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from reactr_wasm.capabilities.registry import NAMES
from reactr_wasm.errors import RunnableNotFound
from reactr_wasm.scheduler.stats import OUTCOMES, WHERE
from reactr_wasm.scheduler.targets import WasmTarget
from reactr_wasm.scheduler.worker import Worker
from reactr_wasm.server.job_feed import JobFeed
from reactr_wasm.server.metrics import REFRESH_TIMEOUT, package_version
from reactr_wasm.server.responses import json_response

if TYPE_CHECKING:
    from reactr_wasm.server.app import Server

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, bool, dict[str, Handler]]  # path, public, handlers by method (add_routes' arguments)

UI_PREFIX = "/ui"
# path -> (file in ui/, content type)
PAGES = {
    "/ui": ("index.html", "text/html"),
    "/ui/": ("index.html", "text/html"),
    "/ui/app.js": ("app.js", "text/javascript"),
    "/ui/style.css": ("style.css", "text/css"),
}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def describe(name: str, worker: Worker) -> dict[str, Any]:
    """One runnable as the dashboard shows it."""
    stats, target = worker.stats, worker.target
    runs = stats.duration.count
    described: dict[str, Any] = {
        "name": name,
        "kind": "python",
        "abi": None,
        "capabilities": None,
        "limits": {"timeout": target.timeout},
        "pool": {"isolation": None, "size": worker.pool_size, "max_threads": worker.max_threads,
                 "threads": worker.threads, "queued": worker.queued, "inline": worker.runs_inline},
        "counters": {
            "jobs": dict(zip(OUTCOMES, stats.outcomes, strict=True)),
            "runs": dict(zip(WHERE, stats.runs, strict=True)),
            "mean_seconds": stats.duration.sum / runs if runs else None,
        },
    }  # fmt: skip
    if isinstance(target, WasmTarget):
        runnable = target.runnable
        info, pool, limits = runnable.info, runnable.pool, runnable.limits
        imported = [label for label in info.capabilities if label in NAMES]
        granted = runnable.capabilities.granted()
        described["kind"] = "wasm"
        described["abi"] = {
            "ok": info.ok,
            "problems": info.problems,
            "exports": info.exports,
            "imports": info.imports,
            "uses": info.capabilities,
            "restartable": info.restartable,
        }
        described["capabilities"] = {
            "imports": imported,
            "granted": granted,
            "missing": [label for label in imported if label not in granted],
        }
        described["limits"] = {"timeout": limits.timeout, "memory": limits.memory, "result_size": limits.result_size}
        described["pool"] |= {"isolation": pool.isolation, "idle": pool.idle, "busy": pool.busy,
                              "recycled": dict(pool.recycled)}  # fmt: skip
    return described


class Dashboard:
    """The dashboard's handlers over one ``Server``."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self.feed = JobFeed(server.reactr.job_events, lambda: server.draining)
        ui = importlib.resources.files("reactr_wasm.server") / "ui"
        self._files = {file: (ui / file).read_bytes() for file, _ in PAGES.values()}  # a few kB, read once

    def page(self, path: str) -> Handler:
        file, content_type = PAGES[path]
        body = self._files[file]

        async def page(request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, content_type=content_type, charset="utf-8", headers=PAGE_HEADERS)

        return page

    async def runnables(self, request: web.Request) -> web.StreamResponse:
        """``GET /ui/api/runnables``: ``{"server": {...}, "runnables": [...]}``."""
        reactr = self._server.reactr
        described = []
        for name in reactr.names():
            try:
                described.append(describe(name, reactr.worker(name)))
            except RunnableNotFound:  # removed meanwhile (hot reload)
                continue
        return json_response({"server": await self._state(), "runnables": described})

    async def _state(self) -> dict[str, Any]:
        server = self._server
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT):
                items, size = await server.store.size()
            store: dict[str, int] | None = {"items": items, "bytes": size}
        except Exception as error:  # a store out of reach: the page says so, the rest still shows
            log.warning("dashboard: the result store's size is unknown: %s", error)
            store = None
        return {
            "version": package_version(),
            "draining": server.draining,
            "auth": bool(server.config.server.auth_tokens),
            "in_flight": len(server.jobs),
            "callbacks": {"pending": server.callbacks.pending, **server.callbacks.outcomes},
            "store": store,
            "event_streams": self.feed.streams,
        }

    def routes(self) -> list[Route]:
        """What ``create_app`` hands ``add_routes``: the API guarded, the pages public."""
        return [
            ("/ui/api/runnables", False, {"GET": self.runnables}),
            ("/ui/api/events", False, {"GET": self.feed.stream}),
            *((path, True, {"GET": self.page(path)}) for path in PAGES),
        ]


def dashboard_routes(server: Server) -> list[Route]:
    """The dashboard's routes over ``server``, as ``(path, public, handlers)`` for ``add_routes``."""
    return Dashboard(server).routes()


__all__ = ["PAGES", "UI_PREFIX", "Dashboard", "dashboard_routes", "describe"]
