"""The wire half of the HTTP capability: one checked hop sent with aiohttp to the checked address.

``http.py`` decides (rules, DNS, redirects, auth); this module only sends one
request to a ``Target`` whose addresses already passed the rules, and reads
the answer under the size cap.

Pinning: the request URL names the checked IP address itself, never the
hostname, so aiohttp has nothing to resolve (its connector gets a resolver
that refuses every lookup, to make that an invariant rather than a hope). The
``Host`` header carries the hostname, and ``server_hostname`` makes TLS send
the hostname as SNI and verify the certificate against it.

Keep-alive pooling, and why it cannot bypass the rules: aiohttp pools
connections under ``(URL host, port, TLS, SSL context, ..., server_hostname)``.
Here the URL host is the checked address and ``server_hostname`` the
hostname, so a pooled connection is reused only by a hop whose own checks, just
made, produced that same address for that same hostname (and, for TLS, whose
certificate was verified for that name). A hostname that now resolves
elsewhere, or whose resolution now fails the rules, never reaches a connection
opened for an earlier answer: the rules refuse it before anything is sent, or
its new address keys a new connection. Each ``HttpClient`` has its own
session, so clients with different rules never share a pool. aiohttp releases
whose pool key lacks ``server_hostname`` (before 3.14) get no pooling at all.
The connector's ``socket_factory`` re-checks every address it dials.

Through a proxy (``Target.proxy``) the URL names the hostname instead - the
proxy resolves it (``CONNECT host:port`` for https, an absolute-form request
for http) - and the pool key includes the proxy. The connector comes from
``egress_connector`` (shared with the callbacks): it trusts the proxy's own
address and still refuses to resolve anything else.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict
from yarl import URL

from reactr_wasm.capabilities.egress import DIRECT, Egress
from reactr_wasm.capabilities.egress_connector import egress_connector
from reactr_wasm.capabilities.errors import CapabilityError

# Headers the transport owns (Go's reqWriteExcludeHeader): a guest's copy is dropped, never sent twice.
_FRAMING = frozenset({"Host", "Content-Length", "Transfer-Encoding", "Trailer"})
# aiohttp would add these on its own; Go's client sends none of them (and we never decompress).
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
# Everything printable in ASCII stays as written; the rest (non-ASCII) is sent UTF-8 percent-encoded, as Go does.
_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))
_POOL_KEYS_TLS_NAME = "server_hostname" in ConnectionKey._fields


@dataclass(frozen=True)
class Target:
    """One checked hop: where to connect (any of ``addresses``) and what to ask for.

    Through ``proxy``, ``addresses`` holds the one name (or literal address)
    the proxy is asked to connect to.
    """

    tls: bool
    hostname: str  # normalised; the Host header, TLS SNI and certificate name
    port: int
    addresses: tuple[str, ...]
    path: str  # percent-encoded, never empty
    query: str  # percent-encoded, may be empty
    proxy: str | None = None  # http://[user:password@]host:port carrying this hop, or None: direct

    @property
    def host_header(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return host if self.port == (443 if self.tls else 80) else f"{host}:{self.port}"

    def url(self, address: str) -> URL:
        host = f"[{address}]" if ":" in address else address
        return URL.build(
            scheme="https" if self.tls else "http",
            host=host,
            port=self.port,
            path=self.path,
            query_string=self.query,
            encoded=True,
        )


def escape_target(text: str) -> str:
    """A path or query as sent: ValueError for control characters and spaces, non-ASCII percent-encoded."""
    for char in text:
        if char <= " " or char == "\x7f":
            raise ValueError(f"URL can't contain control characters. {text!r} (found at least {char!r})")
    return text if text.isascii() else quote(text, safe=_SAFE)


class Transport:
    """One aiohttp session, and its keep-alive pool, for one ``HttpClient``; use on its event loop only."""

    def __init__(
        self, *, allow_private: bool, tls: ssl.SSLContext, max_response_bytes: int, egress: Egress = DIRECT
    ) -> None:
        self._allow_private = allow_private
        self._egress = egress
        self._tls = tls
        self._limit = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    @property
    def opened(self) -> bool:
        return self._session is not None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created on the loop: no await between the check and the assignment
            connector = egress_connector(
                self._egress,
                allow_private=self._allow_private,
                destinations=None,  # URLs name checked addresses (or, through a proxy, the proxy resolves)
                tls=self._tls,
                force_close=not _POOL_KEYS_TLS_NAME,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # the caller's one deadline covers everything
                trust_env=False,  # proxies come from the config (Egress), decided per hop
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # guests share the client; they must not share cookies
                skip_auto_headers=_NO_AUTO_HEADERS,
            )
        return self._session

    async def exchange(
        self, operation: str, method: str, target: Target, headers: Sequence[tuple[str, str]], body: bytes
    ) -> tuple[int, str | None, bytes]:
        """Send one request: ``(status, Location of a redirect or None, body)``.

        Tries the target's addresses in order while connecting fails. Raises
        CapabilityError with the guest-visible text (prefixed ``operation``
        for transport errors; ``response body exceeds N bytes``).
        """
        sent: CIMultiDict[str] = CIMultiDict([("Host", target.host_header)])
        for name, value in headers:
            if name not in _FRAMING:
                sent.add(name, value)
        sent.setdefault("User-Agent", "reactr-wasm")
        # Content-Length only with a body, or for methods that carry one (as Go and http.client do).
        data = body if body or method in ("POST", "PUT", "PATCH") else None
        failure: BaseException = OSError(f"no address for {target.hostname}")
        for address in target.addresses:
            try:
                return await self._send(method, target, address, sent, data)
            except aiohttp.ClientSSLError as error:
                raise CapabilityError(f"{operation}: {describe(error)}") from None
            except aiohttp.ClientConnectorError as error:  # nothing was sent: the next address may answer
                failure = error
            except (aiohttp.ClientError, OSError, ValueError) as error:
                raise CapabilityError(f"{operation}: {describe(error)}") from None
        raise CapabilityError(f"{operation}: {describe(failure)}")

    async def _send(
        self, method: str, target: Target, address: str, headers: CIMultiDict[str], data: bytes | None
    ) -> tuple[int, str | None, bytes]:
        async with self._client().request(
            method,
            target.url(address),
            headers=headers,
            data=data,
            allow_redirects=False,
            ssl=self._tls if target.tls else True,
            server_hostname=target.hostname,
            proxy=target.proxy,
        ) as response:
            location = response.headers.get("Location")
            if response.status in REDIRECTS and location is not None:
                return response.status, location, b""
            return response.status, None, await self._read(method, response)

    async def _read(self, method: str, response: aiohttp.ClientResponse) -> bytes:
        limit = self._limit
        too_big = CapabilityError(f"response body exceeds {limit} bytes")
        length = response.content_length
        if length is not None and length > limit and method != "HEAD" and response.status not in (204, 304):
            raise too_big
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = await response.content.read(min(_CHUNK, limit + 1 - total))
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > limit:
                raise too_big  # leaving the response unread closes its connection
            chunks.append(chunk)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def describe(error: BaseException) -> str:
    """A transport error as the guest reads it (close to Go's texts: ``connection refused``, ``tls: ...``)."""
    if isinstance(error, aiohttp.ClientHttpProxyError):  # the proxy refused the CONNECT (the URL is not shown)
        return f"proxyconnect: {error.status} {error.message}"
    if isinstance(error, aiohttp.ClientProxyConnectionError):
        return f"proxyconnect tcp: {describe(error.os_error)}"
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        error = error.certificate_error
    elif isinstance(error, aiohttp.ClientConnectorError):
        error = error.os_error
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"tls: {error.verify_message}"
    if isinstance(error, OSError) and error.errno and not isinstance(error, ssl.SSLError):
        return os.strerror(error.errno).lower()
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


__all__ = ["REDIRECTS", "Target", "Transport", "describe", "escape_target"]
