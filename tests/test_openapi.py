"""``GET /openapi.json``: a valid OpenAPI 3.1 document that lists exactly the app's routes.

The fuzzing of a live server against the document is in ``test_openapi_fuzz.py``.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import schemathesis

from reactr_wasm import Config, ExecutionError, JobCancelled, JobTimeout, QueueFull, Reactr, RunErr, RunnableNotFound
from reactr_wasm.config import ServerConfig
from reactr_wasm.server.app import create_app
from reactr_wasm.server.dashboard import UI_PREFIX
from reactr_wasm.server.openapi import openapi_document
from reactr_wasm.server.responses import error_response
from tests.test_server_api import Start, answer, make_config, wasm

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
TOKEN_CONFIG = Config(server=ServerConfig(auth_tokens=["secret-token"]))


@pytest.fixture
def server_config() -> Config:
    return make_config()


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every operation in the document."""
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item if method in METHODS}


@pytest.mark.parametrize("config", [Config(), TOKEN_CONFIG], ids=["open", "tokens"])
def test_the_document_is_valid_openapi_3_1(config: Config) -> None:
    document = openapi_document(config, ["echo"])
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 meta-schema


def test_the_document_lists_exactly_the_routes_of_the_app(reactr: Reactr) -> None:
    app = create_app(reactr, Config())
    routed = {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource is not None}
    # The dashboard is pages and an endless event stream for a browser, not API: left out of the document.
    routed = {(method, path) for method, path in routed if not path.startswith(UI_PREFIX)}
    real = {(method, path) for method, path in routed if method != "*"}
    assert operations(openapi_document(Config())) == real
    # The catch-alls: 405 with Allow on every documented path, 404 on any other.
    documented = {path for _, path in real}
    assert {path for method, path in routed if method == "*"} == documented | {"/{tail}"}


def test_every_job_error_status_is_documented_on_the_job_routes() -> None:
    paths = openapi_document(Config())["paths"]
    job_routes = [paths["/do/{job}"]["post"]["responses"], paths["/then/{id}"]["get"]["responses"]]
    # The server's own answers are listed by their status; 4XX and 5XX are for a runnable's own codes.
    for error in [JobTimeout(), JobCancelled(), QueueFull("full"), ExecutionError("trap"), RuntimeError("Python")]:
        assert all(str(error_response(error).status) in responses for responses in job_routes), error
    for code in (400, 418, 451, 503, 599, 7):
        status = error_response(RunErr(code, "own")).status
        assert all(str(status) in responses or f"{status // 100}XX" in responses for responses in job_routes), code
    assert "404" in job_routes[0] and error_response(RunnableNotFound("x")).status == 404


async def test_openapi_json_is_served_and_lists_the_runnables_served_now(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start()
    status, document, headers = await answer(client, "GET", "/openapi.json")
    assert (status, headers["Content-Type"]) == (200, "application/json")
    assert headers["X-Request-Id"]
    assert document == openapi_document(make_config(), ["echo"])
    assert "security" not in document and "securitySchemes" not in document["components"]
    job = document["paths"]["/do/{job}"]["post"]["parameters"][0]
    assert (job["name"], job["schema"]["examples"]) == ("job", ["echo"])
    wasm(reactr, "trap")
    _, document, _ = await answer(client, "GET", "/openapi.json")
    assert document["paths"]["/do/{job}"]["post"]["parameters"][0]["schema"]["examples"] == ["echo", "trap"]
    status, body, _ = await answer(client, "HEAD", "/openapi.json")
    assert (status, body) == (200, b"")


async def test_with_tokens_the_document_is_public_and_says_which_routes_want_one(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "echo")
    client = await start(make_config(auth_tokens=["secret-token"]))
    status, document, _ = await answer(client, "GET", "/openapi.json")  # no token
    assert status == 200
    assert document["components"]["securitySchemes"] == {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    assert document["security"] == [{"bearerAuth": []}]
    assert "secret-token" not in str(document)
    requests = {  # one request of the right shape for each operation
        ("POST", "/do/{job}"): "/do/echo", ("GET", "/then/{id}"): f"/then/{'a' * 24}",
        ("HEAD", "/then/{id}"): f"/then/{'a' * 24}", ("DELETE", "/then/{id}"): f"/then/{'a' * 24}",
        ("GET", "/jobs/{id}"): f"/jobs/{'a' * 24}", ("HEAD", "/jobs/{id}"): f"/jobs/{'a' * 24}",
        ("GET", "/health"): "/health", ("HEAD", "/health"): "/health",
        ("GET", "/openapi.json"): "/openapi.json", ("HEAD", "/openapi.json"): "/openapi.json",
        ("GET", "/metrics"): "/metrics", ("HEAD", "/metrics"): "/metrics",
    }  # fmt: skip
    assert set(requests) == operations(document)
    for (method, path), url in requests.items():
        operation = document["paths"][path][method.lower()]
        status, _, headers = await answer(client, method, url)
        if operation.get("security") == []:
            assert status == 200 and "401" not in operation["responses"], (method, path)
        else:
            assert (status, headers["WWW-Authenticate"]) == (401, "Bearer"), (method, path)
            assert "401" in operation["responses"], (method, path)


async def test_a_failed_jobs_status_matches_the_documented_schema(reactr: Reactr, start: Start) -> None:
    wasm(reactr, "trap")
    wasm(reactr, "echo")
    client = await start()
    document = openapi_document(make_config())
    schema = {**document["components"]["schemas"]["JobStatus"], "components": document["components"]}
    for name, error in (("trap", True), ("echo", False)):
        result_id = (await answer(client, "POST", f"/do/{name}", data=b"x"))[1]["resultId"]
        await answer(client, "GET", f"/then/{result_id}")
        status = (await answer(client, "GET", f"/jobs/{result_id}"))[1]
        jsonschema.validate(status, schema, cls=jsonschema.Draft202012Validator)
        assert isinstance(status["error"], dict) is error, status
    with pytest.raises(jsonschema.ValidationError):  # the schema does check the error's shape
        jsonschema.validate({**status, "error": '{"code":500}'}, schema, cls=jsonschema.Draft202012Validator)
