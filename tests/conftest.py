"""Shared fixtures: real Wasm modules compiled from sources in the repository, a redis-server
per test module, and Redis job queues on it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import wasmtime

from reactr_wasm import Reactr, WasmEngine
from reactr_wasm.capabilities.cache import MemoryCache

if TYPE_CHECKING:
    from reactr_wasm.cluster.queue import JobQueue
    from tests.services import Service

Node = Callable[..., Awaitable["JobQueue"]]

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "tests" / "modules"
RUNNABLES = ROOT / "runnables"


def wat_module(name: str) -> bytes:
    """The binary of ``tests/modules/NAME.wat``, compiled from its source."""
    return bytes(wasmtime.wat2wasm((MODULES / f"{name}.wat").read_text()))


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    """A redis-server of this test module's own (no password, no persistence), stopped after it."""
    from tests.services import redis_server  # services.py imports this module

    with redis_server() as running:
        yield running


@pytest.fixture
async def node(service: Service) -> AsyncIterator[Node]:
    """``await node(name, visibility_timeout=30, max_deliveries=5, max_results=1000, clock=time.time)``:
    a Redis job queue as one node sees it (a consumer, store and link of its own); every node
    made by one test shares a namespace on ``service``."""
    from reactr_wasm.backends.redis_link import RedisLink
    from reactr_wasm.backends.redis_results import RedisResultStore
    from reactr_wasm.cluster.queue import JobQueue
    from reactr_wasm.scheduler.job import new_result_id

    namespace = f"q-{new_result_id()}"
    stores: list[RedisResultStore] = []

    async def make(
        name: str,
        *,
        visibility_timeout: float = 30,
        max_deliveries: int = 5,
        max_results: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> JobQueue:
        store = RedisResultStore(RedisLink(service.url), namespace=namespace, ttl=60, max_results=max_results,
                                 max_bytes=1 << 30, clock=clock)  # fmt: skip
        stores.append(store)
        return JobQueue(store, consumer=name, visibility_timeout=visibility_timeout, max_deliveries=max_deliveries)

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
def engine() -> Iterator[WasmEngine]:
    with WasmEngine(cache=MemoryCache()) as wasm_engine:
        yield wasm_engine


@pytest.fixture
def reactr(engine: WasmEngine) -> Iterator[Reactr]:
    with Reactr(engine=engine) as scheduler:
        yield scheduler


@pytest.fixture
def module_dir(tmp_path: Path) -> Path:
    """A folder of test modules as .wasm files, for server and reload tests."""
    folder = tmp_path / "runnables"
    folder.mkdir()
    for source in MODULES.glob("*.wat"):
        try:
            (folder / f"{source.stem}.wasm").write_bytes(wat_module(source.stem))
        except Exception:
            continue
    return folder


@pytest.fixture
async def start(reactr: Reactr, server_config: Any) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await start(config=None)``: the app over ``reactr`` on a loopback port, as a test client.

    Test modules define the ``server_config`` fixture used when no config is
    given. Clients are closed before the scheduler.
    """
    from aiohttp.test_utils import TestClient, TestServer

    from reactr_wasm.server.app import create_app

    clients: list[TestClient[Any, Any]] = []

    async def start_client(config: Any = None) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(
            TestServer(create_app(reactr, config or server_config), host="127.0.0.1")
        )
        await client.start_server()
        clients.append(client)
        return client

    yield start_client
    for client in reversed(clients):
        await client.close()
