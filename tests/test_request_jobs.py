"""Request mode over plain HTTP: a job posted to ``/do/NAME`` carries its HTTP request to the guest.

The guests are real modules: ``request-dump`` (WAT, ``tests/modules``) echoes what
``request_get_field`` answers; ``request-info``, ``transform`` and ``transform-as`` are the
shipped examples.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from reactr_wasm import Config, CoordinatedRequest, CoordinatedResponse, Job, Limits, Reactr
from tests.conftest import RUNNABLES, wat_module
from tests.test_server_api import Start, answer, coordinated_request, make_config, run


@pytest.fixture
def server_config() -> Config:
    return make_config()


def dump(reactr: Reactr) -> None:
    reactr.register("dump", reactr.engine.load("dump", wat_module("request-dump"), limits=Limits(timeout=10)))


def lines(body: bytes) -> list[str]:
    return body.decode().split("\n")


@pytest.mark.parametrize("mode", ["then", "async"])
async def test_the_guest_reads_the_http_request_and_sets_response_headers(
    reactr: Reactr, start: Start, mode: str
) -> None:
    dump(reactr)
    client = await start()
    status, body, headers = await run(
        client, mode, "/do/dump", params={"h": "x-greeting", "lang": "en"}, data=b"the body",
        headers={"X-Greeting": "hi", "X-Request-Id": "trace-7"},
    )  # fmt: skip
    assert status == 200, body
    first, header, raw = lines(body)
    then = "then=true&" if mode == "then" else ""
    assert first == f"POST /do/dump?{then}h=x-greeting&lang=en trace-7"  # method, URL as sent, request id
    assert (header, raw) == ("hi", "the body")  # the body stays the payload and reads back whole
    assert headers["X-Dump"] == "yes"  # set by the guest: on then=true and on the stored result
    assert headers["Content-Type"] == "application/octet-stream"


async def test_repeated_headers_are_joined_and_hop_by_hop_ones_are_not_passed(reactr: Reactr, start: Start) -> None:
    dump(reactr)
    client = await start()
    headers = [("X-Multi", "a"), ("X-Multi", "b")]
    status, body, _ = await answer(client, "POST", "/do/dump?then=true&h=x-multi", headers=headers)
    assert (status, lines(body)[1]) == (200, "a, b")
    for hop in ("connection", "keep-alive", "te", "upgrade", "proxy-authorization"):
        status, body, _ = await answer(
            client, "POST", f"/do/dump?then=true&h={hop}", headers={hop: "x", "Connection": "keep-alive"}
        )
        assert (status, lines(body)[1]) == (200, ""), hop


async def test_authorization_reaches_the_guest_only_when_the_server_does_not_use_it(
    reactr: Reactr, start: Start
) -> None:
    dump(reactr)
    open_server = await start()
    status, body, _ = await answer(
        open_server, "POST", "/do/dump?then=true&h=authorization", headers={"Authorization": "Bearer guest-token"}
    )
    assert (status, lines(body)[1]) == (200, "Bearer guest-token")
    guarded = await start(make_config(auth_tokens=["server-token"]))
    status, body, _ = await answer(
        guarded, "POST", "/do/dump?then=true&h=authorization", headers={"Authorization": "Bearer server-token"}
    )
    assert (status, lines(body)[1]) == (200, "")  # the server's credential stays with the server


async def test_a_coordinated_request_body_keeps_its_own_request(reactr: Reactr, start: Start) -> None:
    dump(reactr)
    client = await start()
    sent = coordinated_request(b"inner body", url="/orders?h=x-test", request_id="r-1", headers={"x-test": "yes"})
    status, body, _ = await answer(client, "POST", "/do/dump?then=true&h=other", data=sent)
    assert (status, lines(body)) == (200, ["GET /orders?h=x-test r-1", "yes", "inner body"])


async def test_a_runnable_that_reads_no_request_field_gets_the_raw_body(reactr: Reactr, start: Start) -> None:
    seen: list[Any] = []
    reactr.register("py", lambda job, ctx: seen.append(job.data) or b"ok")
    reactr.register("echo", reactr.engine.load("echo", wat_module("echo"), limits=Limits(timeout=10)))
    client = await start()
    assert (await answer(client, "POST", "/do/py?then=true", data=b"raw"))[:2] == (200, b"ok")
    assert (await answer(client, "POST", "/do/py", data=b"queued"))[0] == 200
    assert (await answer(client, "POST", "/do/echo?then=yes", data=b"joe"))[:2] == (200, b"hello joe")
    for _ in range(100):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    assert seen == [b"raw", b"queued"]


async def test_the_request_examples_answer_a_plain_post(reactr: Reactr, start: Start) -> None:
    for name in ("request-info", "transform", "transform-as"):
        reactr.register(name, RUNNABLES / f"{name}.wasm")
    client = await start()
    status, body, headers = await answer(
        client, "POST", "/do/request-info?then=true&message=whatsup", data=b'{"username":"cohix"}',
        headers={"x-test": "yes"},
    )  # fmt: skip
    assert (status, headers["Content-Type"], headers["X-Reactr"]) == (200, "application/json", "cohix")
    assert body == {
        "method": "POST", "url": "/do/request-info?then=true&message=whatsup", "username": "cohix",
        "header": "yes", "state": "", "query": "whatsup",
    }  # fmt: skip
    for name in ("transform", "transform-as"):
        status, body, headers = await answer(
            client, "POST", f"/do/{name}?then=true&lang=en", data=b'{"name":"cohix"}', headers={"x-greeting": "hi"}
        )
        assert (status, headers["Content-Type"]) == (200, "application/json"), body
        assert body == {"message": "hi, cohix!", "name": "COHIX", "method": "POST", "id": "", "lang": "en"}
        status, body, _ = await answer(client, "POST", f"/do/{name}?then=true", data=b"joe")
        assert (status, body) == (400, {"code": 400, "message": 'body field "name" is required'})


# --- ?then= ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "1", "yes", "on", "TRUE", "Yes", "On"])
async def test_then_takes_the_usual_spellings_of_true(reactr: Reactr, start: Start, value: str) -> None:
    dump(reactr)
    client = await start()
    status, body, _ = await answer(client, "POST", f"/do/dump?then={value}", data=b"b")
    assert status == 200 and lines(body)[2] == "b"


@pytest.mark.parametrize("value", ["false", "0", "no", "off", "OFF"])
async def test_then_false_queues_the_job(reactr: Reactr, start: Start, value: str) -> None:
    dump(reactr)
    client = await start()
    status, body, headers = await answer(client, "POST", f"/do/dump?then={value}", data=b"b")
    assert status == 200 and set(body) == {"resultId"} and headers["Location"] == f"/then/{body['resultId']}"


@pytest.mark.parametrize("value", ["maybe", "", "2", "truee"])
async def test_then_that_is_no_boolean_is_400_and_starts_nothing(reactr: Reactr, start: Start, value: str) -> None:
    runs: list[Job] = []
    reactr.register("count", lambda job, ctx: runs.append(job))
    client = await start()
    for query in (f"then={value}", f"then={value}&callback=http://127.0.0.1:9/hook"):
        status, body, _ = await answer(client, "POST", f"/do/count?{query}", data=b"b")
        assert (status, body) == (
            400, {"code": 400, "message": f"then must be true, 1, yes or on (or false, 0, no, off), got {value!r}"}
        )  # fmt: skip
    assert runs == []


# --- embedded: a CoordinatedRequest is a job's data --------------------------------------------


def test_a_coordinated_request_as_job_data_is_a_request_job(reactr: Reactr) -> None:
    reactr.register("transform", RUNNABLES / "transform.wasm")
    request = CoordinatedRequest.from_http(
        "POST", "/orders?lang=en", "r-9", b'{"name":"cohix"}', [("X-Greeting", "hi")]
    )
    request.params["id"] = "42"
    value = reactr.do(Job("transform", request)).then(timeout=10)
    assert isinstance(value, CoordinatedResponse)
    assert json.loads(value.output) == {"message": "hi, cohix!", "name": "COHIX", "method": "POST", "id": "42",
                                        "lang": "en"}  # fmt: skip
    assert value.resp_headers == {"Content-Type": "application/json"}


def test_a_request_job_payload_is_its_json_form_and_reads_back_the_same() -> None:
    request = CoordinatedRequest("PUT", "/x?y=1", "id-1", b"\x00\xffbody", {"a": "b"}, {}, {"p": "q"}, {"s": b"\x01"})
    payload = Job("any", request).payload()
    fields = json.loads(payload)
    assert fields["body"] == base64.b64encode(b"\x00\xffbody").decode() and fields["request_id"] == "id-1"
    assert CoordinatedRequest.from_payload(payload) == request


def test_from_http_lowercases_and_joins_headers() -> None:
    request = CoordinatedRequest.from_http("POST", "/do/x?a=1", "rid", b"b", [("X-A", "1"), ("x-a", "2"), ("Y", "3")])
    assert request.headers == {"x-a": "1, 2", "y": "3"}
    assert (request.params, request.state, request.resp_headers) == ({}, {}, {})
    assert request.get_field(5, "a") == b"1" and request.get_field(0, "id") == b"rid"
