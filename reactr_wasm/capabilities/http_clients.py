"""The backend of the ``http`` section: one event loop thread, one ``HttpClient`` per distinct settings.

Opened once per server, and only when some runnable is granted ``http`` or
``graphql`` (``config/capabilities.py: HttpSettings.open``). A runnable with
its own ``[runnables.NAME.http]`` rules gets a client of its own; runnables
whose settings are equal share one, so keep-alive connections are reused
across them. Every client runs on the one ``BackgroundLoop``, whose thread
starts with the first request. ``close()`` closes the clients, then the loop.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Protocol

from reactr_wasm.capabilities.egress import Egress
from reactr_wasm.capabilities.http import HttpClient
from reactr_wasm.capabilities.http_loop import BackgroundLoop
from reactr_wasm.capabilities.http_rules import HttpRules

_Key = tuple[HttpRules, tuple[tuple[str, str], ...], Egress]


class ClientSettings(Protocol):
    """What a client is made from (``config.capabilities.HttpSettings`` has it)."""

    @property
    def auth(self) -> Mapping[str, str]: ...

    def rules(self) -> HttpRules: ...

    def egress(self) -> Egress: ...


class HttpClients:
    """The HTTP clients of one server, on one loop thread; thread-safe. Close when done."""

    def __init__(self) -> None:
        self._loop = BackgroundLoop()
        self._clients: dict[_Key, HttpClient] = {}
        self._lock = threading.Lock()

    def client(self, settings: ClientSettings) -> HttpClient:
        """The client for ``settings``: made on first request, kept until ``close()``.

        Raises ValueError for a bad ``resolve`` entry (the config refuses those at load).
        """
        key = (settings.rules(), tuple(sorted(settings.auth.items())), settings.egress())
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                rules, auth, egress = key
                client = self._clients[key] = HttpClient(rules, dict(auth), loop=self._loop, egress=egress)
            return client

    def __len__(self) -> int:
        return len(self._clients)

    def close(self) -> None:
        """Close every client, then the loop; idempotent."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        try:
            for client in clients:
                client.close()
        finally:
            self._loop.close()

    def __enter__(self) -> HttpClients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ClientSettings", "HttpClients"]
