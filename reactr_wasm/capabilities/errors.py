"""Errors a capability reports to the guest."""

from __future__ import annotations

from reactr_wasm.errors import ReactrError


class CapabilityError(ReactrError):
    """A capability call failed; ``str()`` is the exact text the guest receives."""


class RuleDenied(CapabilityError):
    """An HTTP rule refused the request; ``setting`` is what in the runnable's HTTP rules would allow it.

    ``str()`` is Reactr's refusal text (``failed to requestIsAllowed: ...``); the
    host call adds where the setting goes (``hints.rule_hint``).
    """

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting
