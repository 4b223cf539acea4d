"""Callback signatures: ``X-Reactr-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The server signs each callback delivery with ``callbacks.secret``; a receiver
checks it with ``verify_signature`` (``reactr_wasm.client`` re-exports it).
Standard library only: the server's callbacks module, which needs aiohttp,
imports these from here, not the other way round.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Reactr-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Reactr-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds):
    ``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>``."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str, header: str, body: bytes, tolerance: float = 300.0, *, now: float | None = None
) -> bool:
    """Whether ``header`` (an ``X-Reactr-Signature`` value) signs ``body`` with ``secret``.

    ``body`` is the raw request body as received. False when the header is
    malformed, the HMAC differs (compared in constant time), or its timestamp
    is more than ``tolerance`` seconds away from ``now`` (default: the clock),
    which refuses replays of old deliveries. Never raises.
    """
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", []))


__all__ = ["SIGNATURE_HEADER", "sign", "verify_signature"]
