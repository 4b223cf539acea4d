"""The HTTP capability behind ``fetch_url``: a blocking client that obeys the HTTP rules.

Every hop (the first request and each redirect) is checked the same way, in
Reactr's order (§4.2 of the ABI notes): scheme, ports, IP literals, private
destinations, then the domain allow/block lists. The hostname is resolved
ONCE per hop; every address is checked, and the connection is opened to one
of exactly those addresses - never by name again - so a rebinding DNS server
cannot answer the check and the connection differently.

Why the standard library's ``http.client``: it is synchronous (host functions
run on a worker thread inside a guest call), adds no dependency, and lets a
connection subclass decide where the socket goes: ``connect()`` dials the
pre-checked IP while ``self.host`` stays the URL's hostname, so the ``Host``
header, the TLS SNI name and certificate verification
(``SSLContext.wrap_socket(server_hostname=hostname)`` with ``check_hostname``)
all use the hostname. urllib3 can do the same (``server_hostname``/
``assert_hostname``) but brings a connection pool and proxy logic we must
not use; aiohttp is async. Environment proxies are deliberately ignored (a
proxy would connect to a name we never checked).

Weak spots of the Go original fixed here: one total deadline per fetch
(including redirects, enforced by a watchdog that shuts the socket, so a
trickling server cannot outlast it), a bounded response body, redirects
re-checked (and capped), the auth-table ``Authorization`` replaces the
guest's instead of being added twice, auth lookup by hostname without port,
CNAME/canonical name taken from the same lookup as the addresses, blocked
domains also checked when an allowlist exists (deny wins), and malformed
hostnames never crash the matcher.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

from reactr_wasm.capabilities.errors import CapabilityError
from reactr_wasm.capabilities.http_rules import (
    DENIED,
    DOMAIN,
    HEADER_NAME,
    INSECURE_HTTP,
    IP_ADDRESSES,
    METHODS,
    PORT,
    PRIVATE_RANGES,
    HttpRules,
    canonical_header,
    literal_address,
    match_domain,
    normal_host,
    parse_fetch_url,
)
from reactr_wasm.errors import HostCallError
from reactr_wasm.server.netrules import DestinationRefused, check_address

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SENSITIVE = frozenset({"Authorization", "Www-Authenticate", "Cookie", "Cookie2"})
# Headers the transport owns (Go's reqWriteExcludeHeader): a guest's copy is dropped, never sent twice.
_FRAMING = frozenset({"Host", "Content-Length", "Transfer-Encoding", "Trailer"})
_CHUNK = 64 * 1024




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


@dataclass(frozen=True)
class _Target:
    """One checked hop: where to connect and what to send."""

    tls: bool
    hostname: str
    port: int
    addresses: tuple[str, ...]
    path: str


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._expires = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self._expires - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Dials one of the already checked addresses; ``self.host`` (Host header) stays the hostname."""

    def __init__(self, target: _Target, timeout: float, allow_private: bool) -> None:
        super().__init__(target.hostname, target.port, timeout=timeout)
        self._addresses = target.addresses
        self._allow_private = allow_private

    def connect(self) -> None:
        self.sock = _dial(self.host, self._addresses, self.port, self.timeout, self._allow_private)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As ``_PinnedHTTPConnection``; TLS SNI and certificate checks use the hostname, not the IP."""

    def __init__(self, target: _Target, timeout: float, allow_private: bool, context: ssl.SSLContext) -> None:
        super().__init__(target.hostname, target.port, timeout=timeout, context=context)
        self._addresses = target.addresses
        self._allow_private = allow_private
        self._tls = context

    def connect(self) -> None:
        raw = _dial(self.host, self._addresses, self.port, self.timeout, self._allow_private)
        try:
            self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


def _dial(host: str, addresses: Sequence[str], port: int, timeout: float | None, allow_private: bool) -> socket.socket:
    last: OSError = OSError(f"no address for {host}")
    for address in addresses:
        # The invariant that matters: the address checked is the address dialled.
        check_address(host, address, allow_private)
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as error:
            sock.close()
            last = error
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last


class _Watchdog:
    """Shuts the connection's socket when the deadline passes, waking any blocked read."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self._connection = connection
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()


class HttpClient:
    """Blocking HTTP for guests, under ``rules``, adding ``Authorization`` from ``auth``.

    ``auth`` maps a hostname (a port in the key is ignored) to the full header
    value, e.g. ``{"api.github.com": "bearer abc"}``. ``resolver`` and
    ``tls`` exist for tests and special deployments (system DNS, default CA
    store otherwise). Holds no per-request state: one client can serve many
    worker threads.
    """

    def __init__(
        self,
        rules: HttpRules,
        auth: Mapping[str, str] | None = None,
        *,
        resolver: Resolver = system_resolver,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.rules = rules
        self._auth = {normal_host(urlsplit(f"//{key}").hostname or key): value for key, value in (auth or {}).items()}
        self._resolver = resolver
        self._tls = tls if tls is not None else ssl.create_default_context()

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
        transport errors, timeouts and oversized responses.
        """
        _validate_headers(headers)
        seconds = self.rules.timeout_seconds if timeout is None else min(timeout, self.rules.timeout_seconds)
        deadline = _Deadline(seconds)
        first_host = ""
        sent = list(headers)
        for hop in range(self.rules.max_redirects + 1):
            target = self._check(method, url)
            first_host = first_host or target.hostname
            if target.hostname != first_host:
                sent = [(name, value) for name, value in sent if name not in _SENSITIVE]
            status, location, data = self._exchange(method, url, target, self._with_auth(target, sent), body, deadline)
            if status not in _REDIRECTS or location is None:
                return HttpResponse(status, data)
            if hop == self.rules.max_redirects:
                break
            if status in (301, 302, 303) and method not in ("GET", "HEAD"):
                method, body = "GET", b""
                sent = [(name, value) for name, value in sent if name not in ("Content-Type", "Content-Length")]
            url = urljoin(url, location)
        raise CapabilityError(f"{_operation(method, url)}: stopped after {self.rules.max_redirects} redirects")

    def _with_auth(self, target: _Target, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        value = self._auth.get(target.hostname, "")
        if not value:
            return headers
        return [(name, v) for name, v in headers if name != "Authorization"] + [("Authorization", value)]

    def _check(self, method: str, url: str) -> _Target:
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
            raise CapabilityError(DENIED + INSECURE_HTTP)
        port = _port(parts, rules, method, url)
        literal = literal_address(host)
        if literal is not None and not rules.allow_ips:
            raise CapabilityError(DENIED + IP_ADDRESSES)
        if not rules.allow_private and "localhost" in host:
            raise CapabilityError(DENIED + PRIVATE_RANGES)
        resolved, failure = self._resolve(host, port, literal)
        self._check_domain(host, normal_host(resolved.canonical_name))
        if not resolved.addresses:
            reason = failure or "no such host"
            raise CapabilityError(f"{_operation(method, url)}: dial tcp: lookup {host}: {reason}")
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        return _Target(parts.scheme == "https", host, port, resolved.addresses, path)

    def _resolve(self, host: str, port: int, literal: str | None) -> tuple[Resolved, str]:
        """Resolve once and check every address: (resolution, failure text if DNS failed)."""
        if literal is not None:
            resolved, failure = Resolved((literal,)), ""
        else:
            try:
                resolved, failure = self._resolver(host, port), ""
            except (OSError, UnicodeError) as error:
                resolved, failure = Resolved(()), str(error)
        for address in resolved.addresses:
            try:
                check_address(host, address, self.rules.allow_private)
            except DestinationRefused:
                raise CapabilityError(DENIED + PRIVATE_RANGES) from None
        return resolved, failure

    def _check_domain(self, host: str, canonical: str) -> None:
        rules = self.rules
        names = [host] if canonical in ("", host) else [host, canonical]
        if rules.allowed_domains and not any(match_domain(normal_host(p), host) for p in rules.allowed_domains):
            raise CapabilityError(DENIED + DOMAIN)
        for name in names:
            if any(match_domain(normal_host(p), name) for p in rules.blocked_domains):
                raise CapabilityError(DENIED + DOMAIN)

    def _exchange(
        self,
        method: str,
        url: str,
        target: _Target,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        deadline: _Deadline,
    ) -> tuple[int, str | None, bytes]:
        """One request/response on a fresh pinned connection: (status, Location, body)."""
        operation = _operation(method, url)
        try:
            timeout = deadline.remaining()
            connection: http.client.HTTPConnection
            if target.tls:
                connection = _PinnedHTTPSConnection(target, timeout, self.rules.allow_private, self._tls)
            else:
                connection = _PinnedHTTPConnection(target, timeout, self.rules.allow_private)
        except TimeoutError:
            raise CapabilityError(f"{operation}: {_timeout_text(deadline)}") from None
        try:
            with _Watchdog(connection, timeout):
                return self._send(connection, method, target, headers, body, deadline)
        except CapabilityError:
            raise
        except (TimeoutError, OSError, http.client.HTTPException, ValueError) as error:
            expired = _expired(deadline)
            raise CapabilityError(f"{operation}: {_timeout_text(deadline) if expired else _describe(error)}") from None
        finally:
            connection.close()

    def _send(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        target: _Target,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        deadline: _Deadline,
    ) -> tuple[int, str | None, bytes]:
        connection.putrequest(method, target.path, skip_accept_encoding=True)
        names = {name for name, _ in headers}
        for name, value in headers:
            if name not in _FRAMING:
                connection.putheader(name, value)
        if "User-Agent" not in names:
            connection.putheader("User-Agent", "reactr-wasm")
        if body or method in ("POST", "PUT", "PATCH"):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        _set_timeout(connection, deadline)
        response = connection.getresponse()
        if response.status in _REDIRECTS and response.getheader("Location") is not None:
            return response.status, response.getheader("Location"), b""
        return response.status, None, self._read(response, connection, deadline)

    def _read(
        self, response: http.client.HTTPResponse, connection: http.client.HTTPConnection, deadline: _Deadline
    ) -> bytes:
        limit = self.rules.max_response_bytes
        too_big = CapabilityError(f"response body exceeds {limit} bytes")
        if response.length is not None and response.length > limit:
            raise too_big
        chunks: list[bytes] = []
        total = 0
        while True:
            _set_timeout(connection, deadline)
            chunk = response.read(min(_CHUNK, limit + 1 - total))
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > limit:
                raise too_big
            chunks.append(chunk)


def _port(parts: SplitResult, rules: HttpRules, method: str, url: str) -> int:
    try:
        explicit = parts.port
    except ValueError as error:
        if rules.allowed_ports or rules.blocked_ports:
            raise CapabilityError(DENIED + PORT) from None
        raise CapabilityError(f"{_operation(method, url)}: {error}") from None
    port = explicit if explicit is not None else (443 if parts.scheme == "https" else 80)
    listed = bool(rules.allowed_ports or rules.blocked_ports)
    if listed and (port in rules.blocked_ports or port not in {80, 443, *rules.allowed_ports}):
        raise CapabilityError(DENIED + PORT)
    return port


def _validate_headers(headers: Sequence[tuple[str, str]]) -> None:
    for name, value in headers:
        if not HEADER_NAME.fullmatch(name):
            raise CapabilityError(f'net/http: invalid header field name "{name}"')
        if any(char in value for char in "\r\n\0"):
            raise CapabilityError(f'net/http: invalid header field value for "{name}"')


def _set_timeout(connection: http.client.HTTPConnection, deadline: _Deadline) -> None:
    if connection.sock is not None:
        connection.sock.settimeout(deadline.remaining())


def _expired(deadline: _Deadline) -> bool:
    try:
        deadline.remaining()
    except TimeoutError:
        return True
    return False


def _timeout_text(deadline: _Deadline) -> str:
    return f"timeout after {deadline.seconds:g}s (Client.Timeout exceeded)"


def _describe(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"tls: {error.verify_message}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


__all__ = [
    "METHODS",
    "CapabilityError",
    "HttpClient",
    "HttpResponse",
    "HttpRules",
    "Resolved",
    "Resolver",
    "canonical_header",
    "match_domain",
    "parse_fetch_url",
    "system_resolver",
]
