"""Result stores: where the HTTP server keeps job results until clients read them.

Reactr's FaaS server kept an unbounded id -> Result map and deleted an entry on
its first read, so a response lost on the network lost the result, and a result
nobody fetched stayed forever (``reactr-abi.md`` §8.1). A store here:

- keeps a finished result readable for ``ttl`` seconds after it *finished*
  (reads do not remove it, so ``GET /then/{id}`` is safe to retry);
- keeps at most ``max_results`` entries: adding one more drops the oldest;
- expires on access and in ``sweep()``, which the server runs periodically,
  so results nobody fetches do not pile up;
- binds ``Idempotency-Key`` values to result ids for as long as the result
  is kept (a ``forget`` or an expiry releases the key too).

``ResultStore`` holds the rules; an implementation fills the private hooks
(``_get``, ``_store``, ``_delete``, ``_bind``, ``_unbind``) plus ``sweep``. The memory
store below is the default; a Redis one would keep a serialised outcome under
a key with a TTL and bind keys with ``SET NX``, and return a Result-like
object from ``_get``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from ..scheduler.job import Result

Clock = Callable[[], float]


class ResultStore:
    """Keeps job results by result id for a bounded time and count.

    Not thread-safe: the server uses it from its event loop only.
    """

    def __init__(self, *, ttl: float, max_results: int, clock: Clock = time.time) -> None:
        if ttl <= 0 or max_results < 1:
            raise ValueError(f"result store: ttl must be above 0 and max_results at least 1, got {ttl}, {max_results}")
        self.ttl = ttl
        self.max_results = max_results
        self._clock = clock  # wall clock: Result.finished is time.time()

    def expired(self, result: Result, now: float) -> bool:
        """A finished result is kept ``ttl`` seconds; an unfinished one is never expired."""
        finished = result.finished
        return finished is not None and now - finished >= self.ttl

    def put(self, result: Result, key: str | None = None) -> None:
        """Keep ``result`` (dropping the oldest entry at the bound), bound to ``key`` if given.

        ``result.discard()`` later drops it from the store too.
        """
        self._store(result, key)
        result.on_discard(self._discarded)

    def _discarded(self, result: Result) -> None:
        """``result.discard()`` was called, perhaps on another thread."""
        self.forget(result.id)

    def get(self, result_id: str) -> Result | None:
        """The result, or None when unknown, expired or forgotten."""
        result = self._get(result_id)
        if result is not None and self.expired(result, self._clock()):
            self._delete(result_id)
            return None
        return result

    def forget(self, result_id: str) -> Result | None:
        """Drop a result and its idempotency key; returns it if it was kept."""
        return self._delete(result_id)

    def bind(self, key: str, result_id: str) -> str | None:
        """Bind an idempotency ``key`` to ``result_id`` unless it is bound already.

        Returns None when bound now, or the id it was already bound to. The
        binding lasts as long as the result: ``put(result, key)`` must follow
        (or ``release(key)`` when the job could not be started).
        """
        return self._bind(key, result_id)

    def release(self, key: str) -> None:
        """Undo a ``bind`` whose job never started."""
        self._unbind(key)

    def sweep(self) -> int:
        """Drop every expired result; returns how many were dropped."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    # --- hooks for implementations --------------------------------------------------

    def _get(self, result_id: str) -> Result | None:
        raise NotImplementedError

    def _store(self, result: Result, key: str | None) -> None:
        raise NotImplementedError

    def _delete(self, result_id: str) -> Result | None:
        raise NotImplementedError

    def _bind(self, key: str, result_id: str) -> str | None:
        raise NotImplementedError

    def _unbind(self, key: str) -> None:
        raise NotImplementedError


class MemoryResultStore(ResultStore):
    """Results in a dict, in insertion order, so the oldest is dropped first at the bound.

    Dropping a result only removes the store's reference: a request already
    waiting on it still gets its value, and the job itself is not cancelled.
    """

    def __init__(self, ttl: float, max_results: int, *, clock: Clock = time.time) -> None:
        super().__init__(ttl=ttl, max_results=max_results, clock=clock)
        self._results: dict[str, tuple[Result, str | None]] = {}
        self._keys: dict[str, str] = {}  # idempotency key -> result id
        # Results discarded from any thread; forgotten on the store's own thread
        # at its next use (the dicts above are not shared across threads).
        self._discards: deque[str] = deque()

    def _discarded(self, result: Result) -> None:
        self._discards.append(result.id)

    def _forget_discarded(self) -> None:
        while self._discards:
            self._delete(self._discards.popleft())

    def __len__(self) -> int:
        self._forget_discarded()
        return len(self._results)

    def sweep(self) -> int:
        self._forget_discarded()
        now = self._clock()
        expired = [result_id for result_id, (result, _) in self._results.items() if self.expired(result, now)]
        for result_id in expired:
            self._delete(result_id)
        return len(expired)

    def _get(self, result_id: str) -> Result | None:
        self._forget_discarded()
        entry = self._results.get(result_id)
        return entry[0] if entry is not None else None

    def _store(self, result: Result, key: str | None) -> None:
        results = self._results
        if result.id not in results:
            while len(results) >= self.max_results:
                self._delete(next(iter(results)))
        results[result.id] = (result, key)
        if key is not None:
            self._keys[key] = result.id

    def _delete(self, result_id: str) -> Result | None:
        entry = self._results.pop(result_id, None)
        if entry is None:
            return None
        result, key = entry
        if key is not None and self._keys.get(key) == result_id:
            del self._keys[key]
        return result

    def _bind(self, key: str, result_id: str) -> str | None:
        bound = self._keys.get(key)
        # A bound id not (yet) in _results belongs to a job being started; an
        # expired one is dropped, with its key, by get().
        if bound is not None and bound != result_id and (bound not in self._results or self.get(bound) is not None):
            return bound
        self._keys[key] = result_id
        return None

    def _unbind(self, key: str) -> None:
        self._keys.pop(key, None)


__all__ = ["MemoryResultStore", "ResultStore"]
