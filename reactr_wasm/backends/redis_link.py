"""One Redis server as the Redis backends use it: a connection pool, the Lua scripts, one error.

Every multi-step change of the result store and the job queue is one Lua script
(``backends/lua/``), so it is atomic and one round trip. Each script is the
shared prelude ``records.lua`` (the store's key layout and its helpers) followed
by its own body, then the prelude's ``publish_dropped()`` (tells the nodes which
finished records the call dropped); it runs by SHA (``EVALSHA``) and is loaded again when the server
lost its script cache (a restart). Scripts build their keys from the namespace,
so this needs a single Redis server (or a primary with replicas), not Redis Cluster.

Every failure to reach or use Redis becomes ``BackendUnavailable``: the server
answers it with 503 and Retry-After, and the cluster worker backs off and retries.

The ``redis`` package is optional: imported when a link is made, with an install hint.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from types import ModuleType
from typing import TYPE_CHECKING, Any

from reactr_wasm.errors import ConfigError, ReactrError

if TYPE_CHECKING:
    import redis.asyncio

LUA = resources.files(__package__) / "lua"
PRELUDE = "records.lua"
MAX_BLOCK = 5.0  # seconds a blocking read may wait
INLINE_MAX = 8192  # bytes: a larger value is staged beside a script (``run(staged=...)``), not passed through Lua
STAGED_MS = 60_000  # a staged value the script never took (a call that failed midway) expires after this
WATCH_EVERY = 0.25  # seconds between two looks of a link's watchdog at its calls under way


class BackendUnavailable(ReactrError):
    """Redis could not be reached, timed out, or refused the command (loading, out of memory, read-only)."""


def import_redis() -> ModuleType:
    """The ``redis`` package with its asyncio client; raises ConfigError with an install hint when missing."""
    try:
        importlib.import_module("redis.asyncio")
        importlib.import_module("redis.backoff")
        return importlib.import_module("redis")
    except ImportError as error:
        raise ConfigError(
            "cluster.redis: Redis mode needs the 'redis' package (pip install 'reactr-wasm[redis]')"
        ) from error


class Script:
    """One Lua script: the prelude, then its body, then the prelude's ``publish_dropped()``; run by SHA."""

    def __init__(self, name: str) -> None:
        self.name = name
        body = (LUA / f"{name}.lua").read_text()
        self.text = (
            f"{(LUA / PRELUDE).read_text()}\nlocal function body()\n{body}\nend\n"
            "local reply = body()\npublish_dropped()\nreturn reply\n"
        )
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()


class RedisLink:
    """A connection pool to the Redis at ``url`` (``redis://[user:password@]host:port/db``, ``rediss://``, ``unix://``).

    ``timeout`` bounds connecting, waiting for one of the ``max_connections``
    pooled connections, and each command (``read`` adds its block time). Raises
    ConfigError for a malformed URL or a missing ``redis`` package; the server is
    first contacted on use. Close with ``close()``.
    """

    def __init__(self, url: str, *, timeout: float = 5.0, max_connections: int = 32) -> None:
        module = import_redis()
        self._errors: type[Exception] = module.exceptions.RedisError
        self._no_script: type[Exception] = module.exceptions.NoScriptError
        self._refused: type[Exception] = module.exceptions.ResponseError
        # One immediate retry, on a broken connection only (a pooled one the server closed, a
        # restart): a command that timed out may have run, and a second run is not always harmless.
        retry = module.asyncio.retry.Retry(
            module.backoff.NoBackoff(), 1, supported_errors=(module.exceptions.ConnectionError,)
        )
        pool = module.asyncio.BlockingConnectionPool
        options = {"socket_connect_timeout": timeout, "retry": retry, "timeout": timeout}
        try:
            # Bounded: a burst waits for a connection (up to `timeout`) rather than opening hundreds.
            # No socket_timeout: redis-py then wraps each send in a wait_for (a task per command,
            # ~80 µs of CPU per round trip measured); the link bounds each whole call instead.
            self.client: redis.asyncio.Redis = module.asyncio.Redis(
                connection_pool=pool.from_url(url, max_connections=max_connections, socket_timeout=None, **options)
            )
            # Blocking reads (XREADGROUP BLOCK), on connections of their own.
            self.blocking: redis.asyncio.Redis = module.asyncio.Redis(
                connection_pool=pool.from_url(url, max_connections=4, socket_timeout=None, **options)
            )
            # Pub/sub without retries: redis-py would reconnect and resubscribe unseen, and a
            # message published meanwhile would be missed; ``Events`` reconnects and re-checks.
            no_retry = module.asyncio.retry.Retry(module.backoff.NoBackoff(), 0)
            self.subscriber: redis.asyncio.Redis = module.asyncio.Redis(
                connection_pool=pool.from_url(
                    url, max_connections=2, socket_timeout=None, **(options | {"retry": no_retry})
                )
            )
        except ValueError as error:
            raise ConfigError(f"cluster.redis: invalid server URL: {error}") from error
        self.url, self.timeout = url, timeout
        self._scripts: dict[str, Script] = {}
        self._idle: list[Any] = []  # pooled connections kept for scripts
        self._pool: Any = self.client.connection_pool
        self._idle_blocking: list[Any] = []  # pooled connections kept for blocking reads
        self._ahead: tuple[Any, float] | None = None  # a connection whose read's reply is due, its block time
        self._blocking_pool: Any = self.blocking.connection_pool
        self._broken: type[Exception] = module.exceptions.ConnectionError
        # task making a call -> when the call is over time (time.monotonic), the task's cancellations then
        self._deadlines: dict[asyncio.Task[Any], tuple[float, int]] = {}
        self._late: set[asyncio.Task[Any]] = set()  # tasks whose call the watchdog cancelled
        self._watchdog: asyncio.TimerHandle | None = None
        self._watch_every = min(WATCH_EVERY, timeout / 4)

    def script(self, name: str) -> Script:
        """The script ``backends/lua/NAME.lua`` (read once)."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = Script(name)
        return script

    async def run(self, name: str, *args: Any, staged: Sequence[tuple[str, bytes]] = ()) -> Any:
        """Run script ``name`` with ``args`` (its ARGV; no KEYS). Raises BackendUnavailable.

        Scripts are the hot path (every submit and outcome), so they go straight to
        a redis-py ``Connection`` kept here (``send_command`` + ``read_response``), past the
        client's per-command layers (pool checkout, retry and telemetry wrappers, reply
        callbacks): measured ~90 µs of CPU per submit instead of ~190 µs, one in flight.
        The call is bounded by the link's watchdog, not a timeout of its own (``_watch``).

        ``staged``: (key, value) pairs set in the same write, just before the script, for
        values over INLINE_MAX: Redis copies and hashes every byte that crosses into Lua
        (see ``pipeline``), while a script that ``RENAME``s a staged key into place never
        touches its bytes. Each expires after STAGED_MS unless the script takes it; key
        names must be unique to the call (another call may stage at the same time).
        """
        script = self.script(name)
        return await self._on_kept(f"Redis script {name}", lambda conn: self._eval(conn, script, args, staged))

    async def pipeline(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Plain commands in one write, on a connection kept as ``run``'s; their raw replies, in order.

        For reads that need no script: a value that goes through a script is copied into
        Lua and hashed there byte by byte (measured ~1.2 µs of Redis CPU per KiB, ~80 µs
        for a 64 KiB record), where a plain ``HMGET`` hands it over as it is. A command
        Redis refuses fails the call once every reply is read. Raises BackendUnavailable.
        """
        replies: list[Any] = await self._on_kept(
            f"Redis {commands[0][0]}", lambda conn: self._pipelined(conn, commands)
        )
        return replies

    async def _pipelined(self, conn: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        await conn.send_packed_command(conn.pack_commands(commands))
        replies, refused = [], None
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except self._refused as error:  # a reply that is an error: the others are still to be read
                refused = refused or error
        if refused is not None:
            raise refused
        return replies

    async def _on_kept(self, what: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
        """``work(connection)`` on a kept connection, bounded by the watchdog, sent again once on a broken one."""
        task = self._watch(self.timeout)
        try:
            conn = self._idle.pop() if self._idle else await self._pool.get_connection()
            try:
                return await work(conn)
            except self._broken:  # a connection the server closed (a restart): once more, connecting again
                return await work(conn)
            finally:
                self._idle.append(conn)  # a connection redis-py closed on an error connects again on its next use
        except self._errors as error:
            raise BackendUnavailable(f"{what} failed: {error}") from error
        except asyncio.CancelledError:
            if self._timed_out(task):  # redis-py closed the connection under the command: no answer can be misread
                raise BackendUnavailable(f"{what}: no answer within {self.timeout:g} s") from None
            raise
        finally:
            self._unwatch(task)

    async def _eval(self, conn: Any, script: Script, args: tuple[Any, ...], staged: Sequence[tuple[str, bytes]]) -> Any:
        call = ("EVALSHA", script.sha, 0, *args)
        try:
            if not staged:
                await conn.send_command(*call)
                return await conn.read_response()
            # One write; every reply is read, and a refused SET is raised first (the script then wrote nothing).
            sets = [("SET", key, value, "PX", STAGED_MS) for key, value in staged]
            return (await self._pipelined(conn, [*sets, call]))[-1]
        except self._no_script:  # a restarted or flushed server: EVAL caches it again (staged values are set)
            await conn.send_command("EVAL", script.text, 0, *args)
            return await conn.read_response()

    async def call(self, *args: Any, **options: Any) -> Any:
        """One Redis command. Raises BackendUnavailable."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self.client.execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except self._errors as error:
            raise BackendUnavailable(f"Redis {args[0]} failed: {error}") from error
        except TimeoutError:
            raise BackendUnavailable(f"Redis {args[0]}: no answer within {self.timeout:g} s") from None

    async def read(self, *args: Any, block: float) -> Any:
        """A command that blocks up to ``block`` seconds (at most MAX_BLOCK) on its own connection pool.

        Its reply comes raw, as the server sent it (no redis-py reply callback): the
        consumer's read is on every job's path, so it goes to a kept ``Connection`` as
        ``run`` does (measured ~60 µs of CPU less per job, one in flight).
        """
        if not 0 <= block <= MAX_BLOCK:
            raise ValueError(f"a blocking read waits 0 to {MAX_BLOCK} s, not {block}")
        task = self._watch(self.timeout + block)
        try:
            conn = self._idle_blocking.pop() if self._idle_blocking else await self._blocking_pool.get_connection()
            try:
                return await _command(conn, args)
            except self._broken:  # a connection the server closed (a restart): once more, connecting again
                return await _command(conn, args)
            finally:
                self._idle_blocking.append(conn)
        except self._errors as error:
            raise BackendUnavailable(f"Redis {args[0]} failed: {error}") from error
        except asyncio.CancelledError:
            if self._timed_out(task):  # redis-py closed the connection under the command: no answer can be misread
                raise BackendUnavailable(f"Redis {args[0]}: no answer within {self.timeout + block:g} s") from None
            raise
        finally:
            self._unwatch(task)

    async def run_then_read(self, name: str, args: tuple[Any, ...], command: tuple[Any, ...], *, block: float) -> Any:
        """Run script ``name`` with ``args``, and send blocking read ``command`` in the same write.

        Returns the script's reply; ``read_ahead`` takes the read's (until then, ``ahead``
        is true). For a consumer that reads again as soon as a script decided about its last
        read: one write to Redis instead of two. Raises BackendUnavailable (the read may
        still be ahead then: see ``ahead``).
        """
        if self._ahead is not None:
            raise RuntimeError("a read is ahead already: take its reply with read_ahead() first")
        if not 0 <= block <= MAX_BLOCK:
            raise ValueError(f"a blocking read waits 0 to {MAX_BLOCK} s, not {block}")
        script = self.script(name)
        task = self._watch(self.timeout)
        conn = None
        try:
            conn = self._idle_blocking.pop() if self._idle_blocking else await self._blocking_pool.get_connection()
            packed = conn.pack_commands([("EVALSHA", script.sha, 0, *args), command])
            try:
                await conn.send_packed_command(packed)
            except self._broken:  # a connection the server closed (a restart): once more, connecting again
                await conn.send_packed_command(packed)
            self._ahead = (conn, block)
            try:
                return await conn.read_response()
            except self._no_script:  # a restarted or flushed server: the read is ahead all the same
                pass
        except self._errors as error:
            raise BackendUnavailable(f"Redis script {name} failed: {error}") from error
        except asyncio.CancelledError:
            if self._timed_out(task):
                raise BackendUnavailable(f"Redis script {name}: no answer within {self.timeout:g} s") from None
            raise
        finally:
            self._unwatch(task)
            if conn is not None and (self._ahead is None or not conn.is_connected):
                self._ahead = None
                self._idle_blocking.append(conn)
        return await self.run(name, *args)  # EVAL caches it again

    @property
    def ahead(self) -> bool:
        """Whether a read sent by ``run_then_read`` waits for ``read_ahead`` to take its reply."""
        return self._ahead is not None

    async def read_ahead(self) -> Any:
        """The reply of the read ``run_then_read`` sent (raw, as ``read``'s). Raises BackendUnavailable."""
        if self._ahead is None:
            raise RuntimeError("no read is ahead")
        (conn, block), self._ahead = self._ahead, None
        task = self._watch(self.timeout + block)
        try:
            return await conn.read_response()
        except self._errors as error:
            raise BackendUnavailable(f"Redis read failed: {error}") from error
        except asyncio.CancelledError:
            if self._timed_out(task):
                raise BackendUnavailable(f"Redis read: no answer within {self.timeout + block:g} s") from None
            raise
        finally:
            self._unwatch(task)
            self._idle_blocking.append(conn)

    def _watch(self, seconds: float) -> asyncio.Task[Any]:
        """Bound the call the running task is about to make to ``seconds``; that task.

        One timer for the link, looking every WATCH_EVERY s (at most a quarter of the
        timeout) at the calls under way and cancelling the task of one over its time,
        rather than an ``asyncio.timeout`` per call (a timer armed and cancelled each
        time: ~10 µs of CPU per call, measured). The call then raises BackendUnavailable
        (``_timed_out``), as it did with a timeout of its own. A task makes one call at a time.
        """
        task = asyncio.current_task()
        assert task is not None
        self._deadlines[task] = (time.monotonic() + seconds, task.cancelling())
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(self._watch_every, self._check)
        return task

    def _unwatch(self, task: asyncio.Task[Any]) -> None:
        del self._deadlines[task]
        self._late.discard(task)

    def _timed_out(self, task: asyncio.Task[Any]) -> bool:
        """After a CancelledError in ``task``'s call: whether the watchdog cancelled it (then it is uncancelled)."""
        return task in self._late and task.uncancel() <= self._deadlines[task][1]

    def _check(self) -> None:
        self._watchdog = None
        now = time.monotonic()
        for task, (deadline, _) in self._deadlines.items():
            if deadline <= now and task not in self._late:
                self._late.add(task)
                task.cancel()
        if self._deadlines:
            self._watchdog = asyncio.get_running_loop().call_later(self._watch_every, self._check)

    def unavailable(self, error: BaseException) -> bool:
        """Whether ``error`` is a Redis failure (for code that talks to the client directly)."""
        return isinstance(error, (self._errors, BackendUnavailable))

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._pool.release(conn)
        if self._ahead is not None:
            self._idle_blocking.append(self._ahead[0])
            self._ahead = None
        idle, self._idle_blocking = self._idle_blocking, []
        for conn in idle:
            await self._blocking_pool.release(conn)
        await self.client.aclose(close_connection_pool=True)  # a pool given to a client is not closed with it
        await self.blocking.aclose(close_connection_pool=True)
        await self.subscriber.aclose(close_connection_pool=True)


async def _command(conn: Any, args: tuple[Any, ...]) -> Any:
    await conn.send_command(*args)
    return await conn.read_response()


__all__ = ["INLINE_MAX", "BackendUnavailable", "RedisLink", "Script", "import_redis"]
