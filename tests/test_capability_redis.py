"""The Redis cache backend against a real redis-server started by the fixture."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from reactr_wasm.capabilities.cache import Cache, CacheMiss, MemoryCache
from reactr_wasm.capabilities.redis_cache import CacheUnavailable, RedisCache
from reactr_wasm.errors import ConfigError
from tests.services import Service, free_port, redis_server


@pytest.fixture(scope="module")
def server() -> Iterator[Service]:
    with redis_server() as service:
        yield service


@pytest.fixture
def raw(server: Service) -> Iterator[redis.Redis]:
    """A plain client that sees every key, to check what the cache really stores."""
    client = redis.Redis.from_url(server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def cache(server: Service, raw: redis.Redis) -> Iterator[RedisCache]:
    with RedisCache(server.url, "server-a") as redis_cache:
        yield redis_cache


def test_set_then_get_round_trips_raw_bytes(cache: RedisCache) -> None:
    value = bytes(range(256)) * 10
    cache.set(b"important", value, 0)
    assert cache.get(b"important") == value
    cache.set(b"\x00\xffbinary key", b"", 0)
    assert cache.get(b"\x00\xffbinary key") == b""


def test_a_later_set_replaces_the_value(cache: RedisCache) -> None:
    cache.set(b"name", b"first", 0)
    cache.set(b"name", b"second", 0)
    assert cache.get(b"name") == b"second"


def test_miss_raises_cache_miss_like_the_memory_cache(cache: RedisCache) -> None:
    for backend in (cache, MemoryCache()):
        with pytest.raises(CacheMiss) as caught:
            backend.get(b"absent")
        assert caught.value.args == ("key not found",)


def test_keys_are_stored_under_the_namespace(cache: RedisCache, raw: redis.Redis) -> None:
    cache.set(b"name", b"value", 0)
    assert raw.keys() == [b"server-a:name"]
    assert raw.ttl(b"server-a:name") == -1  # ttl 0: no expiry


def test_namespaces_isolate_servers(cache: RedisCache, server: Service) -> None:
    with RedisCache(server.url, "server-b") as other:
        cache.set(b"name", b"from a", 0)
        other.set(b"name", b"from b", 0)
        assert cache.get(b"name") == b"from a"
        assert other.get(b"name") == b"from b"
        cache.set(b"only-a", b"x", 0)
        with pytest.raises(CacheMiss):
            other.get(b"only-a")


def test_ttl_is_in_seconds_and_expires(cache: RedisCache, raw: redis.Redis) -> None:
    cache.set(b"short", b"v", 1)
    cache.set(b"never", b"v", -5)
    assert raw.ttl(b"server-a:short") == 1
    assert raw.ttl(b"server-a:never") == -1
    assert cache.get(b"short") == b"v"
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            cache.get(b"short")
        except CacheMiss:
            break
        time.sleep(0.05)
    else:
        pytest.fail("key with a 1 s TTL still present after 3 s")
    assert cache.get(b"never") == b"v"


def test_a_later_set_without_ttl_clears_the_earlier_expiry(cache: RedisCache, raw: redis.Redis) -> None:
    cache.set(b"k", b"old", 1)
    cache.set(b"k", b"new", 0)
    assert raw.ttl(b"server-a:k") == -1
    assert cache.get(b"k") == b"new"


def test_shared_by_worker_threads(cache: RedisCache) -> None:
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for n in range(50):
                key = f"t{index}-{n}".encode()
                cache.set(key, key * 3, 0)
                assert cache.get(key) == key * 3
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures, failures[:3]


def test_unreachable_server_raises_cache_unavailable() -> None:
    started = time.monotonic()
    with RedisCache(f"redis://127.0.0.1:{free_port()}/0", "ns", timeout_seconds=1) as dead:
        with pytest.raises(CacheUnavailable, match=r"^failed to client\.Set: .*(refused|connect)"):
            dead.set(b"k", b"v", 0)
        with pytest.raises(CacheUnavailable, match=r"^failed to client\.Get: "):
            dead.get(b"k")
        with pytest.raises(CacheUnavailable, match="failed to reach the Redis cache"):
            dead.ping()
    assert time.monotonic() - started < 5


def test_server_going_away_is_cache_unavailable() -> None:
    with redis_server() as service:
        cache = RedisCache(service.url, "ns", timeout_seconds=1)
        cache.set(b"k", b"v", 0)
        assert cache.get(b"k") == b"v"
    try:  # the server is stopped now; the pooled connection is dead
        with pytest.raises(CacheUnavailable, match=r"^failed to client\.Get: "):
            cache.get(b"k")
    finally:
        cache.close()


def test_password_protected_server() -> None:
    with redis_server(password="s3cret") as service:
        with RedisCache(service.url, "ns", password="s3cret") as cache:
            cache.set(b"k", b"v", 0)
            assert cache.get(b"k") == b"v"
        for password in ("wrong", None):
            with RedisCache(service.url, "ns", password=password, timeout_seconds=1) as cache:
                with pytest.raises(CacheUnavailable) as caught:
                    cache.get(b"k")
                assert "s3cret" not in str(caught.value)
                assert "wrong" not in str(caught.value)


def test_invalid_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"cache\.redis: invalid server URL"):
        RedisCache("http://127.0.0.1:1", "ns")


def test_satisfies_the_cache_protocol(cache: RedisCache) -> None:
    backend: Cache = cache
    backend.set(b"p", b"q", 0)
    assert backend.get(b"p") == b"q"
