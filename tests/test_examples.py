"""The shipped examples, served as a newcomer serves them: ``reactr-wasm serve --dir runnables``.

The folder's own ``reactr.toml`` grants each example exactly the capabilities it uses, so
every example answers a plain ``curl -d`` without a config of the user's.
"""

from __future__ import annotations

import json
import shlex
import shutil
import threading
import tomllib
import urllib.error
import urllib.request
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from reactr_wasm.cli import FOLDER_CONFIG
from tests.conftest import ROOT, RUNNABLES
from tests.services import serve_process


def examples(tmp_path: Path, *, with_config: bool = True) -> Path:
    folder = tmp_path / "runnables"
    folder.mkdir()
    for module in RUNNABLES.glob("*.wasm"):
        shutil.copy(module, folder)
    if with_config:
        shutil.copy(RUNNABLES / FOLDER_CONFIG, folder)
    return folder


def post(url: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes, Message]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def test_the_folder_config_grants_each_example_exactly_what_it_imports() -> None:
    from reactr_wasm.cli import inspect_module

    config = tomllib.loads((RUNNABLES / FOLDER_CONFIG).read_text())
    assert config["capabilities"]["grant"] == []
    grantable = {"http", "graphql", "cache", "static", "db"}
    for module in sorted(RUNNABLES.glob("*.wasm")):
        used = set(inspect_module(module, module.read_bytes())["capabilities"]) & grantable
        granted = set(config.get("runnables", {}).get(module.stem, {}).get("capabilities", []))
        assert granted == used, module.stem


def readme_curls() -> list[tuple[str, str, bytes, dict[str, str]]]:
    """``(name, path and query, body, headers)`` of each curl in the README's list of examples."""
    text = (ROOT / "README.md").read_text()
    listed = text.split("Every example in `runnables/` answers a plain `curl -d`", 1)[1]
    commands = listed.split("```sh\n", 1)[1].split("```", 1)[0]
    curls = []
    for line in commands.splitlines():
        words = shlex.split(line, comments=True)
        url = words[words.index("-X") + 2].removeprefix("localhost:8080")
        headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
        name = url.removeprefix("/do/").split("?", 1)[0]
        curls.append((name, url, words[words.index("-d") + 1].encode(), headers))
    return curls


class _Target(BaseHTTPRequestHandler):
    """What fetch reaches in the test instead of the README's internet page."""

    def do_GET(self) -> None:
        body = b"hello from the target"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_readme_lists_every_shipped_example() -> None:
    assert sorted({name for name, *_ in readme_curls()}) == sorted(path.stem for path in RUNNABLES.glob("*.wasm"))


def test_every_example_answers_the_plain_curl_the_readme_shows(tmp_path: Path) -> None:
    folder = examples(tmp_path)
    with (folder / FOLDER_CONFIG).open("a") as config:  # the README's fetch URL is on the internet; ours is local
        for name in ("fetch", "fetch-as"):
            config.write(f"\n[runnables.{name}.http]\nallow_private = true\n")
    target = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    answers: dict[str, tuple[int, bytes, Message]] = {}
    try:
        with serve_process(["--dir", folder]) as (process, base):
            for name, url, data, headers in readme_curls():
                if name.startswith("fetch"):
                    data = f"http://127.0.0.1:{target.server_address[1]}/page".encode()
                answers[name] = post(base + url, data, headers)
            process.terminate()
            _, stderr = process.communicate(timeout=30)
    finally:
        target.shutdown()
        target.server_close()
    for name, (status, body, _) in answers.items():
        assert status == 200 or name == "return-err", (name, status, body)
    expected = {
        "hello-echo": b"hello joe", "hello-echo-as": b"hello joe", "echo-wat": b"joe",
        "hash": b"c5ef3a9c52e87db0", "hash-as": b"c5ef3a9c52e87db0", "cache-set": b"hello",
        "cache-get": b"very important", "counter": b"1", "counter-as": b"2",
        "fetch": b"hello from the target", "fetch-as": b"hello from the target",
        "request-info": b'{"method":"POST","url":"/do/request-info?then=true&message=hi","username":"joe",'
                        b'"header":"yes","state":"","query":"hi"}',
        "transform": b'{"message":"hi, joe!","name":"JOE","method":"POST","id":"","lang":"en"}',
        "transform-as": b'{"message":"hello, joe!","name":"JOE","method":"POST","id":"","lang":""}',
        "return-err": b'{"code":400,"message":"job failed"}',
    }  # fmt: skip
    assert {name: body for name, (_, body, _) in answers.items()} == expected
    for name in ("request-info", "transform", "transform-as"):
        assert answers[name][2]["Content-Type"] == "application/json", name
    assert answers["request-info"][2]["X-Reactr"] == "joe"
    assert answers["return-err"][0] == 400
    assert f"config: {folder / FOLDER_CONFIG}".encode() in stderr
    assert b"is not granted" not in stderr


def test_fetch_to_loopback_names_the_setting_that_allows_it(tmp_path: Path) -> None:
    folder = examples(tmp_path)
    with serve_process(["--dir", folder]) as (_, base):
        for name in ("fetch", "fetch-as"):
            status, body, _ = post(f"{base}/do/{name}?then=true", b"http://127.0.0.1:9/")
            assert (status, json.loads(body)["message"]) == (
                502,
                "failed to requestIsAllowed: requests to private IP address ranges are disallowed; "
                f"allow with allow_private = true in [capabilities.http] or [runnables.{name}.http]",
            )


def test_without_the_folder_config_fetch_is_not_granted(tmp_path: Path) -> None:
    folder = examples(tmp_path, with_config=False)
    with serve_process(["--dir", folder]) as (_, base):
        status, body, _ = post(f"{base}/do/fetch?then=true", b"http://127.0.0.1:9/")
    assert (status, json.loads(body)["message"]) == (
        502, 'capability is not enabled; grant it with [runnables.fetch] capabilities = ["http", "cache"]'
    )  # fmt: skip
