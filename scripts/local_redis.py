"""A throwaway redis-server on a free loopback port, and CPU time from /proc: for the benchmark scripts.

The modules of ``scripts/benchmarks/`` and ``scripts/bench-redis-paths`` import it (the
``scripts/`` folder is on their ``sys.path``). The persistence variants are the queue peers' (``../shared/bench``):
``none`` (``--save '' --appendonly no``) and ``aof`` (``--appendonly yes --appendfsync everysec``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

PERSISTENCE = {
    "none": ["--save", "", "--appendonly", "no"],
    "aof": ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
}
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent not idle, summed over its cores (/proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS  # all but idle and iowait


def _stats() -> dict[int, list[str]]:
    """pid -> the fields of /proc/PID/stat after the command name, for every live process."""
    stats = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
    return stats


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (a server and the workers it started, in any process group)."""
    children: dict[int, list[int]] = {}
    for child, fields in _stats().items():
        children.setdefault(int(fields[1]), []).append(child)
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and every live process below it."""
    stats = _stats()
    total = 0.0
    for member in descendants(pid):
        if member in stats:
            total += (int(stats[member][11]) + int(stats[member][12])) / TICKS
    return total


def command(port: int, *args: str, timeout: float = 10.0) -> bytes:
    """One command over RESP on a plain socket; the first line of the reply."""
    words = [arg.encode() for arg in args]
    message = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in words)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(message)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.split(b"\r\n", 1)[0]


class LocalRedis:
    """``with LocalRedis("aof") as redis:`` a redis-server in a scratch folder, stopped and removed at the end."""

    def __init__(self, persistence: str = "none") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.persistence = persistence
        self.workdir = tempfile.mkdtemp(prefix="bench-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.workdir,
             "--daemonize", "no", *PERSISTENCE[persistence]],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.pid = self.process.pid
        deadline = time.monotonic() + 15
        while not self._pings():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"redis-server ({persistence}) did not start")
            time.sleep(0.05)

    def _pings(self) -> bool:
        try:
            return command(self.port, "PING", timeout=1) == b"+PONG"
        except OSError:
            return False

    def flush(self) -> None:
        reply = command(self.port, "FLUSHALL")
        if reply != b"+OK":
            raise RuntimeError(f"FLUSHALL: {reply!r}")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalRedis:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
