"""Where outgoing requests may go: the destination rules of guest HTTP and webhook callbacks.

One set of rules for both, as ``egress.py`` is one way out for both:
``fetch_url`` and ``graphql_query`` (``http.py``) and callback deliveries
(``server/callbacks.py``) judge hosts, domains and addresses with the
functions here, so the same destination gets the same answer from either.

Hosts: ``normal_host`` is the one form every rule compares (IDNA-encoded,
lower case, trailing dots dropped): ``BÜCHER.example.``,
``bücher.example`` and ``xn--bcher-kva.example`` are one host. Domain
patterns are normalised the same way. An IPv4 host may be written in any
form URL parsers read (``ipv4_address``: ``127.1``, ``2130706433``,
``0x7f.1``); ``literal_address`` gives the address it names.

Domains (``domain_refusal``): Reactr's patterns (``match_domain``: ``*`` is
one label; the pattern's leftmost label repeats for extra labels). Deny
wins: a blocked pattern refuses the host, or any name its lookup answered
(a CNAME target), even when an allowed pattern matches too; a non-empty
allow list must match the host itself.

Addresses: a destination is refused when its address is not a public
unicast one: loopback, private (RFC 1918, ULA), link-local (incl. the cloud
metadata address 169.254.169.254), shared/CGNAT (100.64.0.0/10), multicast,
unspecified, reserved or otherwise non-global - IPv4 and IPv6, with IPv4
addresses embedded in IPv6 (mapped, 6to4, NAT64) judged as IPv4 - unless
``allow_private`` is set. The rule is applied to the address actually
connected to, not to a separate DNS lookup made beforehand (which a
rebinding DNS server can answer differently): the connectors of
``egress_connector.py`` filter what their resolver returns and refuse the
socket for any other address. ``check_url`` is the same rule applied up
front, so a bad callback URL is refused before any work starts;
``canonical_url`` writes an IPv4 host in a legacy form as the address it
names, as ``fetch_url`` reads it.

Pure functions and the standard library only: no network client is imported here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from yarl import URL

    from reactr_wasm.capabilities.egress import Egress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class DestinationRefused(OSError):
    """The destination breaks the network rules; retrying cannot help."""


class PrivateDestination(DestinationRefused):
    """The destination is a loopback, private, link-local or otherwise non-public address (``allow_private``)."""


# --- hosts -------------------------------------------------------------------------------------


def normal_host(host: str) -> str:
    """The form every rule compares: lower case, trailing dots dropped, IDNA-encoded when not ASCII.

    A name IDNA cannot encode is kept (lower case): it matches no pattern
    written otherwise, and resolving it fails.
    """
    host = host.lower().rstrip(".")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


_NUMERALS = {10: frozenset("0123456789"), 8: frozenset("01234567"), 16: frozenset("0123456789abcdef")}


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 host: decimal, octal after a leading ``0``, hex after ``0x``; None if no number."""
    if part[:2] == "0x":
        digits, base = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits:
        return 0 if base == 16 else None  # a bare "0x" is 0
    if not set(digits) <= _NUMERALS[base]:  # int() alone would take "_", "+" and spaces
        return None
    significant = digits.lstrip("0")
    return int(significant or "0", base) if len(significant) <= 12 else 1 << 48  # out of range either way


def ipv4_address(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a URL host names, in any form URL parsers and ``inet_aton`` read; None for a name.

    One to four dot-separated numbers, each decimal, octal (leading ``0``) or
    hex (``0x``), the last one filling the remaining bytes, and a trailing dot
    ignored: ``2130706433``, ``127.1``, ``0x7f.1``, ``0177.0.0.1`` and
    ``127.0.0.1.`` all name 127.0.0.1. This is the WHATWG URL Standard's IPv4
    parser: how browsers read such hosts, how ``fetch_url`` connects, and how
    callback URLs are normalised. Raises ValueError when the last label is a
    number but the host is no address (``1.2.3.4.5``, ``256.0.0.1``, ``1..2``):
    it is neither a name nor an address.
    """
    labels = host.lower().split(".")
    if len(labels) > 1 and not labels[-1]:
        labels.pop()
    last = labels[-1]
    if not last or (not set(last) <= _NUMERALS[10] and _ipv4_number(last) is None):
        return None  # does not end in a number: a name
    if len(labels) > 4:
        raise _not_ipv4(host, "more than four parts")
    values: list[int] = []
    for label in labels:
        number = _ipv4_number(label)
        if number is None:
            raise _not_ipv4(host, "a part is not a number")
        values.append(number)
    if any(value > 255 for value in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise _not_ipv4(host, "a part is out of range")
    leading = sum(value << 8 * (3 - index) for index, value in enumerate(values[:-1]))
    return ipaddress.IPv4Address(leading + values[-1])


def _not_ipv4(host: str, why: str) -> ValueError:
    return ValueError(f"{host}: ends in a number but is not an IPv4 address: {why}")


def literal_address(host: str) -> str | None:
    """The address a literal IP host names (IPv6, or IPv4 in any form ``ipv4_address`` reads); None for a name."""
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    try:
        address = ipv4_address(host)
    except ValueError:
        return None  # no address either: resolving the name fails, in the resolver's words
    return None if address is None else str(address)


# --- domains -----------------------------------------------------------------------------------


def match_domain(pattern: str, domain: str) -> bool:
    """Reactr's domain pattern match (§4.2) of two normalised names; never raises, whatever the labels."""
    if pattern == domain:
        return True
    pattern_labels = pattern.split(".")
    domain_labels = domain.split(".")
    if len(pattern_labels) > len(domain_labels):
        return False
    for offset, label in enumerate(reversed(domain_labels)):
        wanted = pattern_labels[max(len(pattern_labels) - 1 - offset, 0)]
        if wanted != "*" and wanted != label:
            return False
    return True


def domain_refusal(
    host: str, allowed: Iterable[str], blocked: Iterable[str], *, aliases: Iterable[str] = ()
) -> Literal["blocked", "not allowed"] | None:
    """Whether the domain lists refuse ``host``: ``"blocked"``, ``"not allowed"``, or None when it may go.

    ``allowed`` empty allows every domain not blocked. ``aliases`` are other
    names the host's lookup answered (a CNAME target): a blocked pattern
    refuses them too. Host, aliases and patterns are compared as ``normal_host`` forms.
    """
    name = normal_host(host)
    names = [name, *(alias for alias in map(normal_host, aliases) if alias and alias != name)]
    if any(match_domain(normal_host(pattern), each) for pattern in blocked for each in names):
        return "blocked"
    allowed = [normal_host(pattern) for pattern in allowed]
    if allowed and not any(match_domain(pattern, name) for pattern in allowed):
        return "not allowed"
    return None


# --- addresses ---------------------------------------------------------------------------------


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
    """Raise DestinationRefused when connecting to ``address`` (for ``host``) is not allowed.

    PrivateDestination when only ``allow_private`` would allow it.
    """
    if allow_private:
        return
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        raise DestinationRefused(f"{host}: {address!r} is not an IP address") from None
    reason = refusal_reason(parsed)
    if reason is not None:
        shown = host if host == address else f"{host} ({address})"
        raise PrivateDestination(f"{shown} is {reason}; private destinations are disallowed")


def check_scheme(url: URL, allow_http: bool) -> None:
    """Raise ValueError unless ``url`` is an absolute http(s) URL allowed by ``allow_http``."""
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{url}: not an absolute http or https URL")
    if url.scheme == "http" and not allow_http:
        raise ValueError(f"{url}: insecure HTTP destinations are disallowed (use https)")


async def check_url(
    url: URL, *, allow_http: bool, allow_private: bool, timeout: float = 5.0, egress: Egress | None = None
) -> None:
    """Check a destination before any work starts: scheme, then every address it resolves to.

    The addresses are those ``egress`` pins the host and port to (``resolve``),
    else what DNS answers here (also when a proxy will connect: it resolves the
    name again itself). Raises ValueError (bad URL) or DestinationRefused
    (forbidden or unresolvable host). The connection itself is checked again
    (``egress_connector.GuardedResolver``, ``guarded_socket_factory``).
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
    pinned = egress.pinned(host, url.port or 0) if egress is not None else None
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

    The forms are those ``fetch_url`` reads (``ipv4_address``):
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


__all__ = [
    "DestinationRefused",
    "PrivateDestination",
    "canonical_url",
    "check_address",
    "check_scheme",
    "check_url",
    "domain_refusal",
    "ipv4_address",
    "literal_address",
    "match_domain",
    "normal_host",
    "refusal_reason",
]
