"""Which network destinations outgoing requests may reach (callbacks; guest HTTP can share it).

A destination is refused when its address is not a public unicast one:
loopback, private (RFC 1918, ULA), link-local (incl. the cloud metadata
address 169.254.169.254), shared/CGNAT (100.64.0.0/10), multicast,
unspecified, reserved or otherwise non-global - IPv4 and IPv6, with IPv4
addresses embedded in IPv6 (mapped, 6to4, NAT64) judged as IPv4 - unless
``allow_private`` is set.

The rule is applied to the address actually connected to, not to a separate
DNS lookup made beforehand (which a rebinding DNS server can answer
differently): ``GuardedResolver`` filters what aiohttp's resolver returns and
``guarded_socket_factory`` refuses the socket for any other address, covering
literal IPs, which aiohttp never passes to its resolver. ``check_url`` is the
same rule applied up front, so a bad URL is refused before any work starts;
``canonical_url`` writes an IPv4 host in a legacy form (``127.1``,
``2130706433``, ``0x7f.1``) as the address it names, as ``fetch_url`` reads it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Container

from aiohttp import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from ..capabilities.egress import DIRECT, Egress
from ..capabilities.http_rules import ipv4_address, literal_address

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class DestinationRefused(OSError):
    """The destination breaks the network rules; retrying cannot help."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return refusal_reason(embedded)
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
        (address in _CGNAT, "a shared (CGNAT) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    return None


def check_address(host: str, address: str, allow_private: bool) -> None:
    """Raise DestinationRefused when connecting to ``address`` (for ``host``) is not allowed."""
    if allow_private:
        return
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        raise DestinationRefused(f"{host}: {address!r} is not an IP address") from None
    reason = refusal_reason(parsed)
    if reason is not None:
        shown = host if host == address else f"{host} ({address})"
        raise DestinationRefused(f"{shown} is {reason}; private destinations are disallowed")


def check_scheme(url: URL, allow_http: bool) -> None:
    """Raise ValueError unless ``url`` is an absolute http(s) URL allowed by ``allow_http``."""
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{url}: not an absolute http or https URL")
    if url.scheme == "http" and not allow_http:
        raise ValueError(f"{url}: insecure HTTP destinations are disallowed (use https)")


async def check_url(
    url: URL, *, allow_http: bool, allow_private: bool, timeout: float = 5.0, egress: Egress = DIRECT
) -> None:
    """Check a destination before any work starts: scheme, then every address it resolves to.

    The addresses are those ``egress`` pins the host and port to (``resolve``),
    else what DNS answers here (also when a proxy will connect: it resolves the
    name again itself). Raises ValueError (bad URL) or DestinationRefused
    (forbidden or unresolvable host). The connection itself is checked again
    (``GuardedResolver``, ``guarded_socket_factory``).
    """
    check_scheme(url, allow_http)
    host = url.raw_host or ""
    if allow_private:
        return
    address = literal_address(host)
    if address is not None:
        # IPv6 as written (check_address parses it, zone and all); IPv4 as read: "127.1 (127.0.0.1)".
        check_address(host, host if ":" in host else address, allow_private)
        return
    pinned = egress.pinned(host, url.port or 0)
    if pinned is not None:
        for address in pinned:
            check_address(host, address, allow_private)
        return
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as error:
        raise DestinationRefused(f"{host}: cannot resolve: {error}") from None
    for info in infos:
        check_address(host, str(info[4][0]), allow_private)


def canonical_url(url: URL) -> URL:
    """``url`` with an IPv4 host in a legacy form written as a dotted quad (``127.1`` -> ``127.0.0.1``).

    The forms are those ``fetch_url`` reads (``http_rules.ipv4_address``):
    aiohttp refuses all-digit ones when connecting and hands hex ones to the
    resolver, so the URL is delivered to the address the rules checked, by
    this one reading. Raises ValueError for a host that ends in a number but
    is no address (``1.2.3.4.5``, ``999.1``).
    """
    host = url.raw_host
    if not host or ":" in host:  # none, or IPv6 (yarl keeps it compressed)
        return url
    address = ipv4_address(host)
    if address is None or str(address) == host:
        return url
    return url.with_host(str(address))


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


def guarded_socket_factory(
    allow_private: bool, trusted: Container[tuple[str, int]] = frozenset()
) -> SocketFactoryType:
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


__all__ = [
    "DestinationRefused",
    "GuardedResolver",
    "canonical_url",
    "check_address",
    "check_scheme",
    "check_url",
    "guarded_socket_factory",
    "refusal_reason",
]
