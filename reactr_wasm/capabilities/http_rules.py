"""The rules of the HTTP capability: what Reactr's rule filter decided, as data and pure functions.

Shared by ``http.py`` (fetch_url) and ``graphql.py``: the ``HttpRules`` a
runnable is granted, the ``::Name:Value`` header encoding of ``fetch_url``
URLs, and the byte-exact denial texts a guest receives (§4.2, §9 of the ABI
notes). How hosts, domains and addresses are judged is ``netrules.py``,
shared with the webhook callbacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reactr_wasm.capabilities.errors import RuleDenied
from reactr_wasm.errors import HostCallError

# fetch_url's method argument (HEAD numbering, §2.4).
METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")

DENIED = "failed to requestIsAllowed: "
INSECURE_HTTP = "requests to insecure HTTP endpoints is disallowed"
IP_ADDRESSES = "requests to IP addresses are disallowed"
PRIVATE_RANGES = "requests to private IP address ranges are disallowed"
DOMAIN = "requests to this domain are disallowed"
PORT = "requests to this port are disallowed"

# What in the HTTP rules would allow a request each refusal names (hints.rule_hint says where it goes).
SETTINGS = {
    INSECURE_HTTP: "allow_http = true",
    IP_ADDRESSES: "allow_ips = true",
    PRIVATE_RANGES: "allow_private = true",
    DOMAIN: "the host in allowed_domains (and not in blocked_domains)",
    PORT: "the port in allowed_ports (and not in blocked_ports)",
}

HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True)
class HttpRules:
    """Where guest HTTP requests may go and how much they may cost.

    Domain patterns follow Reactr's matcher (``netrules.match_domain``).
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


def denied(reason: str) -> RuleDenied:
    """Reactr's refusal for ``reason`` (one of the texts above), naming the setting that would allow it."""
    return RuleDenied(DENIED + reason, SETTINGS[reason])


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
