"""The cache capability: one key/value store shared by all runnables of a host."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Protocol


class CacheMiss(KeyError):
    """The key is absent or expired."""


class Cache(Protocol):
    def set(self, key: bytes, value: bytes, ttl_seconds: int) -> None: ...

    def get(self, key: bytes) -> bytes: ...


class MemoryCache:
    """A bounded LRU cache with per-key TTL (seconds; ``<= 0`` never expires).

    Expired keys are dropped lazily when read or evicted, so no timer runs per key.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()
        self._max_entries = max_entries
        self._clock = time.monotonic
        self._lock = threading.Lock()

    def set(self, key: bytes, value: bytes, ttl_seconds: int) -> None:
        expires = self._clock() + ttl_seconds if ttl_seconds > 0 else float("inf")
        with self._lock:
            self._entries[key] = (value, expires)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def get(self, key: bytes) -> bytes:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                raise CacheMiss("key not found")
            value, expires = entry
            if expires <= self._clock():
                del self._entries[key]
                raise CacheMiss("key not found")
            self._entries.move_to_end(key)
            return value

    def __len__(self) -> int:
        return len(self._entries)
