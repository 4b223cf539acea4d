"""The two filters ``serve`` puts on the log handlers: secrets masked, floods of repeated warnings cut."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from reactr_wasm.config import parse_config
from reactr_wasm.server.log_repeats import RepeatFilter
from reactr_wasm.server.redaction import Redactor, secret_values

CONFIG = {
    "server": {"auth_tokens": ["token-one-1111", "env(SECOND_TOKEN)"]},
    "callbacks": {"secret": "hook-secret-3333"},
    "capabilities": {
        "grant": ["http", "cache"],
        "http": {"auth": {"api.example.com": "Bearer http-secret-4444"}},
        "cache": {"backend": "redis", "url": "redis://user:redis%2Fpass@localhost:6379/0"},
    },
    "runnables": {
        "fetch": {
            "http": {
                "auth": {"other.example.com": "Basic own-secret-5555"},
                "proxy": "http://me:proxy-pass-6666@127.0.0.1:3128",
            }
        }
    },
    "cluster": {"redis": "redis://:cluster-pass-7777@127.0.0.1:6379/0"},
}


@pytest.fixture
def output() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger writing through one real handler into a string, detached from the root."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test_log_filters")
    logger.propagate, logger.level = False, logging.DEBUG
    logger.addHandler(handler)
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_secret_values_are_every_configured_secret() -> None:
    config = parse_config(CONFIG, source="reactr.toml", base=Path("."), env={"SECOND_TOKEN": "token-two-2222"})
    assert set(secret_values(config)) == {
        "token-one-1111", "token-two-2222", "hook-secret-3333",
        "Bearer http-secret-4444", "http-secret-4444", "Basic own-secret-5555", "own-secret-5555",
        "redis://user:redis%2Fpass@localhost:6379/0", "redis%2Fpass", "redis/pass",
        "http://me:proxy-pass-6666@127.0.0.1:3128", "proxy-pass-6666",
        "redis://:cluster-pass-7777@127.0.0.1:6379/0", "cluster-pass-7777",
    }  # fmt: skip


def test_redactor_masks_secrets_and_credential_headers_everywhere(
    output: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = output
    config = parse_config(CONFIG, source="reactr.toml", base=Path("."), env={"SECOND_TOKEN": "token-two-2222"})
    handler.addFilter(Redactor(secret_values(config)))
    logger.warning("calling %s with %s", "api.example.com", "hook-secret-3333")  # in an argument
    logger.warning("parser: b'Authorization: Bearer s3cr3t\\x01'")  # a quoted header line
    logger.warning("headers: %s", {"Cookie": "session=c00kie", "Host": "example.com"})  # a header repr
    logger.warning("Set-Cookie: id=abc123; Path=/\nProxy-Authorization: Basic cHJveHk=")
    try:
        raise ValueError("bad token token-one-1111 in Authorization: Bearer x1y2z3")
    except ValueError:
        logger.exception("failed")  # in the traceback
    logger.info("GET /then/x?token=own-secret-5555 200", stack_info=True)
    text = stream.getvalue()
    for secret in ("hook-secret-3333", "s3cr3t", "c00kie", "abc123", "cHJveHk", "token-one-1111", "x1y2z3",
                   "own-secret-5555"):  # fmt: skip
        assert secret not in text, secret
    assert "calling api.example.com with ***" in text
    assert "b'Authorization: ***'" in text
    assert "'Cookie': '***', 'Host': 'example.com'" in text
    assert "Set-Cookie: ***\nProxy-Authorization: ***" in text
    assert "ValueError: bad token *** in Authorization: ***" in text
    assert "GET /then/x?token=*** 200" in text


def test_redactor_leaves_ordinary_text_alone(output: tuple[logging.Logger, io.StringIO, logging.Handler]) -> None:
    logger, stream, handler = output
    handler.addFilter(Redactor(["abc"]))  # too short to mask: it would mask words everywhere
    record_args = ("echo", "r1")
    logger.warning("request %s: job %s failed; missing Authorization header; abc", *record_args)
    assert stream.getvalue() == "WARNING request echo: job r1 failed; missing Authorization header; abc\n"


def test_repeats_pass_once_a_window_then_say_how_many_were_held_back(
    output: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = output
    now = [100.0]
    handler.addFilter(RepeatFilter(window=10, clock=lambda: now[0]))
    for _ in range(500):
        logger.error("socket.accept() out of system resource", exc_info=OSError(24, "Too many open files"))
    logger.warning("another message")  # not a repeat
    logger.info("access line")
    logger.info("access line")  # below WARNING: never held back
    now[0] += 12
    logger.error("socket.accept() out of system resource")
    lines = [line for line in stream.getvalue().splitlines() if line.startswith(("ERROR", "WARNING", "INFO"))]
    assert lines == [
        "ERROR socket.accept() out of system resource",
        "WARNING another message",
        "INFO access line",
        "INFO access line",
        "ERROR socket.accept() out of system resource [and 499 more like this in the last 12s, not shown]",
    ]
    assert stream.getvalue().count("OSError: [Errno 24]") == 1  # the held-back ones took their tracebacks along


def test_flush_tells_the_runs_still_held_back(output: tuple[logging.Logger, io.StringIO, logging.Handler]) -> None:
    logger, stream, handler = output
    now = [0.0]
    repeats = RepeatFilter(window=10, clock=lambda: now[0])
    handler.addFilter(repeats)
    for _ in range(3):
        logger.warning("connection limit reached (640 open)")
    now[0] = 4
    repeats.flush(handler)
    repeats.flush(handler)  # nothing left to tell
    assert stream.getvalue().splitlines() == [
        "WARNING connection limit reached (640 open)",
        "WARNING connection limit reached (640 open) [and 2 more like this in the last 4s, not shown]",
    ]
