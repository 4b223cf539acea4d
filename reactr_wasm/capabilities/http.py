"""The HTTP capability behind ``fetch_url``: a blocking client that obeys the HTTP rules.

Every hop (the first request and each redirect) is checked the same way, in
Reactr's order (§4.2 of the ABI notes): scheme, ports, IP literals, private
destinations, then the domain allow/block lists. The hostname is resolved
ONCE per hop; every address is checked, and the connection is opened to one
of exactly those addresses - never by name again - so a rebinding DNS server
cannot answer the check and the connection differently.

Why aiohttp (``http_transport.py``): it is a well-kept async client that our
server already runs on (no new dependency), pools keep-alive connections, and
lets us pin the destination the same way the webhook callbacks do
(``egress_connector.guarded_socket_factory``). The URL it is given names the checked
address while the ``Host`` header, TLS SNI and certificate verification use
the hostname; the pool is keyed by that address and name, so a pooled
connection is only reused by a hop that just checked the same address (the
full argument is in ``http_transport.py``). Nothing is decompressed.

Egress (``egress.py``): a ``resolve`` entry pins a ``host:port`` to its
addresses in place of DNS (they still pass the address rules, and the hop goes
direct). Through a proxy the domain, port and scheme rules apply to the
destination as always, and so does the private-address rule, to the
addresses the name resolves to HERE (and to a literal IP); then the proxy is
asked for the hostname and resolves it itself. That leaves a gap we cannot
close from this side: if the proxy's DNS answers differently (rebinding,
split-horizon), it may connect to an address we never saw - the proxy's own
rules are the defence there. With ``allow_private`` there is nothing to
check, so no lookup is made and the proxy alone resolves (networks where only
the proxy has DNS); without it a name that does not resolve here is refused.
Environment proxy variables are read only when the config asks
(``proxy_from_env``), at start.

Host functions run synchronously on worker threads, so each call hands one
coroutine - rules, DNS (the blocking resolver runs on the loop's executor),
every hop - to a ``BackgroundLoop`` thread and waits for it. One
``asyncio.timeout`` around that coroutine is the total deadline: whatever is
pending when it expires (a lookup, a connect, a trickling body) is cancelled,
and a connection cancelled mid-response is closed, never pooled.

Weak spots of the Go original fixed here: one total deadline per fetch
(including redirects), a bounded response body, redirects re-checked (and
capped), the auth-table ``Authorization`` replaces the guest's instead of
being added twice, auth lookup by hostname without port, CNAME/canonical name
taken from the same lookup as the addresses, blocked domains also checked
when an allowlist exists (deny wins), and malformed hostnames never crash the
matcher.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

from reactr_wasm.capabilities.egress import DIRECT, Egress
from reactr_wasm.capabilities.errors import CapabilityError
from reactr_wasm.capabilities.http_loop import BackgroundLoop, LoopClosed
from reactr_wasm.capabilities.http_rules import (
    DOMAIN,
    HEADER_NAME,
    INSECURE_HTTP,
    IP_ADDRESSES,
    METHODS,
    PORT,
    PRIVATE_RANGES,
    HttpRules,
    canonical_header,
    denied,
    parse_fetch_url,
)
from reactr_wasm.capabilities.http_transport import REDIRECTS, Target, Transport, escape_target
from reactr_wasm.capabilities.netrules import (
    DestinationRefused,
    check_address,
    domain_refusal,
    literal_address,
    normal_host,
)
from reactr_wasm.errors import HostCallError

_SENSITIVE = frozenset({"Authorization", "Www-Authenticate", "Cookie", "Cookie2"})
# The loop thread enforces the deadline; this margin only guards against a wedged loop.
_WEDGED_LOOP_MARGIN = 5.0


@dataclass(frozen=True)
class Resolved:
    """What one DNS lookup said: the addresses and the canonical (CNAME target) name."""

    addresses: tuple[str, ...]
    canonical_name: str = ""


Resolver = Callable[[str, int], Resolved]


def system_resolver(host: str, port: int) -> Resolved:
    """Resolve with the operating system (``getaddrinfo``); raises OSError."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME)
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    return Resolved(addresses, infos[0][3] if infos else "")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes


def _operation(method: str, url: str) -> str:
    return f'{method[:1]}{method[1:].lower()} "{url}"'


class HttpClient:
    """Blocking HTTP for guests, under ``rules``, adding ``Authorization`` from ``auth``.

    ``auth`` maps a hostname (a port in the key is ignored) to the full header
    value, e.g. ``{"api.github.com": "bearer abc"}``. ``egress`` is the
    proxy, CA bundle and ``resolve`` pins (default: direct, system CAs).
    ``resolver`` and ``tls`` exist for tests and special deployments (system
    DNS, ``egress``'s CAs otherwise). ``loop`` is the event loop thread the
    transport runs on, shared by a server's clients and closed by its owner;
    without one the client starts and owns its own. Any number of worker
    threads may use one client; its keep-alive connections are reused across
    calls. ``close()`` (or ``with``) releases the connections and an owned loop.
    """

    def __init__(
        self,
        rules: HttpRules,
        auth: Mapping[str, str] | None = None,
        *,
        resolver: Resolver = system_resolver,
        tls: ssl.SSLContext | None = None,
        loop: BackgroundLoop | None = None,
        egress: Egress = DIRECT,
    ) -> None:
        self.rules = rules
        self._auth = {normal_host(urlsplit(f"//{key}").hostname or key): value for key, value in (auth or {}).items()}
        self._resolver = resolver
        self._egress = egress
        self._owns_loop = loop is None
        self._loop = loop if loop is not None else BackgroundLoop()
        self._transport = Transport(
            allow_private=rules.allow_private,
            tls=tls if tls is not None else egress.tls_context(),
            max_response_bytes=rules.max_response_bytes,
            egress=egress,
        )
        self._loop.closing(self._transport.close)
        self._closed = False

    def fetch(self, method: int, url_with_headers: str, body: bytes, *, timeout: float | None = None) -> bytes:
        """``fetch_url``: the response body of a 2xx answer.

        ``timeout`` shortens the rules' timeout (e.g. to what is left of the job's time).

        Raises HostCallError for an unknown method number or a malformed
        header part (guest gets ``-2``), CapabilityError with the guest-visible
        text otherwise (rule denial, transport error, ``<status>: <body>``).
        """
        if not 0 <= method < len(METHODS):
            raise HostCallError(f"fetch_url: unknown method {method}")
        url, headers = parse_fetch_url(url_with_headers)
        if body and not any(name == "Content-Type" for name, _ in headers):
            headers.append(("Content-Type", "application/octet-stream"))
        response = self.request(METHODS[method], url, headers, body, timeout=timeout)
        if response.status > 299:
            raise CapabilityError(f"{response.status}: {response.body.decode('utf-8', 'replace')}")
        return response.body

    def request(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        *,
        timeout: float | None = None,
    ) -> HttpResponse:
        """Send one request (following checked redirects); any status is returned.

        The whole exchange, redirects included, ends within the rules' timeout
        (or ``timeout`` if smaller). Raises CapabilityError for rule denials,
        transport errors, timeouts, oversized responses and a closed client.
        """
        _validate_headers(headers)
        seconds = self.rules.timeout_seconds if timeout is None else min(timeout, self.rules.timeout_seconds)
        if self._closed:
            raise CapabilityError(f"{_operation(method, url)}: http client is closed")
        exchange = self._request(method, url, list(headers), body, seconds)
        try:
            return self._loop.run(exchange, max(seconds, 0) + _WEDGED_LOOP_MARGIN)
        except LoopClosed:
            raise CapabilityError(f"{_operation(method, url)}: http client is closed") from None
        except TimeoutError:
            raise CapabilityError(f"{_operation(method, url)}: {_timeout_text(seconds)}") from None

    async def _request(
        self, method: str, url: str, sent: list[tuple[str, str]], body: bytes, seconds: float
    ) -> HttpResponse:
        first_host = ""
        try:
            async with asyncio.timeout(seconds):
                for hop in range(self.rules.max_redirects + 1):
                    target = await self._check(method, url)
                    first_host = first_host or target.hostname
                    if target.hostname != first_host:
                        sent = [(name, value) for name, value in sent if name not in _SENSITIVE]
                    headers = self._with_auth(target, sent)
                    operation = _operation(method, url)
                    status, location, data = await self._transport.exchange(operation, method, target, headers, body)
                    if status not in REDIRECTS or location is None:
                        return HttpResponse(status, data)
                    if hop == self.rules.max_redirects:
                        break
                    if status in (301, 302, 303) and method not in ("GET", "HEAD"):
                        method, body = "GET", b""
                        sent = [(name, value) for name, value in sent if name not in ("Content-Type", "Content-Length")]
                    url = urljoin(url, location)
        except TimeoutError:  # the deadline: asyncio.timeout turns its cancellation into this
            raise CapabilityError(f"{_operation(method, url)}: {_timeout_text(seconds)}") from None
        raise CapabilityError(f"{_operation(method, url)}: stopped after {self.rules.max_redirects} redirects")

    def _with_auth(self, target: Target, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        value = self._auth.get(target.hostname, "")
        if not value:
            return headers
        return [(name, v) for name, v in headers if name != "Authorization"] + [("Authorization", value)]

    async def _check(self, method: str, url: str) -> Target:
        """Apply the rules to one hop and resolve it once; raises CapabilityError."""
        rules = self.rules
        try:
            parts = urlsplit(url)
        except ValueError as error:
            raise CapabilityError(f"{_operation(method, url)}: {error}") from None
        if parts.scheme not in ("http", "https"):
            raise CapabilityError(f'{_operation(method, url)}: unsupported protocol scheme "{parts.scheme}"')
        host = normal_host(parts.hostname or "")
        if not host:
            raise CapabilityError(f"{_operation(method, url)}: http: no Host in request URL")
        if parts.scheme == "http" and not rules.allow_http:
            raise denied(INSECURE_HTTP)
        port = _port(parts, rules, method, url)
        literal = literal_address(host)
        if literal is not None and not rules.allow_ips:
            raise denied(IP_ADDRESSES)
        if not rules.allow_private and "localhost" in host:
            raise denied(PRIVATE_RANGES)
        proxy = self._egress.proxy_for(parts.scheme, host, port)
        lookup = proxy is None or not rules.allow_private  # else nothing to check: the proxy resolves
        resolved, failure = await self._resolve(host, port, literal, lookup=lookup)
        if domain_refusal(host, rules.allowed_domains, rules.blocked_domains, aliases=[resolved.canonical_name]):
            raise denied(DOMAIN)
        if not resolved.addresses and lookup:
            reason = failure or "no such host"
            raise CapabilityError(f"{_operation(method, url)}: dial tcp: lookup {host}: {reason}")
        try:
            path, query = escape_target(parts.path or "/"), escape_target(parts.query)
        except ValueError as error:
            raise CapabilityError(f"{_operation(method, url)}: {error}") from None
        # Through a proxy the connection names the host (the proxy resolves it), or the literal address.
        addresses = resolved.addresses if proxy is None else (literal or host,)
        return Target(parts.scheme == "https", host, port, addresses, path, query, proxy)

    async def _resolve(self, host: str, port: int, literal: str | None, *, lookup: bool) -> tuple[Resolved, str]:
        """Resolve once and check every address: (resolution, failure text if DNS failed).

        A literal address, then a ``resolve`` pin, answer without DNS; without
        ``lookup`` (a proxy resolves and no address rule applies) nothing is looked up.
        """
        pinned = self._egress.pinned(host, port)
        if literal is not None:
            resolved, failure = Resolved((literal,)), ""
        elif pinned is not None:
            resolved, failure = Resolved(pinned), ""
        elif not lookup:
            return Resolved(()), ""
        else:
            try:
                # The resolver blocks; on the loop's executor the deadline still bounds the wait.
                resolved = await asyncio.get_running_loop().run_in_executor(None, self._resolver, host, port)
                failure = ""
            except (OSError, UnicodeError) as error:
                resolved, failure = Resolved(()), str(error)
        for address in resolved.addresses:
            try:
                check_address(host, address, self.rules.allow_private)
            except DestinationRefused:
                raise denied(PRIVATE_RANGES) from None
        return resolved, failure

    def close(self) -> None:
        """Close the pooled connections, and the loop if this client owns it; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._loop.discard(self._transport.close)
        try:
            if self._transport.opened:
                self._loop.run(self._transport.close(), _WEDGED_LOOP_MARGIN)
        except LoopClosed:
            pass  # the owner closed the loop first; its wind-down closed our session
        finally:
            if self._owns_loop:
                self._loop.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _port(parts: SplitResult, rules: HttpRules, method: str, url: str) -> int:
    try:
        explicit = parts.port
    except ValueError as error:
        if rules.allowed_ports or rules.blocked_ports:
            raise denied(PORT) from None
        raise CapabilityError(f"{_operation(method, url)}: {error}") from None
    port = explicit if explicit is not None else (443 if parts.scheme == "https" else 80)
    listed = bool(rules.allowed_ports or rules.blocked_ports)
    if listed and (port in rules.blocked_ports or port not in {80, 443, *rules.allowed_ports}):
        raise denied(PORT)
    return port


def _validate_headers(headers: Sequence[tuple[str, str]]) -> None:
    for name, value in headers:
        if not HEADER_NAME.fullmatch(name):
            raise CapabilityError(f'net/http: invalid header field name "{name}"')
        if any(char in value for char in "\r\n\0"):
            raise CapabilityError(f'net/http: invalid header field value for "{name}"')


def _timeout_text(seconds: float) -> str:
    return f"timeout after {seconds:g}s (Client.Timeout exceeded)"


__all__ = [
    "METHODS",
    "BackgroundLoop",
    "CapabilityError",
    "HttpClient",
    "HttpResponse",
    "HttpRules",
    "Resolved",
    "Resolver",
    "canonical_header",
    "parse_fetch_url",
    "system_resolver",
]
