"""Real network parts for the egress tests: a throwaway CA made with ``openssl``, and a forward proxy.

``make_ca`` writes a CA (key + self-signed certificate) and a server
certificate for ``api.test`` (and 127.0.0.1) signed by it, at test time.
``ForwardProxy`` is a small HTTP forward proxy on asyncio streams, on a
loopback port: ``CONNECT host:port`` tunnels (what HTTPS through a proxy is)
and absolute-form ``GET http://host:port/path`` requests (plain HTTP through a
proxy), with optional Basic credentials, resolving names from its own table
(its "DNS"). It records every request it is asked, so a test can see the
CONNECT a client really sent. Written here rather than taken from a package
(proxy.py, mitmproxy): it is ~100 lines, starts in-process in milliseconds and
needs nothing from the network.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

NAME = "api.test"


@dataclass(frozen=True)
class ThrowawayCA:
    ca_cert: Path  # the CA's certificate: what ca_file points to
    server_cert: Path  # for api.test and 127.0.0.1, signed by the CA
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        return context


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_ca(folder: Path) -> ThrowawayCA:
    """A new CA and a server certificate it signed, in ``folder``; skips the test without openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    ca_key, ca_cert = folder / "ca.key", folder / "ca.pem"
    key, request, cert = folder / "server.key", folder / "server.csr", folder / "server.pem"
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req",
        "-x509",
        *curve,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_cert),
        "-days",
        "1",
        "-subj",
        "/CN=reactr-wasm throwaway test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    _openssl("req", "-new", *curve, "-keyout", str(key), "-out", str(request), "-subj", f"/CN={NAME}")
    extensions = folder / "server.ext"
    extensions.write_text(
        f"subjectAltName=DNS:{NAME},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(request),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "1",
        "-extfile",
        str(extensions),
    )
    return ThrowawayCA(ca_cert, cert, key)


@dataclass
class Asked:
    """One request the proxy received."""

    method: str
    target: str  # "api.test:443" for CONNECT, the absolute URL otherwise
    credentials: str | None  # the decoded user:password of Proxy-Authorization


@dataclass
class ForwardProxy:
    """A forward proxy on 127.0.0.1; ``hosts`` is its own DNS (other names are dialled as given).

    With ``credentials`` ("user:password") set, a request without them gets 407.
    """

    hosts: dict[str, str] = field(default_factory=dict)
    credentials: str | None = None
    asked: list[Asked] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        auth = f"{self.credentials}@" if self.credentials else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    async def start(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, target, version = request_line.split(" ")
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines if ":" in line]
        auth = next((value for name, value in headers if name.lower() == "proxy-authorization"), None)
        credentials = base64.b64decode(auth.split(" ", 1)[1]).decode() if auth else None
        self.asked.append(Asked(method, target, credentials))
        if self.credentials is not None and credentials != self.credentials:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = await asyncio.open_connection(self.hosts.get(host, host), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:  # absolute-form: forward as origin-form to the host the URL names
            url = urlsplit(target)
            upstream = await asyncio.open_connection(self.hosts.get(url.hostname or "", url.hostname), url.port or 80)
            kept = [f"{name}: {value}" for name, value in headers if not name.lower().startswith("proxy-")]
            path = url.path + (f"?{url.query}" if url.query else "")
            upstream[1].write("\r\n".join([f"{method} {path} {version}", *kept, "", ""]).encode("latin-1"))
        await _pipe_both(reader, writer, *upstream)


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    try:
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
    finally:
        upstream_writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    with contextlib.suppress(OSError):
        sink.write_eof()
