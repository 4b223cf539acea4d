"""A ``reactr-wasm serve`` node as a subprocess, and the minimal keep-alive HTTP client that talks to it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from local_redis import descendants, free_port, tree_cpu_seconds

from benchmarks.paths import ROOT

THEN_PATH = "/do/echo?then=true"


def serve_flags() -> set[str]:
    """The flags this build's ``serve`` has (``--redis`` and ``--workers`` come with Redis mode)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "reactr_wasm", "serve", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(re.findall(r"(--[a-z][a-z-]*)", help_text))


class Node:
    """``reactr-wasm serve`` on a free port, its log to a file."""

    def __init__(self, folder: Path, log: Path, flags: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "reactr_wasm", "serve", "--dir", str(folder), "--port", str(self.port)]
        with log.open("ab") as out:
            self.process = subprocess.Popen([*command, *flags], cwd=ROOT, stdout=out, stderr=out)
        self.log = log
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 30.0) -> None:
        """Until a ``then=true`` job answers."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, RuntimeError):
                client = KeepAlive(self.port)
                with client.sock:
                    if client.call("POST", THEN_PATH, b"ready") == (200, b"hello ready"):
                        return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; its log:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        """SIGTERM (``serve --workers`` passes it on to its workers), SIGKILL to all of them after 30 s."""
        tree = descendants(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            for pid in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait()


class KeepAlive:
    """A minimal HTTP/1.1 client on one keep-alive socket, for the producer.

    ~10-20 µs of CPU per request here where http.client takes ~80: with one call in
    flight on 2 cores the client's cost would otherwise set the pace. It handles what
    the server answers (a Content-Length on every response) and nothing else.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()

    def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
        self.sock.sendall(head.encode() + body)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._receive()
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        headers = dict(line.lower().split(b":", 1) for line in lines[1:])
        if b"content-length" not in headers:
            raise RuntimeError(f"{method} {path}: an answer without Content-Length: {lines}")
        start, size = end + 4, int(headers[b"content-length"])
        while len(self.buffer) < start + size:
            self._receive()
        answer = bytes(self.buffer[start : start + size])
        del self.buffer[: start + size]
        return int(lines[0].split()[1]), answer

    def _receive(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self.buffer += chunk
