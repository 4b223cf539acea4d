"""The Redis cache backend: the ``Cache`` protocol of ``capabilities/cache.py`` over a Redis server.

Keys live under a per-server namespace (``<namespace>:<key>``) so several hosts
can share one Redis without reading each other's entries. ``SET key value EX
ttl`` makes expiry Redis's job (no timer per key, fixing §8.14); ``ttl <= 0``
never expires, as in Reactr. A miss raises ``CacheMiss("key not found")`` like
``MemoryCache``, so guests see one text whatever the backend; an unreachable
or failing server raises ``CacheUnavailable`` with Reactr's ``failed to
client.Get: ...`` / ``failed to client.Set: ...`` wording.

The ``redis`` package is optional: it is imported when a ``RedisCache`` is
built, with an install hint if missing. The client is thread-safe (a
connection pool), so one ``RedisCache`` serves every worker thread.
"""

from __future__ import annotations

import importlib
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING

from reactr_wasm.capabilities.cache import CacheMiss
from reactr_wasm.capabilities.errors import CapabilityError
from reactr_wasm.errors import ConfigError

if TYPE_CHECKING:
    import redis


class CacheUnavailable(CapabilityError):
    """The cache server could not be reached, timed out, or answered with an error."""


def _import_redis() -> ModuleType:
    try:
        importlib.import_module("redis.backoff")
        importlib.import_module("redis.retry")
        return importlib.import_module("redis")
    except ImportError as error:
        raise ConfigError(
            "cache.redis: the Redis cache needs the 'redis' package (pip install 'reactr-wasm[redis]')"
        ) from error


class RedisCache:
    """A ``Cache`` stored in Redis at ``url`` (``redis://[user:password@]host:port/db``) under ``namespace``.

    ``timeout_seconds`` bounds connecting and every command. Raises
    ``ConfigError`` for a malformed URL or a missing ``redis`` package; the
    server is first contacted on use (see ``ping``).
    """

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_seconds: float = 5.0,
    ) -> None:
        module = _import_redis()
        self._errors: type[Exception] = module.exceptions.RedisError
        self._prefix = f"{namespace}:".encode() if namespace else b""
        try:
            self._client: redis.Redis = module.Redis.from_url(
                url,
                username=username,
                password=password,
                socket_timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
                # One quick retry covers a pooled connection the server closed; more would stall the guest.
                retry=module.retry.Retry(module.backoff.NoBackoff(), 1),
                health_check_interval=30,
            )
        except ValueError as error:
            raise ConfigError(f"cache.redis: invalid server URL: {error}") from error

    def _key(self, key: bytes) -> bytes:
        return self._prefix + key

    def set(self, key: bytes, value: bytes, ttl_seconds: int) -> None:
        """Store ``value`` under ``key`` for ``ttl_seconds`` (``<= 0``: no expiry). Raises ``CacheUnavailable``."""
        try:
            if ttl_seconds > 0:
                self._client.set(self._key(key), value, ex=ttl_seconds)
            else:
                self._client.set(self._key(key), value)
        except self._errors as error:
            raise CacheUnavailable(f"failed to client.Set: {error}") from error

    def get(self, key: bytes) -> bytes:
        """The value under ``key``. Raises ``CacheMiss`` when absent or expired, ``CacheUnavailable`` on failure."""
        try:
            value = self._client.get(self._key(key))
        except self._errors as error:
            raise CacheUnavailable(f"failed to client.Get: {error}") from error
        if value is None:
            raise CacheMiss("key not found")
        assert isinstance(value, bytes)  # decode_responses is off
        return value

    def ping(self) -> None:
        """Check the server answers; for start-up checks. Raises ``CacheUnavailable``."""
        try:
            self._client.ping()
        except self._errors as error:
            raise CacheUnavailable(f"failed to reach the Redis cache: {error}") from error

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def __enter__(self) -> RedisCache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
