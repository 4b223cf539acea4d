"""The rules of the HTTP capability: what Reactr's rule filter decided, as data and pure functions.

Shared by ``http.py`` (fetch_url) and ``graphql.py``: the ``HttpRules`` a
runnable is granted, Reactr's domain pattern matcher, the ``::Name:Value``
header encoding of ``fetch_url`` URLs, and the byte-exact denial texts a guest
receives (§4.2, §9 of the ABI notes). ``ipv4_address`` (how a host such as
``127.1`` is read) is shared with the webhook callbacks' URL check.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from reactr_wasm.errors import HostCallError

# fetch_url's method argument (HEAD numbering, §2.4).
METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")

DENIED = "failed to requestIsAllowed: "
INSECURE_HTTP = "requests to insecure HTTP endpoints is disallowed"
IP_ADDRESSES = "requests to IP addresses are disallowed"
PRIVATE_RANGES = "requests to private IP address ranges are disallowed"
DOMAIN = "requests to this domain are disallowed"
PORT = "requests to this port are disallowed"

HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True)
class HttpRules:
    """Where guest HTTP requests may go and how much they may cost.

    Domain patterns follow Reactr's matcher (``*`` is one label; the
    pattern's leftmost label repeats for extra labels of the domain).
    """

    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    allow_ips: bool = True
    allow_private: bool = False
    allow_http: bool = True
    allowed_ports: tuple[int, ...] = ()
    blocked_ports: tuple[int, ...] = ()
    timeout_seconds: float = 10.0
    max_response_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5


def match_domain(pattern: str, domain: str) -> bool:
    """Reactr's domain pattern match (§4.2); never raises, whatever the labels."""
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


def canonical_header(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey``: ``content-type`` -> ``Content-Type``; invalid names unchanged."""
    if not HEADER_NAME.fullmatch(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def parse_fetch_url(url_with_headers: str) -> tuple[str, list[tuple[str, str]]]:
    """Split ``url::Name:Value::...`` (§2.5) into the URL and canonical headers.

    Raises HostCallError when a header part does not split into exactly two
    pieces on ``:`` (``fetch_url`` then returns ``-2``).
    """
    url, *parts = url_with_headers.split("::")
    headers: list[tuple[str, str]] = []
    for part in parts:
        pieces = part.split(":")
        if len(pieces) != 2:
            raise HostCallError(f"fetch_url: malformed header {part!r} (want Name:Value)")
        headers.append((canonical_header(pieces[0]), pieces[1]))
    return url, headers


def normal_host(host: str) -> str:
    host = host.lower().removesuffix(".")
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
