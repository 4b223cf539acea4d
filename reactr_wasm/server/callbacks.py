"""Webhook callbacks: ``POST /do/{job}?callback=URL`` delivers the job's outcome to URL.

Each delivery is a ``POST`` of the result (design.md §2, Reactr's bodies):

- success: the result bytes (``bytes`` as they are, ``str`` as UTF-8, a
  request job's output with its Content-Type, anything else as JSON);
- error: ``job_err_result: <error text>``, where a runnable's own error is its
  JSON form, e.g. ``job_err_result: {"code":400,"message":"job failed"}``.

Headers: ``X-Reactr-Result-Id``, ``X-Reactr-Job``, ``X-Reactr-Outcome``
(``success`` or ``error``), ``X-Reactr-Attempt`` (this POST's try: 1, 2, ...),
``X-Reactr-Job-Attempt`` (the run of the job the outcome comes from: 1, or more
after a Redis-mode node died and another ran it again) and ``X-Reactr-Delivery-Id``
(names that run: the same on every try of one delivery). A 2xx answer
ends the delivery; connection errors, timeouts, 429 and 5xx are retried with
exponential backoff and jitter up to ``callbacks.attempts`` times, each
attempt bounded by ``callbacks.timeout`` seconds; any other status is final.
Redirects are not followed.

Signing: with ``callbacks.secret`` set, every attempt carries
``X-Reactr-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``.
A receiver verifies it by recomputing the HMAC over the timestamp, a dot and
the raw request body, comparing in constant time, and refusing timestamps
older than a few minutes (replays) - ``verify_signature`` (``reactr_wasm.signing``)
does exactly that.

Destinations pass the rules guest HTTP obeys (``capabilities/netrules.py``):
http(s) only (http refused unless ``allow_http``), the domain lists judged
as ``fetch_url`` judges them, and private/loopback/link-local/... addresses
refused unless ``allow_private``, checked on the URL up front (``check``)
and again on the address each connection actually uses.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from reactr_wasm.backends.records import ErrorKind, JobRecord
from reactr_wasm.capabilities.egress_connector import egress_connector, proxy_router
from reactr_wasm.capabilities.netrules import (
    DestinationRefused,
    PrivateDestination,
    canonical_url,
    check_url,
    domain_refusal,
    normal_host,
)
from reactr_wasm.config import CallbackConfig
from reactr_wasm.scheduler.values import OCTET
from reactr_wasm.signing import SIGNATURE_HEADER, sign, verify_signature

log = logging.getLogger(__name__)

ERROR_PREFIX = b"job_err_result: "
PRIVATE_HINT = "allow them with allow_private = true in [callbacks]"
# delivered: a 2xx answer; failed: refused, a final status, or every attempt failed;
# cancelled: still retrying when the server stopped; crashed: a bug in the delivery (logged)
DELIVERY_OUTCOMES = ("delivered", "failed", "cancelled", "crashed")


class CallbackRefused(ValueError):
    """The callback URL is malformed or its destination is not allowed."""


# --- bodies -------------------------------------------------------------------------------


def delivery_body(record: JobRecord) -> tuple[bytes, str, str]:
    """``(body, content type, outcome)`` of a finished job, as a callback sends it."""
    kind = record.error_kind
    if kind is None:
        return record.value, record.content_type or OCTET, "success"
    text = (record.error_text or "").encode()
    if kind is ErrorKind.UNENCODABLE:
        return b"job_err_result failed to Marshal result: " + text, OCTET, "error"
    return ERROR_PREFIX + text, OCTET, "error"


# --- delivery -----------------------------------------------------------------------------


def _shown(url: URL) -> str:
    """The URL without credentials or query, for logs."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


def _refusal(error: BaseException) -> DestinationRefused | None:
    """The rule refusal behind a client error (aiohttp wraps it, and drops its text)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DestinationRefused):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None


class Callbacks:
    """Delivers job outcomes to callback URLs and tracks deliveries in flight.

    ``check(url)`` before starting the job, ``deliver(url, record)`` once it finished;
    ``drain(timeout)`` on shutdown; ``close()`` at the end. Use on one event loop.
    """

    def __init__(self, config: CallbackConfig, *, resolver: AbstractResolver | None = None) -> None:
        self.config = config
        self._resolver = resolver  # None: the system's (getaddrinfo on a thread)
        self._egress = config.egress()  # proxy, CA bundle and resolve pins, shared with guest HTTP
        self._tasks: set[asyncio.Task[bool]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.outcomes = dict.fromkeys(DELIVERY_OUTCOMES, 0)  # finished deliveries by outcome, for metrics

    @property
    def pending(self) -> int:
        """Deliveries not finished yet."""
        return len(self._tasks)

    async def check(self, url: str) -> URL:
        """The URL to deliver to, or CallbackRefused naming the reason.

        An IPv4 host in a legacy form comes back as its dotted quad
        (``http://127.1/`` -> ``http://127.0.0.1/``), the domain rules judge
        that form, and a host that ends in a number but is no address is refused.
        """
        try:
            parsed = URL(url)
            canonical = canonical_url(parsed)
            self._check_domain(canonical)
            await check_url(  # on the URL as given: a refusal names both forms, "127.1 (127.0.0.1)"
                parsed,
                allow_http=self.config.allow_http,
                allow_private=self.config.allow_private,
                timeout=self.config.timeout,
                egress=self._egress,
            )
        except PrivateDestination as error:
            raise CallbackRefused(f"callback URL refused: {error}; {PRIVATE_HINT}") from None
        except (ValueError, DestinationRefused) as error:
            raise CallbackRefused(f"callback URL refused: {error}") from None
        return canonical

    def _check_domain(self, url: URL) -> None:
        """The domain rules of ``fetch_url``, on the callback's host name."""
        host = normal_host(url.raw_host or "")  # as the rules compare it, and as the refusal names it
        refusal = domain_refusal(host, self.config.allowed_domains, self.config.blocked_domains)
        if refusal == "blocked":
            raise DestinationRefused(f"{host}: the domain is blocked")
        if refusal is not None:
            raise DestinationRefused(f"{host}: the domain is not in callbacks.allowed_domains")

    def deliver(
        self, url: URL, record: JobRecord, *, job_attempt: int = 1, delivery_id: str | None = None
    ) -> asyncio.Task[bool]:
        """Post a finished job's ``record`` to ``url``; returns the delivery task.

        ``job_attempt`` and ``delivery_id`` name the run of the job the outcome
        comes from (``delivery_id`` default: ``<result id>/<job_attempt>``). The
        task's value is True when the receiver accepted it (2xx).
        """
        delivery_id = delivery_id or f"{record.id}/{job_attempt}"
        run = {"X-Reactr-Job-Attempt": str(job_attempt), "X-Reactr-Delivery-Id": delivery_id}
        task = asyncio.get_running_loop().create_task(self._deliver(url, record, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _deliver(self, url: URL, record: JobRecord, run: dict[str, str]) -> bool:
        outcome = "cancelled"
        try:
            delivered = await self._post(url, record, run)
            outcome = "delivered" if delivered else "failed"
            return delivered
        except Exception:  # a bug here must not vanish into an unretrieved task
            outcome = "crashed"
            log.exception("callback for job %s (result %s) to %s crashed", record.runnable, record.id, _shown(url))
            return False
        finally:
            self.outcomes[outcome] += 1

    async def _post(self, url: URL, record: JobRecord, run: dict[str, str]) -> bool:
        body, content_type, outcome = delivery_body(record)
        attempts = self.config.attempts
        for attempt in range(1, attempts + 1):
            headers = {
                "Content-Type": content_type,
                "X-Reactr-Result-Id": record.id,
                "X-Reactr-Job": record.runnable,
                "X-Reactr-Outcome": outcome,
                "X-Reactr-Attempt": str(attempt),
                **run,
            }
            if self.config.secret:
                headers[SIGNATURE_HEADER] = sign(self.config.secret, body, int(time.time()))
            problem, retry = await self._attempt(url, body, headers)
            if problem is None:
                log.info("callback for job %s (result %s) delivered to %s", record.runnable, record.id, _shown(url))
                return True
            log.warning(
                "callback for job %s (result %s) to %s failed (attempt %d of %d): %s",
                record.runnable,
                record.id,
                _shown(url),
                attempt,
                attempts,
                problem,
            )
            if not retry:
                return False
            if attempt < attempts:
                await asyncio.sleep(self._backoff(attempt))
        return False

    async def _attempt(self, url: URL, body: bytes, headers: dict[str, str]) -> tuple[str | None, bool]:
        """``(None, _)`` on success, else ``(what went wrong, whether a retry may help)``."""
        try:
            async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as response:
                status = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            refusal = _refusal(error)
            if refusal is not None:
                return str(refusal), False
            return (f"{type(error).__name__}: {error}" if str(error) else type(error).__name__), True
        if 200 <= status < 300:
            return None, False
        return f"HTTP {status}", status >= 500 or status == 429

    def _backoff(self, attempt: int) -> float:
        delay = min(self.config.backoff_max, self.config.backoff * 2 ** (attempt - 1))
        return random.uniform(delay / 2, delay)  # jitter spreads retries of many failed deliveries

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = egress_connector(
                self._egress,
                allow_private=self.config.allow_private,
                destinations=self._resolver or ThreadedResolver(),
                tls=self._egress.tls_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                headers={"User-Agent": "reactr-wasm callbacks"},
                middlewares=(proxy_router(self._egress),),
            )
        return self._session

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for deliveries in flight; cancel the rest.

        Returns True when every delivery finished.
        """
        tasks = list(self._tasks)
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=timeout) if timeout > 0 else (set(), set(tasks))
        if not pending:
            return True
        log.warning("%d callback deliveries still pending after %.1fs; cancelled", len(pending), timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return False

    async def close(self) -> None:
        """Cancel what is left and close the HTTP client."""
        await self.drain(0)
        if self._session is not None:
            await self._session.close()
            self._session = None


__all__ = [
    "DELIVERY_OUTCOMES",
    "SIGNATURE_HEADER",
    "CallbackRefused",
    "Callbacks",
    "delivery_body",
    "sign",
    "verify_signature",
]
