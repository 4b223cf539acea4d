"""Callback delivery: bodies, headers, retries, signatures, and the destination rules."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from yarl import URL

from reactr_wasm import CoordinatedResponse, ExecutionError, Job, JobTimeout, Result, RunErr
from reactr_wasm.backends.records import JobRecord
from reactr_wasm.capabilities.egress_connector import GuardedResolver, guarded_socket_factory
from reactr_wasm.capabilities.netrules import DestinationRefused, check_address, ipv4_address, refusal_reason
from reactr_wasm.config import CallbackConfig
from reactr_wasm.scheduler.values import record_of
from reactr_wasm.server.callbacks import (
    CallbackRefused,
    Callbacks,
    delivery_body,
    sign,
    verify_signature,
)

# --- the destination rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("fd00:ec2::254", "private"),  # AWS metadata over IPv6
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "private"),  # reserved; Python files it under private too
        ("192.0.2.1", "private"),  # documentation range
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.1.2.3", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 around 169.254.169.254
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    found = refusal_reason(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_allow_private_lets_everything_through() -> None:
    check_address("localhost", "127.0.0.1", allow_private=True)
    with pytest.raises(DestinationRefused, match=r"localhost \(127.0.0.1\) is a loopback address"):
        check_address("localhost", "127.0.0.1", allow_private=False)


class FixedResolver(AbstractResolver):
    """Answers every name with the given addresses: a DNS server that rebinds at will."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0)
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_the_guarded_resolver_keeps_only_allowed_addresses() -> None:
    mixed = GuardedResolver(FixedResolver("10.0.0.7", "93.184.215.14", "127.0.0.1"), allow_private=False)
    assert [entry["host"] for entry in await mixed.resolve("example.test", 443)] == ["93.184.215.14"]

    private = GuardedResolver(FixedResolver("169.254.169.254"), allow_private=False)
    with pytest.raises(DestinationRefused, match="link-local"):
        await private.resolve("metadata.test", 80)

    allowed = GuardedResolver(FixedResolver("127.0.0.1"), allow_private=True)
    assert [entry["host"] for entry in await allowed.resolve("localhost", 80)] == ["127.0.0.1"]


def test_the_socket_factory_refuses_the_address_it_is_asked_to_connect_to() -> None:
    factory = guarded_socket_factory(allow_private=False)
    with pytest.raises(DestinationRefused, match="loopback"):
        factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)))
    with factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 80))) as sock:
        assert sock.family == socket.AF_INET


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "not an absolute http or https URL"),
        ("/relative/path", "not an absolute http or https URL"),
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://[::1]:9/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/hook", "private"),
        ("http://localhost:9/hook", "loopback"),  # a name: checked on what it resolves to
        ("http://no-such-host.invalid/hook", "cannot resolve"),
    ],
)
async def test_check_refuses_bad_urls_up_front(url: str, reason: str) -> None:
    callbacks = Callbacks(CallbackConfig(allow_private=False, timeout=2))
    with pytest.raises(CallbackRefused, match=reason):
        await callbacks.check(url)


async def test_check_refuses_plain_http_when_asked_to() -> None:
    callbacks = Callbacks(CallbackConfig(allow_http=False, allow_private=True))
    with pytest.raises(CallbackRefused, match="insecure HTTP"):
        await callbacks.check("http://127.0.0.1:9/hook")
    assert await callbacks.check("https://127.0.0.1:9/hook") == URL("https://127.0.0.1:9/hook")


async def test_check_applies_the_domain_rules_of_fetch() -> None:
    config = CallbackConfig(
        allow_private=True, allowed_domains=["*.example.com", "localhost"], blocked_domains=["bad.example.com"]
    )
    callbacks = Callbacks(config)
    assert await callbacks.check("http://localhost:9/hook") == URL("http://localhost:9/hook")
    with pytest.raises(CallbackRefused, match=r"bad\.example\.com: the domain is blocked"):
        await callbacks.check("https://bad.example.com/hook")
    with pytest.raises(CallbackRefused, match=r"other\.org: the domain is not in callbacks\.allowed_domains"):
        await callbacks.check("https://other.org/hook")


# IPv4 hosts in the legacy forms URL parsers and inet_aton read (decimal, octal, hex, fewer
# than four parts, a trailing dot): fetch_url reads them as their address, so do callbacks.
LEGACY_LOOPBACK = ["2130706433", "127.1", "0x7f.1", "0177.0.0.1", "0x7F000001", "017700000001", "127.0.0.1."]


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("134744072", "8.8.8.8"),
        ("8.526344", "8.8.8.8"),
        ("0x8.0x8.0x8.0x8", "8.8.8.8"),
        ("0X8.010.8.8", "8.8.8.8"),
        ("0x", "0.0.0.0"),
        ("4294967295", "255.255.255.255"),
        *[(host, "127.0.0.1") for host in LEGACY_LOOPBACK],
        ("example.com", None),
        ("1.2.3.example", None),
        ("1.0x7g", None),  # "0x7g" is no number: a name
        ("", None),
    ],
)
def test_ipv4_hosts_are_read_in_every_legacy_form(host: str, address: str | None) -> None:
    parsed = ipv4_address(host)
    assert (str(parsed) if parsed is not None else None) == address


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("1.2.3.4.5", "more than four parts"),
        ("256.0.0.1", "a part is out of range"),
        ("1.256.0.1", "a part is out of range"),
        ("999.1", "a part is out of range"),
        ("4294967296", "a part is out of range"),
        ("0x100000000", "a part is out of range"),
        ("1..2", "a part is not a number"),
        ("08.1", "a part is not a number"),  # a leading 0 means octal
        ("1.2.3.09", "a part is not a number"),
        ("a.1", "a part is not a number"),
        ("0x7g.1", "a part is not a number"),
    ],
)
def test_a_host_ending_in_a_number_must_be_an_ipv4_address(host: str, why: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(host)}: ends in a number but is not an IPv4 address: {why}$"):
        ipv4_address(host)


@pytest.mark.parametrize("host", LEGACY_LOOPBACK)
async def test_check_reads_a_legacy_ipv4_host_as_its_address(host: str) -> None:
    lenient = Callbacks(CallbackConfig(allow_private=True))
    assert await lenient.check(f"http://{host}:9/hook?x=1") == URL("http://127.0.0.1:9/hook?x=1")
    strict = Callbacks(CallbackConfig(allow_private=False))
    with pytest.raises(CallbackRefused, match=r"\(127\.0\.0\.1\) is a loopback address"):
        await strict.check(f"http://{host}:9/hook")


async def test_check_reads_the_issues_public_number_as_its_address_and_applies_the_domain_rules() -> None:
    callbacks = Callbacks(CallbackConfig(allow_private=False))
    assert await callbacks.check("http://134744072/hook") == URL("http://8.8.8.8/hook")
    blocking = Callbacks(CallbackConfig(allow_private=False, blocked_domains=["8.8.8.8"]))
    with pytest.raises(CallbackRefused, match=r"8\.8\.8\.8: the domain is blocked"):
        await blocking.check("http://134744072/hook")


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.0.0.1", "999.1", "0x100000000", "1..2"])
async def test_check_refuses_a_numeric_host_that_is_no_address(host: str) -> None:
    callbacks = Callbacks(CallbackConfig(allow_private=True))  # refused before the address rules
    with pytest.raises(CallbackRefused, match=f"^callback URL refused: {re.escape(host)}: ends in a number but"):
        await callbacks.check(f"http://{host}/hook")


# --- bodies and signatures ------------------------------------------------------------------


def done(value: object = None, error: BaseException | None = None) -> JobRecord:
    """The record a server keeps of a job that ended with ``value`` or ``error``."""
    result = Result(Job("job", b""))
    if error is not None:
        result.set_error(error)
    else:
        result.set_result(value)
    return record_of(result)


@pytest.mark.parametrize(
    ("record", "body", "content_type", "outcome"),
    [
        (done(b"\x00raw"), b"\x00raw", "application/octet-stream", "success"),
        (done("text"), b"text", "text/plain; charset=utf-8", "success"),
        (done({"a": [1, 2]}), b'{"a":[1,2]}', "application/json", "success"),
        (done(None), b"", "application/octet-stream", "success"),
        (
            done(CoordinatedResponse(b"{}", {"Content-Type": "application/json", "X-A": "b"})),
            b"{}",
            "application/json",
            "success",
        ),
        (
            done(error=RunErr(400, "job failed")),
            b'job_err_result: {"code":400,"message":"job failed"}',
            "application/octet-stream",
            "error",
        ),
        (done(error=JobTimeout()), b"job_err_result: job timeout", "application/octet-stream", "error"),
        (
            done(error=ExecutionError("wasm execution error: failed to wasmFunc: unreachable")),
            b"job_err_result: wasm execution error: failed to wasmFunc: unreachable",
            "application/octet-stream",
            "error",
        ),
        (done({1j}), None, "application/octet-stream", "error"),
    ],
)
def test_delivery_bodies_follow_reactr(record: JobRecord, body: bytes | None, content_type: str, outcome: str) -> None:
    got_body, got_type, got_outcome = delivery_body(record)
    if body is None:
        assert got_body.startswith(b"job_err_result failed to Marshal result: ")
    else:
        assert got_body == body
    assert (got_type, got_outcome) == (content_type, outcome)


def test_a_signature_verifies_and_anything_altered_does_not() -> None:
    body, now = b'{"hello":"world"}', 1_700_000_000
    header = sign("s3cret", body, now)
    assert header.startswith(f"t={now},v1=") and len(header.split("v1=")[1]) == 64

    assert verify_signature("s3cret", header, body, now=now + 10)
    assert not verify_signature("s3cret", header, body + b" ", now=now)
    assert not verify_signature("other", header, body, now=now)
    assert not verify_signature("s3cret", header, body, tolerance=300, now=now + 301)  # a replay
    assert not verify_signature("s3cret", header.replace(f"t={now}", f"t={now + 1}"), body, now=now)
    assert not verify_signature("s3cret", "garbage", body, now=now)
    assert not verify_signature("s3cret", "t=x,v1=00", body, now=now)


# --- delivery to a real receiver ------------------------------------------------------------


@dataclass
class Receiver:
    """A webhook receiver on loopback; answers ``statuses`` in turn, then 200."""

    url: str
    statuses: list[int]
    calls: list[tuple[dict[str, str], bytes, float]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(url="", statuses=[])

    async def hook(request: web.Request) -> web.Response:
        state.calls.append((dict(request.headers), await request.read(), time.monotonic()))
        state.arrived.set()
        return web.Response(status=state.statuses.pop(0) if state.statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with TestServer(app, host="127.0.0.1") as server:
        state.url = str(server.make_url("/hook"))
        yield state


def fast_retries(**overrides: object) -> CallbackConfig:
    options: dict[str, object] = {"allow_private": True, "attempts": 3, "backoff": 0.05, "backoff_max": 0.1}
    options.update(overrides)
    return CallbackConfig(**options)  # type: ignore[arg-type]


async def deliver(config: CallbackConfig, url: str, record: JobRecord, **kwargs: object) -> bool:
    callbacks = Callbacks(config, **kwargs)  # type: ignore[arg-type]
    try:
        return await asyncio.wait_for(callbacks.deliver(URL(url), record), 10)
    finally:
        await callbacks.close()


async def test_a_result_is_posted_with_its_headers(receiver: Receiver) -> None:
    record = done(b"hello world")
    assert await deliver(fast_retries(), receiver.url, record)

    [(headers, body, _)] = receiver.calls
    assert body == b"hello world"
    assert headers["X-Reactr-Result-Id"] == record.id
    assert headers["X-Reactr-Job"] == "job"
    assert headers["X-Reactr-Outcome"] == "success"
    assert headers["X-Reactr-Attempt"] == "1"
    assert headers["Content-Type"] == "application/octet-stream"
    assert "X-Reactr-Signature" not in headers


async def test_5xx_is_retried_with_backoff_and_4xx_is_final(receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    assert await deliver(fast_retries(attempts=3), receiver.url, done(b"x"))
    assert [headers["X-Reactr-Attempt"] for headers, _, _ in receiver.calls] == ["1", "2", "3"]
    times = [at for _, _, at in receiver.calls]
    assert times[1] - times[0] >= 0.025 and times[2] - times[1] >= 0.05  # 0.05 then 0.1, jitter halves at most

    receiver.calls.clear()
    receiver.statuses = [404]
    assert not await deliver(fast_retries(attempts=3), receiver.url, done(b"x"))
    assert len(receiver.calls) == 1

    receiver.calls.clear()
    receiver.statuses = [500, 500, 500, 500]
    assert not await deliver(fast_retries(attempts=2), receiver.url, done(b"x"))
    assert len(receiver.calls) == 2  # bounded


async def test_connection_errors_are_retried_up_to_the_bound() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    assert not await deliver(fast_retries(attempts=3), f"http://127.0.0.1:{port}/hook", done(b"x"))
    assert time.monotonic() - started < 2


async def test_each_attempt_is_signed(receiver: Receiver) -> None:
    receiver.statuses = [500]
    assert await deliver(fast_retries(secret="s3cret"), receiver.url, done(error=RunErr(418, "teapot")))
    for headers, body, _ in receiver.calls:
        assert body == b'job_err_result: {"code":418,"message":"teapot"}'
        assert headers["X-Reactr-Outcome"] == "error"
        assert verify_signature("s3cret", headers["X-Reactr-Signature"], body)
        assert not verify_signature("wrong", headers["X-Reactr-Signature"], body)


async def test_the_connection_itself_is_checked_so_dns_rebinding_cannot_reach_loopback(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    port = URL(receiver.url).port
    rebinding = FixedResolver("127.0.0.1")  # the name passed check() earlier; now it points home
    config = fast_retries(allow_private=False, attempts=3)
    with caplog.at_level(logging.WARNING, logger="reactr_wasm.server.callbacks"):
        assert not await deliver(config, f"http://hooks.example.test:{port}/hook", done(b"x"), resolver=rebinding)
        # A literal address skips aiohttp's resolver; the socket factory still refuses it.
        assert not await deliver(config, receiver.url, done(b"x"))
    assert receiver.calls == []
    failures = [record.getMessage() for record in caplog.records]
    assert len(failures) == 2  # refusals are final: no retries
    assert all("attempt 1 of 3" in text and "loopback address" in text for text in failures), failures


async def test_drain_waits_for_deliveries_in_flight(receiver: Receiver) -> None:
    callbacks = Callbacks(fast_retries(backoff=0.2, backoff_max=0.2))
    receiver.statuses = [500]  # the first attempt fails: the delivery waits to retry
    task = callbacks.deliver(URL(receiver.url), done(b"late"))
    await receiver.arrived.wait()
    assert callbacks.pending == 1

    assert await callbacks.drain(5)
    assert task.result() is True and [body for _, body, _ in receiver.calls] == [b"late", b"late"]
    await callbacks.close()


async def test_drain_gives_up_after_its_timeout(receiver: Receiver) -> None:
    callbacks = Callbacks(fast_retries(backoff=30, backoff_max=30))
    receiver.statuses = [500]
    task = callbacks.deliver(URL(receiver.url), done(b"x"))
    await receiver.arrived.wait()
    started = time.monotonic()
    assert not await callbacks.drain(0.2)
    assert 0.15 < time.monotonic() - started < 1
    assert task.cancelled() and callbacks.pending == 0
    await callbacks.close()
