"""The README's first set-up command, run as written on a clean copy of the checkout.

It must work on a stock Debian/Ubuntu with only ``python3`` and its ``venv`` module:
Debian's own ``/usr/bin/python3`` refuses ``pip install`` outside a virtual environment
(PEP 668), which is why the command makes one.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.services import free_port

STOCK_PYTHON = Path("/usr/bin/python3")  # Debian's, not a pyenv or venv one


def readme_setup_commands() -> list[str]:
    """The two commands of the README's "Set up" block, comments removed."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Set up\n\n```sh\n(.*?)```", text, re.S)
    assert block is not None, "README.md has no Set up block"
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = readme_setup_commands()
    assert len(commands) == 2
    assert "reactr-wasm serve --dir runnables" in commands[0]
    assert commands[1] == "scripts/test"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_first_command_serves_the_examples_from_a_clean_copy(tmp_path: Path) -> None:
    assert STOCK_PYTHON.exists(), "this test needs the distribution's own python3 at /usr/bin/python3"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    copy = tmp_path / "clone"
    for name in filter(None, files.decode().split("\0")):
        source, target = ROOT / name, copy / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    *prepare, serve = readme_setup_commands()[0].split("&&")
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{STOCK_PYTHON.parent}:/bin"  # python3 is the stock one, nothing of ours on PATH
    for command in prepare:
        done = subprocess.run(shlex.split(command), cwd=copy, env=env, capture_output=True, timeout=500)
        assert done.returncode == 0, f"{command.strip()!r} failed:\n{done.stderr.decode()[-3000:]}"
    port = free_port()
    process = subprocess.Popen(
        [*shlex.split(serve), "--port", str(port)], cwd=copy, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[1].decode()[-3000:]
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/do/hello-echo?then=true", data=b"my name is joe", method="POST"
                )
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert response.read() == b"hello my name is joe"
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.1)
    finally:
        process.kill()
        process.communicate()
