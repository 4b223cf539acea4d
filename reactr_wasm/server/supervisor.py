"""``serve --workers N``: N server processes sharing one port, and the supervisor that keeps them running.

The supervisor is a small process that loads no runnable. It starts N copies
of the same ``serve`` command line as child processes (``--workers 1`` and a
hidden ``--worker-fd FD``); each child binds the port with ``SO_REUSEPORT``, so
the kernel spreads new connections over them. Between the supervisor and each
child is one Unix socket pair, the child's *link*:

- the child writes one byte on it once it listens: it has started;
- the child stops (draining as on SIGTERM) when it reads end-of-file on it: the
  supervisor is gone, even after a ``kill -9``, so no child outlives it.

The supervisor forwards SIGINT and SIGTERM to every child and waits for them to
drain (up to ``server.drain_timeout`` plus a margin, then SIGKILL). A child that
dies while serving is started again after a backoff that doubles from 0.5 s to
10 s and starts over once a child has served for a minute. A child that exits
before it listens has failed to start: the first one is started alone, so a
usage error (the port is in use, the config is refused) is one line from that
child and exit code 2, as a single ``serve`` prints it; later, ``MAX_START_FAILURES``
failed starts in a row stop the supervisor with the child's exit code.

Children run in their own process group, so a Ctrl-C in a terminal reaches
them once, through the supervisor, rather than twice.

N > 1 needs Redis mode (``[cluster] redis``): each process keeps its own queue
and results otherwise, and a result id answered by one would be unknown to the
next connection's process (``check_workers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from reactr_wasm.config import Config
from reactr_wasm.errors import ConfigError

log = logging.getLogger(__name__)

MAX_WORKERS = 256
MAX_START_FAILURES = 5  # failed starts in a row of one child before the supervisor gives up
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0  # seconds before a child is started again
STABLE_AFTER = 60.0  # seconds of serving after which a child's next restart waits BACKOFF_FIRST again
STOP_MARGIN = 10.0  # seconds past the drain timeout before children still running are killed
EXIT_FAILED = 1
WORKER_FD_FLAG = "--worker-fd"


def check_workers(config: Config, origin: str) -> None:
    """Refuse more than one worker without Redis mode; ``origin`` names where the count came from."""
    workers = config.server.workers
    if workers > 1 and not config.cluster.enabled:
        raise ConfigError(
            f"{origin} needs Redis mode: each process would keep its own queue and results, so a result id "
            f"answered by one process would be unknown to the next; add --redis redis://HOST:PORT/DB "
            f'(or redis = "..." under [cluster] in the config file), or serve with --workers 1'
        )


def worker_argv(serve_argv: Sequence[str], fd: int) -> list[str]:
    """The command line of one child: the same ``serve`` arguments, one worker, and its link."""
    return [sys.executable, "-m", "reactr_wasm", *serve_argv, "--workers", "1", WORKER_FD_FLAG, str(fd)]


class _Child:
    """One worker slot: the process running in it now, its link, and how its starts went."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.link: asyncio.StreamWriter | None = None  # kept open while the process runs: closing it stops the child
        self.start_failures = 0
        self.backoff = BACKOFF_FIRST

    @property
    def code(self) -> int | None:
        return self.process.returncode if self.process is not None else None

    def signal(self, signum: signal.Signals) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    async def exited(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        if self.link is not None:
            self.link.close()
            self.link = None
        return code

    def __str__(self) -> str:
        pid = f" (pid {self.process.pid})" if self.process is not None else ""
        return f"worker {self.index}{pid}"


class Supervisor:
    """Starts ``config.server.workers`` children running ``serve_argv`` and keeps them running until stopped."""

    def __init__(self, config: Config, serve_argv: Sequence[str]) -> None:
        self.config = config
        self.serve_argv = list(serve_argv)
        self.children = [_Child(index) for index in range(1, config.server.workers + 1)]
        self.stopping = asyncio.Event()
        self.failure: int | None = None  # the exit code when children keep failing or had to be killed

    async def run(self) -> int:
        """Serve until SIGINT/SIGTERM (forwarded) or until children keep failing; the exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop, signum)
        try:
            first, *others = self.children
            if not await self._start(first):  # alone: a usage error is one line, from one child
                return 0 if self.stopping.is_set() else _failed(first.code)
            started = [True, *await asyncio.gather(*(self._start(child) for child in others))]
            if all(started) and not self.stopping.is_set():
                server = self.config.server
                log.info("%d workers serving on %s:%d", len(self.children), server.host, server.port)
            keeps = (self._keep(child, ready) for child, ready in zip(self.children, started, strict=True))
            await asyncio.gather(*keeps)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await self._stop_all()
        return self.failure or 0

    def _stop(self, signum: signal.Signals = signal.SIGTERM, *, reason: str | None = None) -> None:
        if not self.stopping.is_set():
            log.info("%s: stopping %d workers", reason or signal.Signals(signum).name, len(self.children))
            self.stopping.set()
            for child in self.children:
                child.signal(signum)

    async def _start(self, child: _Child) -> bool:
        """Start a process in ``child`` and wait until it listens (True) or exits (False)."""
        ours, theirs = socket.socketpair()
        with theirs:
            child.process = await asyncio.create_subprocess_exec(
                *worker_argv(self.serve_argv, theirs.fileno()), pass_fds=[theirs.fileno()], process_group=0,
                stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        if self.stopping.is_set():  # stopped while it was being started: _stop signalled the others
            child.signal(signal.SIGTERM)
        reader, child.link = await asyncio.open_unix_connection(sock=ours)
        if await reader.read(1) == b"1":
            child.start_failures = 0
            log.debug("%s listening", child)
            return True
        child.start_failures += 1
        log.debug("%s exited before it listened (%s)", child, _how(await child.exited()))
        return False

    async def _keep(self, child: _Child, ready: bool) -> None:
        """Wait for ``child``'s process to exit; unless stopping, start it again after a backoff."""
        while not self.stopping.is_set():
            if ready:
                began = time.monotonic()
                code = await child.exited()
                if self.stopping.is_set():
                    return
                if time.monotonic() - began > STABLE_AFTER:
                    child.backoff = BACKOFF_FIRST
                log.warning("%s exited unexpectedly (%s); starting it again in %.1fs", child, _how(code), child.backoff)
            elif child.start_failures >= MAX_START_FAILURES:
                log.error("%s failed to start %d times in a row (%s)", child, child.start_failures, _how(child.code))
                self.failure = _failed(child.code)
                self._stop(reason="children keep failing to start")
                return
            else:
                log.warning("%s failed to start (%s); trying again in %.1fs", child, _how(child.code), child.backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), child.backoff)
            child.backoff = min(child.backoff * 2, BACKOFF_MAX)
            if self.stopping.is_set():
                return
            ready = await self._start(child)

    async def _stop_all(self) -> None:
        """Stop every child still running (signalled once: a second signal would cut its drain short),
        wait for their drain, kill those past it."""
        running = [child for child in self.children if child.process is not None and child.code is None]
        if not self.stopping.is_set():
            self.stopping.set()
            for child in running:
                child.signal(signal.SIGTERM)
        if not running:
            return
        exits = [asyncio.ensure_future(child.exited()) for child in running]
        _, late = await asyncio.wait(exits, timeout=self.config.server.drain_timeout + STOP_MARGIN)
        for child in running:
            if child.code is None:
                log.error("%s did not stop within the drain timeout: killing it", child)
                child.signal(signal.SIGKILL)
                self.failure = self.failure or EXIT_FAILED
        if late:
            await asyncio.wait(late)


def _failed(code: int | None) -> int:
    """The supervisor's exit code for a child that failed with ``code``: the same, or 1 for a signal."""
    return code if code is not None and code > 0 else EXIT_FAILED


def _how(code: int | None) -> str:
    if code is None:
        return "still running"
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def supervise(config: Config, serve_argv: Sequence[str]) -> int:
    """Run the supervisor of ``config.server.workers`` children; returns the exit code.

    On asyncio's own loop whatever ``server.loop`` says: the children serve on
    that loop, the supervisor only waits (and uvloop cannot start a process in a
    process group of its own).
    """
    with asyncio.Runner() as runner:
        return runner.run(Supervisor(config, serve_argv).run())


# ---------------------------------------------------------------------------- the child's side


class SupervisorLink:
    """A child's end of its link: says the child listens; sets ``stop`` when the supervisor is gone."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(False)

    def listening(self) -> None:
        self.sock.send(b"1")

    def watch(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                data = self.sock.recv(64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(self.sock.fileno())
                if not stop.is_set():
                    log.warning("the supervisor is gone: stopping")
                    stop.set()

        loop.add_reader(self.sock.fileno(), readable)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


async def serve_worker(fd: int, serve: Callable[..., Coroutine[Any, Any, None]], *args: Any, **kwargs: Any) -> None:
    """Run ``serve(*args, **kwargs)`` as one child of a supervisor, linked to it by ``fd``."""
    link = SupervisorLink(fd)
    stop = asyncio.Event()
    link.watch(stop)
    try:
        await serve(*args, shutdown_event=stop, reuse_port=True, on_listening=link.listening, **kwargs)
    finally:
        link.close()
