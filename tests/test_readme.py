"""The README's examples do what it says: the full configuration starts as written, the
callback signature example prints what its comments say, the request-mode curl answers as shown."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from reactr_wasm.signing import sign
from tests.conftest import ROOT, RUNNABLES
from tests.services import serve_process

README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of the README section headed ``title`` (any level), up to the next heading outside code."""
    lines, fenced, inside = [], False, False
    for line in README.splitlines(keepends=True):
        fenced ^= line.startswith("```")
        heading = not fenced and re.match(r"#+ ", line) is not None
        if heading and inside:
            break
        if inside:
            lines.append(line)
        inside = inside or (heading and line.rstrip("\n").split(" ", 1)[1] == title)
    assert lines, f"README has no section {title!r}"
    return "".join(lines)


def block(text: str, language: str) -> str:
    """The first ```language block in ``text``."""
    found = re.search(rf"^```{language}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert found is not None, f"no {language} block"
    return found.group(1)


def request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    method = "POST" if data is not None else "GET"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers or {}, method=method), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_full_configuration_example_starts_as_written(tmp_path: Path) -> None:
    example = block(section("Configuration"), "toml")
    command = next(line for line in example.splitlines() if "reactr-wasm serve --config reactr.toml" in line)
    words = shlex.split(command.lstrip("# "))
    given = dict(word.split("=", 1) for word in words[: words.index("reactr-wasm")])
    needed = {name for line in example.splitlines() if not line.lstrip().startswith("#")
              for name in re.findall(r"env\((\w+)\)", line)}  # fmt: skip
    assert set(given) == needed, "the example's first lines name every variable it reads"

    (tmp_path / "reactr.toml").write_text(example)
    shutil.copytree(RUNNABLES, tmp_path / "runnables", ignore=shutil.ignore_patterns("src", ".reactr-cache"))
    bare = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}  # nothing else from this environment
    refused = subprocess.run(
        [sys.executable, "-m", "reactr_wasm", "serve", "--config", str(tmp_path / "reactr.toml")],
        capture_output=True, env=bare, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and b"environment variable REACTR_TOKEN is not set" in refused.stderr

    with serve_process(["--config", str(tmp_path / "reactr.toml")], {**bare, **given}) as (_, base):
        assert request(f"{base}/do/hello-echo?then=true", b"joe")[0] == 401  # auth_tokens is set
        token = {"Authorization": f"Bearer {given['REACTR_TOKEN']}"}
        assert request(f"{base}/do/hello-echo?then=true", b"joe", token) == (200, b"hello joe")
        assert request(f"{base}/do/hash?then=true", b"1000", token) == (200, b"c5ef3a9c52e87db0")


def test_the_callback_signature_example_prints_what_its_comments_say() -> None:
    code = block(section("Callbacks"), "python")
    assert "verify_signature(" in code and "hmac.new(" in code
    expected = [line.split("#", 1)[1].strip() for line in code.splitlines() if line.startswith("print(")]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected == ["True", "False", "False"]


def test_the_signature_scheme_the_readme_states_is_the_one_deliveries_carry() -> None:
    scheme = block(section("Callbacks"), "")
    assert scheme.strip() == 'X-Reactr-Signature: t=<unix seconds>,v1=<hex of HMAC-SHA256(secret, "<t>." + raw body)>'
    expected = hmac.new(b"k", b"1700000000.body", hashlib.sha256).hexdigest()
    assert sign("k", b"body", 1700000000) == f"t=1700000000,v1={expected}"


def test_the_request_mode_curl_answers_as_shown(tmp_path: Path) -> None:
    text = section("Request mode")
    shown = block(text, "sh").strip().splitlines()
    command, answer = shown[0], shown[1].lstrip("# ")
    words = shlex.split(command)
    url, data = words[words.index("-X") + 2], words[words.index("-d") + 1]
    folder = tmp_path / "runnables"
    folder.mkdir()
    shutil.copy(RUNNABLES / "transform.wasm", folder)
    with serve_process(["--dir", str(folder)]) as (_, base):
        status, body = request(url.replace("localhost:8080", base), data.encode())
    assert (status, json.loads(body)) == (200, json.loads(answer))
