"""Query parameters of the job routes that are flags: ``?then=``."""

from __future__ import annotations

from collections.abc import Mapping

from reactr_wasm.server.responses import HTTPError

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})


def flag(params: Mapping[str, str], name: str) -> bool:
    """The boolean query parameter ``name``, in any case; absent is False.

    Raises HTTPError 400 naming the accepted values for anything else (an
    empty value too), so a typo never silently means "no".
    """
    text = params.get(name)
    if text is None:
        return False
    if text.lower() in TRUE:
        return True
    if text.lower() in FALSE:
        return False
    raise HTTPError(400, f"{name} must be true, 1, yes or on (or false, 0, no, off), got {text!r}")


__all__ = ["FALSE", "TRUE", "flag"]
