"""Log floods cut short: of a run of identical warnings, one a window passes, and the next says how many did not.

A server under attack (thousands of slow clients, a full descriptor table,
malformed requests) would otherwise write the same warning, often with a
traceback, thousands of times a second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

WINDOW = 10.0  # seconds a repeated warning stays held back
MAX_KEYS = 1000  # messages remembered; beyond it, those past their window are forgotten
_SUMMARY = "_reactr_repeat_summary"  # marks the records flush() writes


class RepeatFilter(logging.Filter):
    """Drops a WARNING-or-worse record repeating one passed less than ``window`` seconds ago.

    Repeats are the same logger, level and formatted message. The first one
    passed after the window tells how many were dropped since; ``flush`` tells
    it for runs still held back. Use one filter per handler: a handler filters
    each record once, two handlers sharing a filter would see every record twice.
    """

    def __init__(self, window: float = WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window, self._clock = window, clock
        self._passed: dict[tuple[str, int, str], float] = {}  # when each message last passed
        self._dropped: dict[tuple[str, int, str], int] = {}  # how many were dropped since

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or hasattr(record, _SUMMARY):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: the handler reports it
            return True
        key = (record.name, record.levelno, message)
        now = self._clock()
        passed = self._passed.get(key)
        if passed is not None and now - passed < self.window:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        dropped = self._dropped.pop(key, 0)
        if dropped and passed is not None:
            record.msg, record.args = _summary(message, dropped, now - passed), None
        self._passed[key] = now
        if len(self._passed) > MAX_KEYS:
            self._forget(now)
        return True

    def flush(self, handler: logging.Handler) -> None:
        """Write to ``handler`` how many of each message are held back, and forget them."""
        now = self._clock()
        for (name, level, message), dropped in self._dropped.items():
            record = logging.makeLogRecord({
                "name": name, "levelno": level, "levelname": logging.getLevelName(level),
                "msg": _summary(message, dropped, now - self._passed.get((name, level, message), now)),
                _SUMMARY: True,
            })  # fmt: skip
            handler.handle(record)
        self._dropped.clear()

    def _forget(self, now: float) -> None:
        for key, passed in list(self._passed.items()):
            if now - passed >= self.window and key not in self._dropped:
                del self._passed[key]


def _summary(message: str, dropped: int, seconds: float) -> str:
    return f"{message} [and {dropped} more like this in the last {seconds:.0f}s, not shown]"
