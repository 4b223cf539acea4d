"""The example runnables in runnables/, built from runnables/src, through the engine."""

from __future__ import annotations

import base64
import json

import pytest

from reactr_wasm import CoordinatedResponse, Reactr, RunErr
from tests.conftest import RUNNABLES


@pytest.fixture
def examples(reactr: Reactr) -> Reactr:
    for path in sorted(RUNNABLES.glob("*.wasm")):
        reactr.register(path.stem, str(path))
    return reactr


# What the request-info example answers to a GET of /hello/world?message=whatsup with body
# {"username":"cohix"}, header x-test: yes and state hello = "what is up" (here and in test_server_api).
REQUEST_INFO_ANSWER = {
    "method": "GET",
    "url": "/hello/world?message=whatsup",
    "username": "cohix",
    "header": "yes",
    "state": "what is up",
    "query": "whatsup",
}


def test_every_example_is_registered(examples: Reactr) -> None:
    assert {"hello-echo", "return-err", "request-info", "cache-set", "cache-get", "hash", "echo-wat"} <= set(
        examples.names()
    )


def test_hello_echo_with_wasi_imports(examples: Reactr) -> None:
    assert examples.do("hello-echo", b"my name is joe").then(timeout=5) == b"hello my name is joe"
    large = bytes(range(256)) * 1024
    assert examples.do("hello-echo", large).then(timeout=5) == b"hello " + large


def test_return_err_is_reactrs_run_err(examples: Reactr) -> None:
    with pytest.raises(RunErr) as error:
        examples.do("return-err", b"x").then(timeout=5)
    assert str(error.value) == '{"code":400,"message":"job failed"}'


def test_cache_is_shared_between_runnables(examples: Reactr) -> None:
    with pytest.raises(RunErr, match="key not found"):
        examples.do("cache-get", b"").then(timeout=5)
    assert examples.do("cache-set", b"very important").then(timeout=5) == b"hello"
    assert examples.do("cache-get", b"").then(timeout=5) == b"very important"


def test_request_info_reads_every_field_kind(examples: Reactr) -> None:
    request = {
        "method": "GET",
        "url": "/hello/world?message=whatsup",
        "request_id": "7d5c1a2e-0000-4000-8000-000000000000",
        "body": base64.b64encode(b'{"username":"cohix"}').decode(),
        "headers": {"X-Test": "yes"},
        "resp_headers": None,
        "params": None,
        "state": {"hello": base64.b64encode(b"what is up").decode()},
    }
    outcome = examples.do("request-info", json.dumps(request).encode()).then(timeout=5)
    assert isinstance(outcome, CoordinatedResponse)
    assert json.loads(outcome.output) == REQUEST_INFO_ANSWER
    assert outcome.resp_headers == {"Content-Type": "application/json", "X-Reactr": "cohix"}


def reference_hash(rounds: int) -> bytes:
    """runnables/src/hash/lib.rs, in Python."""
    fnv_offset, fnv_prime, mask = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1
    state = fnv_offset
    for round_ in range(rounds):
        fnv = fnv_offset ^ round_
        for byte in state.to_bytes(8, "little"):
            fnv = ((fnv ^ byte) * fnv_prime) & mask
        state = fnv ^ (fnv >> 29)
        state ^= (state << 17) & mask
        state ^= state >> 31
    return f"{state:016x}".encode()


def test_hash_matches_a_python_reference(examples: Reactr) -> None:
    assert examples.do("hash", b"1000").then(timeout=5) == reference_hash(1000)
    assert examples.do("hash", b"not a number").then(timeout=5) == reference_hash(200_000)
