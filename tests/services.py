"""Throwaway processes for the tests: redis-server, PostgreSQL, and ``reactr-wasm serve`` itself.

Each service runs from the Debian binaries in its own temporary directory, on
a free loopback port, and is stopped (then its directory removed) when the
context manager exits - tests leave nothing running. Start-up waits are
bounded; a service that dies or does not answer in time raises with its log.
``pytest.skip`` happens only when the binaries are not installed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Service:
    """A running service: where to reach it."""

    url: str
    port: int


def free_port() -> int:
    """A loopback port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} during start-up:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {START_TIMEOUT:.0f} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-4000:]
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


def _can_connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- reactr-wasm serve


def serve_command(args: Sequence[str | Path], port: int) -> list[str]:
    """The command line of ``reactr-wasm serve ARGS --port PORT`` run from this checkout (with ``SERVE_ENV``)."""
    return [sys.executable, "-m", "reactr_wasm", "serve", *map(str, args), "--port", str(port)]


SERVE_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@contextlib.contextmanager
def serve_process(
    args: Sequence[str | Path], env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``reactr-wasm serve ARGS --port P`` on a free loopback port, yielded once it accepts connections; killed at exit.

    Its stdout and stderr are pipes: ``process.communicate()`` after a stop reads them.
    ``env`` defaults to this environment with the checkout on ``PYTHONPATH``.
    """
    port = free_port()
    process = subprocess.Popen(
        serve_command(args, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        env=dict(env) if env is not None else SERVE_ENV,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while not _can_connect(port):
            assert process.poll() is None, process.communicate()[1].decode()
            assert time.monotonic() < deadline, "the server did not start listening"
            time.sleep(0.05)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


class ServeProcess:
    """``reactr-wasm serve ARGS --port P`` that a test can signal, kill and start again on the same port.

    Its stdout and stderr go to a log file (kept across restarts; ``log()`` reads
    it), so a long run cannot fill a pipe and stall it. ``start`` waits until
    ``GET /health`` answers 200 - in Redis mode, once the node announced itself.
    """

    def __init__(self, args: Sequence[str | Path], *, port: int | None = None, logs: Path) -> None:
        self.port = port if port is not None else free_port()
        self.args = serve_command(args, self.port)
        self.logfile = logs / f"serve-{self.port}.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = START_TIMEOUT) -> str:
        with self.logfile.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=SERVE_ENV,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not _health_ok(self.url):
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode} during start-up:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not answer /health within {timeout:.0f} s:\n{self.log()}")
            time.sleep(0.05)
        return self.url

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def send(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """Stop it (SIGKILL: as a crash); its exit code."""
        if self.process is None:
            return None
        _stop(self.process, sig)
        code, self.process = self.process.returncode, None
        return code

    def log(self) -> str:
        return _tail(self.logfile)


def _health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------- redis


class RedisProcess:
    """A redis-server on a free loopback port that a test can stop, kill and start again (same port, same data).

    ``appendonly``: an AOF with ``appendfsync everysec`` (what ``docs/cluster.md``
    recommends), so a restart brings back what was acknowledged more than ~1 s before.
    """

    def __init__(self, *, password: str | None = None, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.workdir = Path(tempfile.mkdtemp(prefix="reactr-redis-"))
        self.port, self.password = free_port(), password
        self.log = self.workdir / "redis.log"
        self.args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.args += ["--appendonly", "yes", "--appendfsync", "everysec"] if appendonly else ["--appendonly", "no"]
        self.args += ["--dir", str(self.workdir), "--logfile", str(self.log), "--daemonize", "no"]
        if password is not None:
            self.args += ["--requirepass", password]
        self.process: subprocess.Popen[bytes] | None = None
        self.service = Service(url=f"redis://127.0.0.1:{self.port}/0", port=self.port)

    def start(self) -> Service:
        """Start (again), and wait until it answers PING (it has loaded its AOF by then)."""
        self.process = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        _wait_until(lambda: _redis_pings(self.port, self.password), self.process, self.log, "redis-server")
        return self.service

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop it: SIGTERM shuts down cleanly (AOF flushed), SIGKILL is a crash."""
        if self.process is not None:
            _stop(self.process, sig)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def redis_server(password: str | None = None, *, appendonly: bool = False) -> Iterator[Service]:
    """A redis-server on a free loopback port (``requirepass password`` if given), stopped at the end.

    Without persistence unless ``appendonly`` (see ``RedisProcess``).
    """
    process = RedisProcess(password=password, appendonly=appendonly)
    try:
        yield process.start()
    finally:
        process.close()


def _redis_pings(port: int, password: str | None) -> bool:
    auth = f"AUTH {password}\r\n".encode() if password is not None else b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(auth + b"PING\r\n")
            return sock.recv(64).endswith(b"+PONG\r\n")
    except OSError:
        return False


# ---------------------------------------------------------------- postgres


def postgres_bindir() -> Path | None:
    """The newest Debian PostgreSQL bin directory, ``$PG_BINDIR``, or the one on ``PATH``."""
    if env := os.environ.get("PG_BINDIR"):
        return Path(env)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if candidates:
        return Path(candidates[-1])
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _cluster_owner() -> pwd.struct_passwd | None:
    """initdb and postgres refuse to run as root: as root, run them as the ``postgres`` user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root without a 'postgres' user to own the test cluster")


@contextlib.contextmanager
def postgres_server() -> Iterator[Service]:
    """A throwaway PostgreSQL cluster (trust auth, no fsync) on a free loopback port.

    The URL names database ``postgres`` and superuser ``reactr``.
    """
    bindir = postgres_bindir()
    if bindir is None or not (bindir / "initdb").exists() or not (bindir / "postgres").exists():
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    owner = _cluster_owner()
    workdir = Path(tempfile.mkdtemp(prefix="reactr-pg-"))
    uid = gid = None
    if owner is not None:
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
        uid, gid = owner.pw_uid, owner.pw_gid
    groups: list[int] | None = None if owner is None else []
    data, log, port = workdir / "data", workdir / "postgres.log", free_port()
    process: subprocess.Popen[bytes] | None = None
    try:
        initdb = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "reactr", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=False,
            capture_output=True,
            timeout=60,
            cwd=workdir,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stderr.decode(errors='replace')}")
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(workdir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        args = [str(bindir / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        _wait_until(lambda: _postgres_ready(bindir, port), process, log, "postgres")
        yield Service(url=f"postgresql://reactr@127.0.0.1:{port}/postgres", port=port)
    finally:
        if process is not None:
            _stop(process, signal.SIGINT)  # "fast" shutdown: roll back clients, stop at once
        shutil.rmtree(workdir, ignore_errors=True)


def _postgres_ready(bindir: Path, port: int) -> bool:
    if not _can_connect(port):
        return False
    isready = bindir / "pg_isready"
    if not isready.exists():
        return True
    check = [str(isready), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "reactr", "-d", "postgres", "-t", "1"]
    return subprocess.run(check, capture_output=True, timeout=5).returncode == 0
