"""One pub/sub connection per process: Redis channels to handlers on the event loop.

Waiters (``GET /then``) and running jobs (cancel) are woken by messages, never by
polling. A message published while the connection was down is lost, so each
``(re)subscribed`` hook re-checks what it waits for once the subscription is back;
a hook registered with ``on`` runs after every (re)subscription, never before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable
from typing import Any

from reactr_wasm.backends.redis_link import RedisLink

log = logging.getLogger(__name__)

Handler = Callable[[bytes], None]
BACKOFF_FIRST, BACKOFF_MAX = 0.05, 2.0  # seconds between reconnection attempts, doubled each time
HEALTH_SECONDS = 5.0  # a quiet connection is PINGed this often; three periods without an answer: reconnect


class Events:
    """Channel handlers on one pub/sub connection, reconnected with backoff until ``close()``."""

    def __init__(self, link: RedisLink, *, health: float = HEALTH_SECONDS) -> None:
        self._link, self._health = link, health
        self._handlers: dict[bytes, Handler] = {}
        self._resubscribed: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()  # set while subscribed to every channel
        self._pubsub: Any = None
        self._closed = False
        self._renew = False  # the connection is being dropped to subscribe to one channel more
        self._dropping: asyncio.Task[None] | None = None
        self._heard = 0.0  # loop time of the last reply on the connection
        self._health_timer: asyncio.TimerHandle | None = None  # the next health check, while listening
        self._chores: set[asyncio.Task[Any]] = set()  # PINGs and closes the health check started

    @property
    def subscribed(self) -> bool:
        """Whether every channel is subscribed now: a message published from now on will arrive."""
        return self._ready.is_set()

    def on(self, channel: str, handler: Handler, resubscribed: Callable[[], None] | None = None) -> None:
        """Call ``handler(message)`` for each message on ``channel``, and ``resubscribed()`` after each subscription.

        Starts the connection (on the running loop) when it is not running yet.
        """
        self._handlers[channel.encode()] = handler
        if resubscribed is not None:
            self._resubscribed.append(resubscribed)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-events")
        else:  # a channel more: subscribe again, to all (rare: each user registers once, at start)
            self._reconnect()

    async def ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the subscription; whether it is there."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        return self._ready.is_set()

    async def close(self) -> None:
        """Stop listening and close the connection."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Python 3.11's wait_for (inside redis-py) can lose a cancellation: the connection
            # is closed under the task as well, and the task ends on its own after that.
            await self._disconnect()
            await asyncio.wait({task}, timeout=self._link.timeout)

    def _reconnect(self) -> None:
        """Drop the connection: the loop subscribes again, to every channel, at once."""
        self._ready.clear()
        self._renew = True
        self._dropping = asyncio.get_running_loop().create_task(self._disconnect())

    async def _disconnect(self) -> None:
        pubsub = self._pubsub
        if pubsub is not None and pubsub.connection is not None:
            with contextlib.suppress(Exception):
                await pubsub.connection.disconnect(nowait=True)

    async def _run(self) -> None:
        delay = BACKOFF_FIRST
        while not self._closed:
            pubsub = self._pubsub = self._link.subscriber.pubsub()
            try:
                await self._subscribe(pubsub)
                delay = BACKOFF_FIRST
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self._closed:
                    return
                if self._renew:  # dropped on purpose, for a new channel
                    self._renew = False
                    continue
                if not self._link.unavailable(error) and not isinstance(error, TimeoutError):
                    log.exception("Redis events: listening failed; subscribing again")
                else:
                    log.warning("Redis events: connection lost (%s); subscribing again in %.2f s", error, delay)
            finally:
                self._ready.clear()
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, BACKOFF_MAX)

    async def _subscribe(self, pubsub: Any) -> None:
        """Subscribe to every channel and wait for each confirmation; then the hooks re-check.

        A channel added meanwhile (``on`` while this connection was still being made, so
        there was none to drop) is subscribed too before the subscription counts as ready.
        """
        subscribed: set[bytes] = set()
        async with asyncio.timeout(self._link.timeout):
            while channels := set(self._handlers) - subscribed:
                await pubsub.subscribe(*channels)
                while channels:
                    message = await pubsub.get_message(timeout=self._link.timeout)
                    if message is not None and message["type"] == "subscribe":
                        channels.discard(message["channel"])
                        subscribed.add(message["channel"])
                    elif message is not None and message["type"] == "message":
                        self._dispatch(message["channel"], message["data"])
        self._ready.set()
        for hook in self._resubscribed:
            hook()

    async def _listen(self, pubsub: Any) -> None:
        """Dispatch messages; PING when quiet, and drop a connection that stopped answering.

        Messages are read raw from the connection (every job's ``done`` message comes here,
        on every node): redis-py's ``get_message`` costs a timeout, a retry wrapper and a
        dict per message. A timer (``_health_check``) keeps the connection honest instead.
        """
        loop = asyncio.get_running_loop()
        conn = pubsub.connection
        self._heard = loop.time()
        self._health_timer = loop.call_later(self._health, self._health_check, pubsub)
        try:
            while not self._closed:
                reply = await conn.read_response(timeout=math.inf, disconnect_on_error=False, push_request=True)
                self._heard = loop.time()
                if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                    self._dispatch(reply[1], reply[2])
        finally:
            if self._health_timer is not None:
                self._health_timer.cancel()
                self._health_timer = None

    def _health_check(self, pubsub: Any) -> None:
        """Every ``health`` s while listening: PING a quiet connection; close one silent for three periods."""
        loop = asyncio.get_running_loop()
        silent = loop.time() - self._heard
        if silent > 3 * self._health:
            log.warning("Redis events: no answer from Redis for %.0f s; subscribing again", silent)
            task = loop.create_task(pubsub.connection.disconnect(nowait=True))  # the read ends with an error
        elif silent >= self._health:
            task = loop.create_task(pubsub.ping())
        else:
            task = None
        if task is not None:
            self._chores.add(task)
            task.add_done_callback(self._chore_done)
        self._health_timer = loop.call_later(self._health, self._health_check, pubsub)

    def _chore_done(self, task: asyncio.Task[Any]) -> None:
        self._chores.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the read sees the connection's trouble too
            log.debug("Redis events: %s", task.exception())

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        handler = self._handlers.get(channel)
        if handler is not None:
            try:
                handler(data)
            except Exception:
                log.exception("Redis events: the handler of %r failed", channel)


__all__ = ["Events", "Handler"]
