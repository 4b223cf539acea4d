"""Fuzzing a live ``reactr-wasm serve`` against its own ``/openapi.json`` with schemathesis.

The server is a real subprocess on a loopback port over a folder of real
runnables: ones that answer (hello-echo, echo), fail with their own code
(return-err: 400, result-and-error: 418), trap (500) and run past their
timeout (504; forever first outlives ``max_wait``: 202). Each documented
operation gets a bounded number of generated requests, and workflows follow
the document's links from ``POST /do`` to the result routes. Every answer
must match the document (status, content type, headers, body schema,
405 for other methods), and a 5xx must be one the document allows: the
outcome of a runnable meant to fail so, or a 503 with ``Retry-After``.

Callback URLs are refused for every host but localhost, so that no
generated URL makes the server look a name up in DNS. ~30 s on 2 busy cores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings  # a dependency of schemathesis
from schemathesis.checks import negative_data_rejection, not_a_server_error, positive_data_acceptance

from tests.conftest import ROOT, RUNNABLES, wat_module
from tests.services import free_port
from tests.test_cli import ENV

pytestmark = pytest.mark.slow

# Fuzzed operation by operation: a job may outlive max_wait (202) or its timeout (504).
TIMING_CONFIG = """\
[server]
max_wait = 0.15
drain_timeout = 1
[callbacks]
allowed_domains = ["localhost"]
[runnables.infinite-loop]
timeout = 0.05
[runnables.forever]
timeout = 0.3
"""
# Walked along the links: every job ends long before max_wait, so each answer is the same
# when Hypothesis replays a workflow (it refuses to go on when a replay answers otherwise).
STEADY_CONFIG = """\
[server]
max_wait = 10
drain_timeout = 1
[callbacks]
allowed_domains = ["localhost"]
[runnables.infinite-loop]
timeout = 0.05
"""


@contextmanager
def serving(folder: Path, config: str, *, forever: bool) -> Iterator[str]:
    """``reactr-wasm serve`` over example runnables on a free loopback port, once it answers."""
    runnables = folder / "runnables"
    runnables.mkdir()
    for name in ("hello-echo", "return-err"):
        shutil.copy(RUNNABLES / f"{name}.wasm", runnables)
    for name in ("echo", "result-and-error", "trap", "infinite-loop"):
        (runnables / f"{name}.wasm").write_bytes(wat_module(name))
    if forever:
        (runnables / "forever.wasm").write_bytes(wat_module("infinite-loop"))  # outlives max_wait: 202, then 504
    (folder / "reactr.toml").write_text(config)
    port = free_port()
    log_path = folder / "server.log"
    with log_path.open("wb") as log:  # a file, not a pipe nobody reads: the server logs every request
        process = subprocess.Popen(
            [sys.executable, "-m", "reactr_wasm", "serve", "--dir", str(runnables), "--port", str(port),
             "--config", str(folder / "reactr.toml"), "--no-watch"],
            stdout=log, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_listening(process, f"{base}/health", log_path)
            yield base
        finally:
            process.kill()
            process.wait()


def _wait_listening(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        assert process.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, "the server did not start listening"
            time.sleep(0.05)


def narrowed(base_url: str, *, timing: bool = True) -> Any:
    """The document the live server serves, narrowed to steer generation to real jobs.

    Unnarrowed, nearly every generated job name is unknown (404) and ``then`` is
    almost never ``true``. The narrowed document accepts a subset of what the served
    one does, and every answer is still checked against the served responses.
    Without ``timing``, ``wait`` is left out: ``wait=0`` races the job it waits for.
    """
    with urllib.request.urlopen(f"{base_url}/openapi.json", timeout=5) as response:
        document = json.load(response)
    job = document["paths"]["/do/{job}"]["post"]["parameters"][0]
    job["schema"] = {"enum": job["schema"]["examples"]}
    document["components"]["parameters"]["Then"]["schema"] = {"enum": list(WAIT)}
    if not timing:
        for method in ("get", "head"):
            document["paths"]["/then/{id}"][method]["parameters"].remove({"$ref": "#/components/parameters/Wait"})
    return schemathesis.openapi.from_dict(document)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("fuzz"), TIMING_CONFIG, forever=True) as base:
        yield base


@pytest.fixture(scope="module")
def api(base_url: str) -> Any:
    return narrowed(base_url)


WAIT = ("true", "1")  # the values of `then` that wait for the result


# The server errors each runnable is meant to answer: (status, X-Reactr-Error).
FAILS_SO = {"trap": (500, "ExecutionError"), "infinite-loop": (504, "JobTimeout"), "forever": (504, "JobTimeout")}


def documented_server_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 5xx only as the document allows it: a runnable's outcome it is meant to have, or busy."""
    status, headers = response.status_code, response.headers  # headers: lowercased names, lists of values
    if status < 500 or (status == 503 and "retry-after" in headers):  # a full queue or draining
        return None
    outcome = (status, headers.get("x-reactr-error", [None])[0])
    if case.operation.path == "/do/{job}":
        assert outcome == FAILS_SO.get(case.path_parameters["job"]), f"{case.path_parameters['job']}: {outcome}"
    else:  # /then/{id} answers the outcome of a job started before
        assert case.operation.path == "/then/{id}" and outcome in FAILS_SO.values(), f"{outcome}: {response.text!r}"
    return None


def not_applicable(case: Any, response: Any) -> list[Any]:
    """The built-in checks that do not apply to this request and answer, and why."""
    excluded = [not_a_server_error]  # replaced by documented_server_errors
    query = case.query or {}
    reused_key = response.status_code == 422 and "Idempotency-Key" in (case.headers or {})
    if query.get("callback") or "x-reactr-error" in response.headers or reused_key:  # lowercased by schemathesis
        # The request was taken, and refused for a reason no schema can carry: the callback
        # destination rules (here every host but localhost), the job's own error, or a key
        # generated twice for two different requests (422, documented).
        excluded.append(positive_data_acceptance)
    if query.get("then", WAIT[0]) not in WAIT:
        excluded.append(negative_data_rejection)  # outside the narrowed enum, `then` is ignored, as documented
    return excluded


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@settings(max_examples=50, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))  # fmt: skip
def test_the_live_server_answers_as_its_document_says(case: Any, base_url: str) -> None:
    transport = {"base_url": base_url, "timeout": 10}
    response = case.call(**transport)
    case.validate_response(
        response,
        excluded_checks=not_applicable(case, response),
        additional_checks=[documented_server_errors],
        transport_kwargs=transport,
    )


def test_workflows_along_the_links_answer_as_the_document_says(tmp_path: Path) -> None:
    """Result ids from POST /do fed to GET /then, GET /jobs and DELETE /then (the document's links)."""
    with serving(tmp_path, STEADY_CONFIG, forever=False) as base_url:
        walk(narrowed(base_url, timing=False), base_url)


def walk(api: Any, base_url: str) -> None:
    """Run schemathesis's state machine for ``api`` against ``base_url``, with this module's checks."""

    class Workflow(api.as_state_machine()):
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base_url, "timeout": 10}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(
                response,
                excluded_checks=not_applicable(case, response),
                additional_checks=[documented_server_errors],
                transport_kwargs=kwargs,
                recorder=self.recorder,
            )

    Workflow.run(settings=settings(
        max_examples=30, stateful_step_count=8, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck),
    ))  # fmt: skip
