"""Requests HTTP itself cannot parse get the API's JSON error with X-Request-Id, as every answer does.

aiohttp refuses them in its protocol layer, before any route or ``Server.guard``
runs; found by the schemathesis run of ``test_openapi_fuzz.py`` (a generated
``Transfer-Encoding`` header next to ``Content-Length``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from reactr_wasm import Reactr
from reactr_wasm.server.run import serve
from tests.test_server_api import wasm
from tests.test_server_shutdown import config_for, free_port, wait_listening


@pytest.fixture
async def port(reactr: Reactr) -> AsyncIterator[int]:
    """``serve()`` (the runner ``reactr-wasm serve`` uses) on a free loopback port."""
    wasm(reactr, "echo")
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(reactr, config_for(port), shutdown_event=stop, handle_signals=False))
    await wait_listening(port)
    yield port
    stop.set()
    await asyncio.wait_for(server, 10)


async def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of the answer to raw ``request`` bytes; the server closes after it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


UNPARSABLE = {
    "framing headers in conflict": (
        b"POST /do/echo?then=true HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: IKcSwWc!#9wB\r\n\r\nhello"
    ),
    "request line over 8190 bytes": b"GET /then/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header over 8190 bytes": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    "header line without a colon": b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", UNPARSABLE.values(), ids=UNPARSABLE.keys())
async def test_an_unparsable_request_gets_a_json_error_with_a_request_id(port: int, request_bytes: bytes) -> None:
    status, headers, body = await exchange(port, request_bytes)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]  # and the server closed the connection: exchange() read to its end
    error = json.loads(body)
    assert error["code"] == 400 and error["message"], error
    assert "X-Reactr-Error".lower() not in headers  # the server refused it, not the job API


async def test_the_next_connection_is_served_as_usual(port: int) -> None:
    await exchange(port, UNPARSABLE["framing headers in conflict"])
    status, headers, body = await exchange(
        port, b"POST /do/echo?then=true HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\njoe"
    )
    assert (status, body, headers["content-type"]) == (200, b"hello joe", "application/octet-stream")
