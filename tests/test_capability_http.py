"""The HTTP and GraphQL capabilities against a real aiohttp server on a loopback port."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import threading
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from reactr_wasm.capabilities.graphql import GraphQLClient
from reactr_wasm.capabilities.http import (
    BackgroundLoop,
    CapabilityError,
    HttpClient,
    HttpRules,
    Resolved,
    parse_fetch_url,
)
from reactr_wasm.capabilities.netrules import match_domain
from reactr_wasm.compose import build_backends, capabilities_for
from reactr_wasm.config import parse_config
from reactr_wasm.errors import HostCallError

LOCAL = HttpRules(allow_private=True, allow_http=True, timeout_seconds=5)
GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE = range(7)


@dataclass
class Server:
    port: int
    seen: list[web.Request] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path_qs,
            "headers": [[name, value] for name, value in request.headers.items()],
            "body": body.decode(),
            "client_port": request.transport.get_extra_info("peername")[1] if request.transport else None,
        }
    )


async def _set_cookie(request: web.Request) -> web.Response:
    response = web.Response(text="set")
    response.set_cookie("session", "guest-a")
    return response


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="nope")


async def _big(request: web.Request) -> web.StreamResponse:
    size = int(request.match_info["size"])
    if request.query.get("chunked"):
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(size // 100):
            await response.write(b"x" * 100)
        await response.write_eof()
        return response
    return web.Response(body=b"x" * size)


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(3)
    return web.Response(text="late")


async def _trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "1000"})
    await response.prepare(request)
    for _ in range(60):  # one byte every 50 ms: each read is quick, the whole is not
        await response.write(b"x")
        await asyncio.sleep(0.05)
    return response


async def _redirect(request: web.Request) -> web.Response:
    code = int(request.query.get("code", "302"))
    return web.Response(status=code, headers={"Location": request.query["to"]})


async def _loop(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/loop"})


GRAPHQL_ANSWERS: dict[str, tuple[int, str]] = {
    "repo": (200, '{"data":{"repository":{"nameWithOwner":"suborbital/reactr","name":"reactr"}},"extensions":{}}'),
    "html": (200, '{"data":{"a":"<b>&</b>","n":1}}'),
    "fails": (200, '{"data":null,"errors":[{"message":"no such field","path":["repository","issues",0]}]}'),
    "nopath": (200, '{"errors":[{"message":"syntax error"}]}'),
    "broken": (502, "<html>bad gateway</html>"),
    "notjson": (200, "hello"),
}


async def _graphql(request: web.Request) -> web.Response:
    payload = await request.json()
    status, text = GRAPHQL_ANSWERS[payload["query"]]
    return web.Response(status=status, text=text, content_type="application/json")


def _app(server: Server) -> web.Application:
    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        server.seen.append(request)
        return await handler(request)

    app = web.Application(middlewares=[record])
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/big/{size}", _big)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/trickle", _trickle)
    app.router.add_route("*", "/redirect", _redirect)
    app.router.add_get("/loop", _loop)
    app.router.add_post("/graphql", _graphql)
    app.router.add_get("/set-cookie", _set_cookie)
    return app


def _serve(ssl_context: ssl.SSLContext | None = None) -> Iterator[Server]:
    """Run the test app on 127.0.0.1 in a thread with its own event loop (the client under test blocks)."""
    server = Server(port=0)
    runner = web.AppRunner(_app(server), shutdown_timeout=0.5)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        server.port = runner.addresses[0][1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from _serve()


def _echoed(raw: bytes) -> dict[str, object]:
    decoded = json.loads(raw)
    assert isinstance(decoded, dict)
    return decoded


def _header_values(echo: dict[str, object], name: str) -> list[str]:
    headers = echo["headers"]
    assert isinstance(headers, list)
    return [value for key, value in headers if key.lower() == name.lower()]


NewClient = Callable[..., HttpClient]


@pytest.fixture(scope="module")
def shared_loop() -> Iterator[BackgroundLoop]:
    with BackgroundLoop("test-http") as loop:
        yield loop


@pytest.fixture
def new(shared_loop: BackgroundLoop) -> Iterator[NewClient]:
    """``new(rules, auth, resolver=..., tls=...)``: an HttpClient on the module's loop, closed after the test."""
    made: list[HttpClient] = []

    def make(*args: Any, **kwargs: Any) -> HttpClient:
        made.append(HttpClient(*args, loop=shared_loop, **kwargs))
        return made[-1]

    yield make
    for client in made:
        client.close()


def _deny(text: str) -> str:
    return f"failed to requestIsAllowed: {text}"


class StubResolver:
    """A DNS stand-in: fixed answers (optionally slow), and a count of lookups."""

    def __init__(self, answers: dict[str, Resolved], delay: float = 0.0) -> None:
        self.answers = answers
        self.delay = delay
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> Resolved:
        self.calls.append(host)
        time.sleep(self.delay)
        if host not in self.answers:
            raise OSError("no such host")
        return self.answers[host]


# --- the rule matcher and the header encoding ---------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "domain", "matches"),
    [
        ("*.hello.com", "goodbye.hello.com", True),
        ("*.hello.com", "a.goodbye.hello.com", True),
        ("*.hello.com", "hello.com", False),
        ("tomorrow.*", "tomorrow.eu", True),
        ("tomorrow.*", "tomorrow.co.uk", False),
        ("100.*.12.13", "100.11.12.13", True),
        ("100.*.12.13", "101.11.12.13", False),
        ("example.com", "example.com", True),
        ("example.com", "foo.example.com", False),
        ("foo.example.com", "example.com", False),
        (".example.com", "example.com", False),
        ("example.com", ".example.com", False),
        ("*.example.com", ".example.com", True),
        ("", "example.com", False),
        ("", "", True),
        ("a..b", "a..b", True),
    ],
)
def test_domain_patterns_match_as_reactr_does(pattern: str, domain: str, matches: bool) -> None:
    assert match_domain(pattern, domain) is matches


def test_header_encoding_of_every_sdk_parses_the_same() -> None:
    rust_style = "https://h.example/p::content-type:application/json::X-TEST:1"
    as_style = "https://h.example/p::Content-Type:application/json::x-test:1"
    expected = ("https://h.example/p", [("Content-Type", "application/json"), ("X-Test", "1")])
    assert parse_fetch_url(rust_style) == expected
    assert parse_fetch_url(as_style) == expected
    assert parse_fetch_url("https://h.example/") == ("https://h.example/", [])


@pytest.mark.parametrize("bad", ["http://h/::Time:12:00", "http://h/::NoValue", "http://h/::"])
def test_malformed_header_parts_are_refused_as_host_call_errors(bad: str) -> None:
    with pytest.raises(HostCallError):
        parse_fetch_url(bad)


# --- requests that go through --------------------------------------------------------------------


def test_get_reaches_the_server_with_its_path_query_and_host(server: Server, new: NewClient) -> None:
    echo = _echoed(new(LOCAL).fetch(GET, server.url("/echo?a=1&b=two"), b""))
    assert echo["method"] == "GET"
    assert echo["path"] == "/echo?a=1&b=two"
    assert _header_values(echo, "Host") == [f"127.0.0.1:{server.port}"]
    assert _header_values(echo, "Content-Length") == []
    assert _header_values(echo, "User-Agent") == ["reactr-wasm"]
    assert _header_values(echo, "Accept") == _header_values(echo, "Accept-Encoding") == []


@pytest.mark.parametrize(
    ("number", "name"), [(GET, "GET"), (OPTIONS, "OPTIONS"), (POST, "POST"), (PUT, "PUT"), (PATCH, "PATCH")]
)
def test_method_numbers_map_to_http_methods(server: Server, number: int, name: str, new: NewClient) -> None:
    echo = _echoed(new(LOCAL).fetch(number, server.url("/echo"), b"payload"))
    assert echo["method"] == name
    assert echo["body"] == "payload"


def test_head_and_delete(server: Server, new: NewClient) -> None:
    client = new(LOCAL)
    assert client.fetch(HEAD, server.url("/echo"), b"") == b""
    assert server.seen[-1].method == "HEAD"
    assert _echoed(client.fetch(DELETE, server.url("/echo"), b""))["method"] == "DELETE"


def test_unknown_method_number_is_a_host_call_error(server: Server, new: NewClient) -> None:
    with pytest.raises(HostCallError):
        new(LOCAL).fetch(7, server.url("/echo"), b"")


def test_encoded_headers_are_sent_canonical_and_repeatable(server: Server, new: NewClient) -> None:
    echo = _echoed(new(LOCAL).fetch(GET, server.url("/echo") + "::x-test:1::X-Test:2::accept:text/plain", b""))
    assert _header_values(echo, "X-Test") == ["1", "2"]
    assert _header_values(echo, "Accept") == ["text/plain"]


def test_body_content_type_defaults_to_octet_stream_unless_given(server: Server, new: NewClient) -> None:
    client = new(LOCAL)
    plain = _echoed(client.fetch(POST, server.url("/echo"), b"\x01\x02"))
    assert _header_values(plain, "Content-Type") == ["application/octet-stream"]
    typed = _echoed(client.fetch(POST, server.url("/echo") + "::Content-Type:application/json", b"{}"))
    assert _header_values(typed, "Content-Type") == ["application/json"]
    empty = _echoed(client.fetch(POST, server.url("/echo"), b""))
    assert _header_values(empty, "Content-Type") == []
    assert _header_values(empty, "Content-Length") == ["0"]


def test_guest_framing_headers_are_replaced_not_duplicated(server: Server, new: NewClient) -> None:
    encoded = server.url("/echo") + "::Content-Length:999::Host:evil.test::Transfer-Encoding:chunked"
    echo = _echoed(new(LOCAL).fetch(POST, encoded, b"ab"))
    assert echo["body"] == "ab"
    assert _header_values(echo, "Content-Length") == ["2"]
    assert _header_values(echo, "Host") == [f"127.0.0.1:{server.port}"]
    assert _header_values(echo, "Transfer-Encoding") == []


def test_auth_header_is_added_once_and_looked_up_without_port(server: Server, new: NewClient) -> None:
    client = new(LOCAL, {"127.0.0.1:1": "bearer from-table"})
    echo = _echoed(client.fetch(GET, server.url("/echo") + "::Authorization:bearer from-guest", b""))
    assert _header_values(echo, "Authorization") == ["bearer from-table"]
    other = new(LOCAL, {"api.example.com": "bearer t"})
    assert _header_values(_echoed(other.fetch(GET, server.url("/echo"), b"")), "Authorization") == []


def test_non_2xx_is_status_colon_body(server: Server, new: NewClient) -> None:
    with pytest.raises(CapabilityError) as caught:
        new(LOCAL).fetch(GET, server.url("/status/404"), b"")
    assert str(caught.value) == "404: nope"


def test_transport_error_names_method_and_url(new: NewClient) -> None:
    with pytest.raises(CapabilityError) as caught:
        new(LOCAL).fetch(GET, "http://127.0.0.1:1/x", b"")
    assert str(caught.value).startswith('Get "http://127.0.0.1:1/x": ')
    assert "refused" in str(caught.value)


# --- limits --------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?chunked=1"])
def test_response_size_is_capped(server: Server, query: str, new: NewClient) -> None:
    client = new(HttpRules(allow_private=True, max_response_bytes=1000))
    assert client.fetch(GET, server.url(f"/big/1000{query}"), b"") == b"x" * 1000
    with pytest.raises(CapabilityError) as caught:
        client.fetch(GET, server.url(f"/big/5000{query}"), b"")
    assert str(caught.value) == "response body exceeds 1000 bytes"


@pytest.mark.parametrize("path", ["/slow", "/trickle"])
def test_the_timeout_bounds_the_whole_request(server: Server, path: str, new: NewClient) -> None:
    client = new(HttpRules(allow_private=True, timeout_seconds=0.4))
    started = time.monotonic()
    with pytest.raises(CapabilityError) as caught:
        client.fetch(GET, server.url(path), b"")
    assert time.monotonic() - started < 1.5
    assert str(caught.value) == f'Get "{server.url(path)}": timeout after 0.4s (Client.Timeout exceeded)'


def test_a_call_timeout_shortens_the_rules_timeout(server: Server, new: NewClient) -> None:
    started = time.monotonic()
    with pytest.raises(CapabilityError) as caught:
        new(LOCAL).fetch(GET, server.url("/slow"), b"", timeout=0.2)
    assert time.monotonic() - started < 1.0
    assert str(caught.value).endswith("timeout after 0.2s (Client.Timeout exceeded)")


def test_the_timeout_bounds_a_slow_dns_lookup(server: Server, new: NewClient) -> None:
    resolver = StubResolver({"slow.test": Resolved(("127.0.0.1",))}, delay=2.0)
    url = server.url("/echo", host="slow.test")
    started = time.monotonic()
    with pytest.raises(CapabilityError) as caught:
        new(HttpRules(allow_private=True, timeout_seconds=0.3), resolver=resolver).fetch(GET, url, b"")
    assert time.monotonic() - started < 1.0
    assert str(caught.value) == f'Get "{url}": timeout after 0.3s (Client.Timeout exceeded)'


# --- redirects -----------------------------------------------------------------------------------


def test_redirects_are_followed_and_see_other_turns_post_into_get(server: Server, new: NewClient) -> None:
    client = new(LOCAL)
    echo = _echoed(client.fetch(POST, server.url("/redirect?code=303&to=/echo%3Fhop%3D1"), b"data"))
    assert (echo["method"], echo["path"], echo["body"]) == ("GET", "/echo?hop=1", "")
    kept = _echoed(client.fetch(POST, server.url("/redirect?code=307&to=/echo"), b"data"))
    assert (kept["method"], kept["body"]) == ("POST", "data")


def test_redirect_loops_stop(server: Server, new: NewClient) -> None:
    with pytest.raises(CapabilityError) as caught:
        new(LOCAL).fetch(GET, server.url("/loop"), b"")
    assert str(caught.value) == f'Get "{server.url("/loop")}": stopped after 5 redirects'


def test_redirect_to_a_disallowed_host_is_refused(server: Server, new: NewClient) -> None:
    resolver = StubResolver({"elsewhere.test": Resolved(("127.0.0.1",))})
    rules = HttpRules(allowed_domains=("127.0.0.1",), allow_private=True)
    client = new(rules, resolver=resolver)
    target = server.url("/echo", host="elsewhere.test")
    with pytest.raises(CapabilityError) as caught:
        client.fetch(GET, server.url(f"/redirect?to={target}"), b"")
    assert str(caught.value) == _deny("requests to this domain are disallowed")
    assert [request.path for request in server.seen[-1:]] == ["/redirect"]


def test_redirect_to_a_private_address_is_refused_when_private_is_not_allowed(server: Server, new: NewClient) -> None:
    resolver = StubResolver({"public.test": Resolved(("127.0.0.1",))})
    # The first hop is allowed only because the test can't reach a public server; the redirect is judged afresh.
    client = new(HttpRules(allow_private=True), resolver=resolver)
    assert _echoed(client.fetch(GET, server.url("/redirect?to=/echo", host="public.test"), b""))["path"] == "/echo"
    strict = new(HttpRules(), resolver=resolver)
    with pytest.raises(CapabilityError) as caught:
        strict.fetch(GET, server.url("/redirect?to=/echo", host="public.test"), b"")
    assert str(caught.value) == _deny("requests to private IP address ranges are disallowed")


# --- rules ---------------------------------------------------------------------------------------


def test_domain_allow_and_block_lists(server: Server, new: NewClient) -> None:
    resolver = StubResolver({name: Resolved(("127.0.0.1",)) for name in ("api.good.test", "good.test", "x.bad.test")})

    def fetch(rules: HttpRules, host: str) -> bytes:
        return new(rules, resolver=resolver).fetch(GET, server.url("/echo", host=host), b"")

    allow = HttpRules(allowed_domains=("*.good.test",), allow_private=True)
    assert _echoed(fetch(allow, "api.good.test"))["method"] == "GET"
    block = HttpRules(blocked_domains=("*.bad.test",), allow_private=True)
    assert _echoed(fetch(block, "good.test"))["method"] == "GET"
    for rules, host in [(allow, "good.test"), (allow, "x.bad.test"), (block, "x.bad.test"), (block, "X.Bad.Test.")]:
        with pytest.raises(CapabilityError) as caught:
            fetch(rules, host)
        assert str(caught.value) == _deny("requests to this domain are disallowed")


def test_blocked_cname_target_is_refused(server: Server, new: NewClient) -> None:
    resolver = StubResolver({"alias.test": Resolved(("127.0.0.1",), canonical_name="evil.test.")})
    client = new(HttpRules(blocked_domains=("evil.test",), allow_private=True), resolver=resolver)
    with pytest.raises(CapabilityError) as caught:
        client.fetch(GET, server.url("/echo", host="alias.test"), b"")
    assert str(caught.value) == _deny("requests to this domain are disallowed")


@pytest.mark.parametrize(
    ("rules", "url", "reason"),
    [
        (HttpRules(allow_http=False, allow_private=True), "http://127.0.0.1:{port}/echo", "insecure HTTP"),
        (HttpRules(), "http://127.0.0.1:{port}/echo", "private"),
        (HttpRules(), "http://localhost:{port}/echo", "private"),
        (HttpRules(), "http://[0:0:0:0:0:0:0:1]:{port}/echo", "private"),  # "::" would start a header
        (HttpRules(), "http://169.254.169.254/latest/meta-data", "private"),
        (HttpRules(), "http://[0:0:0:0:0:ffff:7f00:1]:{port}/echo", "private"),
        (HttpRules(allow_ips=False, allow_private=True), "http://127.0.0.1:{port}/echo", "IP addresses"),
        (HttpRules(allow_ips=False, allow_private=True), "http://2130706433:{port}/echo", "IP addresses"),
        (HttpRules(), "http://2130706433:{port}/echo", "private"),
        (HttpRules(), "http://127.1:{port}/echo", "private"),
        (HttpRules(allowed_ports=(8080,), allow_private=True), "http://127.0.0.1:{port}/echo", "port"),
        (HttpRules(blocked_ports=(443,), allow_private=True), "https://127.0.0.1/echo", "port"),
    ],
)
def test_rule_denials_are_byte_exact_and_send_nothing(
    server: Server, rules: HttpRules, url: str, reason: str, new: NewClient
) -> None:
    texts = {
        "insecure HTTP": "requests to insecure HTTP endpoints is disallowed",
        "private": "requests to private IP address ranges are disallowed",
        "IP addresses": "requests to IP addresses are disallowed",
        "port": "requests to this port are disallowed",
    }
    before = len(server.seen)
    with pytest.raises(CapabilityError) as caught:
        new(rules).fetch(GET, url.format(port=server.port), b"")
    assert str(caught.value) == _deny(texts[reason])
    assert len(server.seen) == before


def test_numeric_ip_forms_connect_to_the_address_they_name(server: Server, new: NewClient) -> None:
    echo = _echoed(new(LOCAL, resolver=StubResolver({})).fetch(GET, server.url("/echo", host="2130706433"), b""))
    assert _header_values(echo, "Host") == [f"2130706433:{server.port}"]


def test_allowed_port_passes(server: Server, new: NewClient) -> None:
    rules = HttpRules(allowed_ports=(server.port,), allow_private=True)
    assert _echoed(new(rules).fetch(GET, server.url("/echo"), b""))["method"] == "GET"


def test_leading_empty_label_does_not_crash(new: NewClient) -> None:
    client = new(HttpRules(allowed_domains=("example.com",)), resolver=StubResolver({}))
    with pytest.raises(CapabilityError) as caught:
        client.fetch(GET, "http://.example.com/", b"")
    assert str(caught.value) == _deny("requests to this domain are disallowed")


# --- DNS rebinding: the address checked is the address connected to -----------------------------


def test_name_resolving_to_loopback_is_refused_unless_private_is_allowed(server: Server, new: NewClient) -> None:
    resolver = StubResolver({"rebind.test": Resolved(("127.0.0.1",))})
    with pytest.raises(CapabilityError) as caught:
        new(HttpRules(), resolver=resolver).fetch(GET, server.url("/echo", host="rebind.test"), b"")
    assert str(caught.value) == _deny("requests to private IP address ranges are disallowed")


def test_any_private_address_among_several_refuses(server: Server, new: NewClient) -> None:
    resolver = StubResolver({"mixed.test": Resolved(("93.184.215.14", "127.0.0.1"))})
    with pytest.raises(CapabilityError) as caught:
        new(HttpRules(), resolver=resolver).fetch(GET, server.url("/echo", host="mixed.test"), b"")
    assert str(caught.value) == _deny("requests to private IP address ranges are disallowed")


def test_connection_goes_to_the_single_checked_resolution(server: Server, new: NewClient) -> None:
    # "app.test" exists only in the stub: success proves the socket went to the resolved, checked address,
    # and exactly one lookup happened (no second resolution a rebinding server could answer differently).
    resolver = StubResolver({"app.test": Resolved(("127.0.0.1",))})
    client = new(LOCAL, {"app.test": "bearer t"}, resolver=resolver)
    echo = _echoed(client.fetch(GET, server.url("/echo", host="app.test"), b""))
    assert _header_values(echo, "Host") == [f"app.test:{server.port}"]
    assert _header_values(echo, "Authorization") == ["bearer t"]
    assert resolver.calls == ["app.test"]


# --- keep-alive, cookies and ownership ----------------------------------------------------------


def test_connections_are_kept_alive_between_calls(server: Server, new: NewClient) -> None:
    client = new(LOCAL)
    ports = {_echoed(client.fetch(GET, server.url("/echo"), b""))["client_port"] for _ in range(3)}
    assert len(ports) == 1


def test_a_pooled_connection_serves_only_the_address_just_checked(server: Server, new: NewClient) -> None:
    # Nothing listens on 127.0.0.2: once DNS moves there, the connection pooled for 127.0.0.1 must not answer.
    resolver = StubResolver({"moving.test": Resolved(("127.0.0.1",))})
    client = new(LOCAL, resolver=resolver)
    url = server.url("/echo", host="moving.test")
    first, second = (_echoed(client.fetch(GET, url, b""))["client_port"] for _ in range(2))
    assert first == second
    resolver.answers["moving.test"] = Resolved(("127.0.0.2",))
    with pytest.raises(CapabilityError) as caught:
        client.fetch(GET, url, b"")
    assert str(caught.value) == f'Get "{url}": connection refused'


def test_the_next_checked_address_is_tried_when_connecting_fails(server: Server, new: NewClient) -> None:
    resolver = StubResolver({"two.test": Resolved(("127.0.0.2", "127.0.0.1"))})  # nothing listens on .2
    echo = _echoed(new(LOCAL, resolver=resolver).fetch(GET, server.url("/echo", host="two.test"), b""))
    assert _header_values(echo, "Host") == [f"two.test:{server.port}"]
    assert resolver.calls == ["two.test"]


def test_cookies_are_not_kept_between_calls(server: Server, new: NewClient) -> None:
    client = new(LOCAL)
    assert client.fetch(GET, server.url("/set-cookie"), b"") == b"set"
    assert _header_values(_echoed(client.fetch(GET, server.url("/echo"), b"")), "Cookie") == []


def _loop_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "reactr-http")


def test_a_client_without_a_loop_owns_one_until_closed(server: Server) -> None:
    before = _loop_threads()
    with HttpClient(LOCAL) as client:
        assert _echoed(client.fetch(GET, server.url("/echo"), b""))["method"] == "GET"
        assert _loop_threads() == before + 1
    assert _loop_threads() == before
    with pytest.raises(CapabilityError) as caught:
        client.fetch(GET, server.url("/echo"), b"")
    assert str(caught.value) == f'Get "{server.url("/echo")}": http client is closed'


def test_clients_share_a_loop_and_close_independently(server: Server) -> None:
    with BackgroundLoop() as loop:
        one, two = HttpClient(LOCAL, loop=loop), HttpClient(LOCAL, loop=loop)
        assert _loop_threads() == 0  # started by the first call, not before
        for client in (one, two):
            assert _echoed(client.fetch(GET, server.url("/echo"), b""))["method"] == "GET"
        assert _loop_threads() == 1
        one.close()
        assert _echoed(two.fetch(GET, server.url("/echo"), b""))["method"] == "GET"
    # The loop went first: the client reports it, and its session was closed with the loop (no warning).
    with pytest.raises(CapabilityError) as caught:
        two.fetch(GET, server.url("/echo"), b"")
    assert str(caught.value).endswith(": http client is closed")
    two.close()
    assert _loop_threads() == 0


def test_backends_give_runnables_shared_clients_and_close_them(server: Server, tmp_path: Path) -> None:
    toml = f"""
[capabilities]
grant = ["http"]
[capabilities.http]
allow_private = true
[runnables.a.http]
allowed_ports = [{server.port}]
[runnables.b.http]
allowed_ports = [{server.port}]
[runnables.c.http]
timeout = 1
"""
    config = parse_config(tomllib.loads(toml), source="reactr.toml", base=tmp_path, env={})
    with build_backends(config) as backends:
        a, b, c, d = (capabilities_for(config, backends, name).http for name in ("a", "b", "c", "d"))
        assert a is not None and c is not None
        assert a is b and a is not c and d is backends.get("http").client(config.capabilities.http)
        assert _echoed(a.fetch(GET, server.url("/echo"), b""))["method"] == "GET"
        assert _echoed(c.fetch(GET, server.url("/echo"), b""))["method"] == "GET"
        assert _loop_threads() == 1  # one loop for the server's clients
    assert _loop_threads() == 0
    with pytest.raises(CapabilityError) as caught:
        a.fetch(GET, server.url("/echo"), b"")
    assert str(caught.value).endswith(": http client is closed")


# --- TLS to a pinned address ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=reactr.test"),
            *("-addext", "subjectAltName=DNS:reactr.test"),
        ],
        check=True,
        capture_output=True,
        timeout=20,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_server(tls_files: tuple[Path, Path]) -> Iterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    yield from _serve(context)


def test_tls_to_a_pinned_address_verifies_the_hostname(
    tls_server: Server, tls_files: tuple[Path, Path], new: NewClient
) -> None:
    trust = ssl.create_default_context(cafile=str(tls_files[0]))
    resolver = StubResolver({"reactr.test": Resolved(("127.0.0.1",)), "other.test": Resolved(("127.0.0.1",))})
    client = new(LOCAL, resolver=resolver, tls=trust)
    echo = _echoed(client.fetch(GET, f"https://reactr.test:{tls_server.port}/echo", b""))
    assert _header_values(echo, "Host") == [f"reactr.test:{tls_server.port}"]
    with pytest.raises(CapabilityError) as caught:
        client.fetch(GET, f"https://other.test:{tls_server.port}/echo", b"")
    assert "tls: Hostname mismatch" in str(caught.value)


# --- GraphQL -------------------------------------------------------------------------------------


@pytest.fixture
def graphql(new: NewClient) -> GraphQLClient:
    return GraphQLClient(new(LOCAL))


def test_graphql_data_is_reencoded_compact_and_sorted(server: Server, graphql: GraphQLClient) -> None:
    endpoint = server.url("/graphql")
    assert (
        graphql.query(endpoint, "repo")
        == b'{"data":{"repository":{"name":"reactr","nameWithOwner":"suborbital/reactr"}}}'
    )
    assert graphql.query(endpoint, "html") == b'{"data":{"a":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e","n":1}}'
    request = server.seen[-1]
    assert (request.method, request.content_type) == ("POST", "application/json")


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("fails", "graphQL error; path: repository.issues.0, message: no such field"),
        ("nopath", "graphQL error; path: , message: syntax error"),
        ("broken", "non-200 HTTP response code; <html>bad gateway</html>"),
    ],
)
def test_graphql_errors(server: Server, graphql: GraphQLClient, query: str, text: str) -> None:
    with pytest.raises(CapabilityError) as caught:
        graphql.query(server.url("/graphql"), query)
    assert str(caught.value) == text


def test_graphql_non_json_body(server: Server, graphql: GraphQLClient) -> None:
    with pytest.raises(CapabilityError) as caught:
        graphql.query(server.url("/graphql"), "notjson")
    assert str(caught.value).startswith("failed to Unmarshal response: ")


def test_graphql_obeys_the_rules(server: Server, new: NewClient) -> None:
    with pytest.raises(CapabilityError) as caught:
        GraphQLClient(new(HttpRules())).query(server.url("/graphql"), "repo")
    assert str(caught.value) == _deny("requests to private IP address ranges are disallowed")
