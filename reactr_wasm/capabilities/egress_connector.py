"""The aiohttp side of ``Egress`` and the address rules: connectors and a proxy router for both HTTP clients.

Guest HTTP (``http_transport.Transport``) and webhook callbacks
(``server/callbacks.py``) build their connectors here, so the address rules,
the trusted proxy, the ``resolve`` pins and the CA bundle work the same way
for both:

- ``EgressResolver`` answers the connector's lookups: the proxy's own host
  through the system resolver (the operator chose it: no address rule, and
  its addresses are remembered as trusted), a pinned ``host:port`` with its
  ``resolve`` addresses, anything else through ``destinations`` (callbacks:
  DNS; guests: nothing, their URLs already name checked addresses) - the
  latter two filtered by the address rules (``GuardedResolver``).
- The socket factory (``guarded_socket_factory``) re-checks every address it
  dials, except the proxy's own ``(address, port)``.
- ``proxy_router`` is a client middleware that picks each request's proxy from
  its URL (``Egress.proxy_for``); callbacks use it, the guest transport passes
  the proxy it decided per hop.

What the address rules mean through a proxy: the destination is still
resolved here and every address must pass (unless ``allow_private``), but the
proxy connects by name and resolves it again itself - see ``http.py``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Container
from urllib.parse import urlsplit

import aiohttp
from aiohttp import (
    AddrInfoType,
    ClientHandlerType,
    ClientMiddlewareType,
    ClientRequest,
    ClientResponse,
    SocketFactoryType,
)
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from reactr_wasm.capabilities.egress import Egress
from reactr_wasm.capabilities.netrules import DestinationRefused, check_address, literal_address, normal_host

Endpoint = tuple[str, int]  # (address or host, port)


def proxy_endpoints(egress: Egress) -> set[Endpoint]:
    """``(host, port)`` of every proxy ``egress`` uses (port 80 when the URL has none)."""
    endpoints = set()
    for proxy in egress.proxies:
        parts = urlsplit(proxy)
        endpoints.add((normal_host(parts.hostname or ""), parts.port or 80))
    return endpoints


class GuardedResolver(AbstractResolver):
    """Wraps a resolver and keeps only the addresses the rules allow.

    A host with no allowed address fails resolution with DestinationRefused.
    """

    def __init__(self, inner: AbstractResolver, allow_private: bool) -> None:
        self._inner = inner
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        resolved = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        refusal: DestinationRefused | None = None
        for entry in resolved:
            try:
                check_address(host, entry["host"], self._allow_private)
            except DestinationRefused as error:
                refusal = error
                continue
            kept.append(entry)
        if not kept and refusal is not None:
            raise refusal
        return kept

    async def close(self) -> None:
        await self._inner.close()


def guarded_socket_factory(allow_private: bool, trusted: Container[tuple[str, int]] = frozenset()) -> SocketFactoryType:
    """A socket factory for aiohttp's connector that refuses sockets to forbidden addresses.

    aiohttp calls it with the address it is about to connect to, so this is
    the last word, whatever produced the address. ``(address, port)`` pairs in
    ``trusted`` (the operator's proxy) are let through; it may grow later.
    """

    def factory(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        address = str(sockaddr[0])
        if (address, sockaddr[1]) not in trusted:
            check_address(address, address, allow_private)
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


class _NoLookups(AbstractResolver):
    """Refuses every lookup: for a connector whose URLs name checked addresses, a lookup is a bug."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise OSError(f"refusing to resolve {host!r}: only checked addresses are dialled")

    async def close(self) -> None:
        pass


class _Pinned(AbstractResolver):
    """``resolve`` entries first, then ``inner``."""

    def __init__(self, egress: Egress, inner: AbstractResolver) -> None:
        self._egress = egress
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        pinned = self._egress.pinned(host, port)
        if pinned is None:
            return await self._inner.resolve(host, port, family)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in pinned
        ]

    async def close(self) -> None:
        await self._inner.close()


class EgressResolver(AbstractResolver):
    """The connector's resolver: the trusted proxy's host, else pinned or looked-up destinations under the rules.

    ``trusted`` collects the proxy's resolved ``(address, port)`` pairs for the
    socket factory. A destination with no allowed address fails with
    ``DestinationRefused``.
    """

    def __init__(
        self,
        egress: Egress,
        *,
        allow_private: bool,
        destinations: AbstractResolver | None,
        trusted: set[Endpoint],
    ) -> None:
        self._proxies = proxy_endpoints(egress)
        self._system: AbstractResolver = ThreadedResolver()
        self._guarded = GuardedResolver(_Pinned(egress, destinations or _NoLookups()), allow_private)
        self._trusted = trusted

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if (normal_host(host), port) in self._proxies:
            found = await self._system.resolve(host, port, family)
            self._trusted.update((entry["host"], entry["port"]) for entry in found)
            return found
        return await self._guarded.resolve(host, port, family)

    async def close(self) -> None:
        await self._system.close()
        await self._guarded.close()


def egress_connector(
    egress: Egress,
    *,
    allow_private: bool,
    destinations: AbstractResolver | None,
    tls: ssl.SSLContext | bool = True,
    force_close: bool = False,
) -> aiohttp.TCPConnector:
    """A connector that applies ``egress`` under the address rules; create it on its event loop.

    ``destinations`` resolves destination names (None: refuse to, because the
    URLs name addresses already checked); ``tls`` is the default SSL context.
    """
    trusted: set[Endpoint] = set()
    for host, port in proxy_endpoints(egress):
        literal = literal_address(host)
        if literal is not None:  # aiohttp dials an IP without asking the resolver
            trusted.add((literal, port))
    return aiohttp.TCPConnector(
        resolver=EgressResolver(egress, allow_private=allow_private, destinations=destinations, trusted=trusted),
        socket_factory=guarded_socket_factory(allow_private, trusted=trusted),  # the same set: filled as resolved
        ssl=tls,
        force_close=force_close,
    )


def proxy_router(egress: Egress) -> ClientMiddlewareType:
    """A client middleware that sends each request through ``egress.proxy_for`` its URL (or direct)."""

    async def route(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        url = request.url
        proxy = egress.proxy_for(url.scheme, url.raw_host or "", url.port or 0)
        request.update_proxy(URL(proxy) if proxy is not None else None, None, None)
        return await handler(request)

    return route


__all__ = [
    "EgressResolver",
    "GuardedResolver",
    "egress_connector",
    "guarded_socket_factory",
    "proxy_endpoints",
    "proxy_router",
]
