"""Errors a capability reports to the guest."""

from __future__ import annotations

from reactr_wasm.errors import ReactrError


class CapabilityError(ReactrError):
    """A capability call failed; ``str()`` is the exact text the guest receives."""
