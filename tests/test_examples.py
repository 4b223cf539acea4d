"""The shipped examples, served as a newcomer serves them: ``reactr-wasm serve --dir runnables``.

The folder's own ``reactr.toml`` grants each example exactly the capabilities it uses, so
every example answers a plain ``curl -d`` without a config of the user's.
"""

from __future__ import annotations

import shutil
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

from reactr_wasm.cli import FOLDER_CONFIG
from tests.conftest import RUNNABLES
from tests.test_cli import serve_process


def examples(tmp_path: Path, *, with_config: bool = True) -> Path:
    folder = tmp_path / "runnables"
    folder.mkdir()
    for module in RUNNABLES.glob("*.wasm"):
        shutil.copy(module, folder)
    if with_config:
        shutil.copy(RUNNABLES / FOLDER_CONFIG, folder)
    return folder


def post(url: str, data: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_folder_config_grants_each_example_exactly_what_it_imports() -> None:
    from reactr_wasm.cli import inspect_module

    config = tomllib.loads((RUNNABLES / FOLDER_CONFIG).read_text())
    assert config["capabilities"]["grant"] == []
    grantable = {"http", "graphql", "cache", "static", "db"}
    for module in sorted(RUNNABLES.glob("*.wasm")):
        used = set(inspect_module(module, module.read_bytes())["capabilities"]) & grantable
        granted = set(config.get("runnables", {}).get(module.stem, {}).get("capabilities", []))
        assert granted == used, module.stem


def test_every_example_answers_a_plain_post(tmp_path: Path) -> None:
    folder = examples(tmp_path)
    with serve_process(folder) as (process, base):
        do = f"{base}/do"
        assert post(f"{do}/hello-echo?then=true", b"joe") == (200, b"hello joe")
        assert post(f"{do}/hello-echo-as?then=true", b"joe") == (200, b"hello joe")
        assert post(f"{do}/echo-wat?then=true", b"joe") == (200, b"joe")
        assert post(f"{do}/hash?then=true", b"1000") == (200, b"c5ef3a9c52e87db0")
        assert post(f"{do}/hash-as?then=true", b"1000") == (200, b"c5ef3a9c52e87db0")
        assert post(f"{do}/cache-set?then=true", b"very important") == (200, b"hello")
        assert post(f"{do}/cache-get?then=true", b"") == (200, b"very important")
        first = post(f"{do}/counter?then=true", b"")
        assert first[0] == 200 and post(f"{do}/counter-as?then=true", b"")[0] == 200
        assert post(f"{do}/return-err?then=true", b"x") == (400, b'{"code":400,"message":"job failed"}')
        # fetch is granted http: a loopback URL now meets the address rules, not a missing grant
        for name in ("fetch", "fetch-as"):
            status, body = post(f"{do}/{name}?then=true", b"http://127.0.0.1:9/")
            assert status == 502 and b"private IP" in body and b"not enabled" not in body, (name, body)
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert f"config: {folder / FOLDER_CONFIG}".encode() in stderr
    assert b"is not granted" not in stderr


def test_without_the_folder_config_fetch_is_not_granted(tmp_path: Path) -> None:
    folder = examples(tmp_path, with_config=False)
    with serve_process(folder) as (_, base):
        status, body = post(f"{base}/do/fetch?then=true", b"http://127.0.0.1:9/")
    assert status == 502 and b"capability is not enabled" in body
