"""``proxy``, ``proxy_from_env``, ``ca_file`` and ``resolve``: the keys ``[capabilities.http]``
(and ``[runnables.NAME.http]``) share with ``[callbacks]``.

``EgressSettings`` is the base of ``HttpSettings`` and ``CallbackConfig``;
``EGRESS`` holds the rules of its keys, and ``finish_egress`` the checks that
need more than the value: the config file's folder (``ca_file`` is relative to
it and must load as a PEM bundle), the environment (``proxy_from_env`` reads
the proxy variables once, at load), and the two proxy keys together. What the
values mean is in ``capabilities/egress.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reactr_wasm.capabilities.egress import (
    Egress,
    ProxyEnvironment,
    load_ca_file,
    proxy_url,
    read_proxy_environment,
    resolve_pins,
)
from reactr_wasm.config.checks import MASK, Invalid, Reader, Rule, boolean, path_string, text


@dataclass
class EgressSettings:
    """How requests leave: a forward proxy, a private CA bundle, pinned addresses."""

    proxy: str | None = field(default=None, repr=False)  # http://[user:password@]host[:port]; secret
    proxy_from_env: bool = False  # HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read at load
    ca_file: Path | None = None  # PEM bundle added to the system's CAs
    resolve: dict[str, list[str]] = field(default_factory=dict)  # "host:port" -> addresses, as curl --resolve
    # The variables proxy_from_env read (load_config fills it; in code, use read_proxy_environment).
    proxy_environment: ProxyEnvironment | None = field(default=None, repr=False)

    def egress(self) -> Egress:
        """These settings as the clients use them; raises ValueError for a bad ``resolve`` entry."""
        env = self.proxy_environment if self.proxy_from_env and self.proxy is None else None
        return Egress(
            https_proxy=self.proxy or (env.https if env else None),
            http_proxy=self.proxy or (env.http if env else None),
            no_proxy=env.no_proxy if env else (),
            pins=resolve_pins(self.resolve),
            ca_file=self.ca_file,
        )


def _proxy(value: Any) -> str:
    try:
        return proxy_url(text(value))
    except ValueError as error:  # Invalid included: secret, so the value is never shown
        raise Invalid(getattr(error, "reason", str(error))) from None


def _resolve(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise Invalid('must be a table of "host:port" = "address" entries', value)
    try:
        pins = resolve_pins(value)
    except ValueError as error:
        raise Invalid(str(error)) from None
    return {f"{host}:{port}": list(addresses) for (host, port), addresses in pins}


EGRESS = {
    "proxy": Rule(_proxy, secret=True),
    "proxy_from_env": Rule(boolean),
    "ca_file": Rule(path_string),
    "resolve": Rule(_resolve),
}
INTERNAL = "proxy_environment"  # not a key of the file: never printed


def finish_egress(reader: Reader, key: str, values: dict[str, Any], base: Path) -> dict[str, Any]:
    """``values`` (one checked table) with ``ca_file`` as a loadable path and the proxy variables read.

    Problems are collected in ``reader`` under ``key.ca_file`` / ``key.proxy_from_env``.
    """
    if isinstance(values.get("ca_file"), str):
        path = base / os.path.expanduser(values["ca_file"])
        try:
            load_ca_file(path)
            values["ca_file"] = path
        except ValueError as error:
            reader.problem(f"{key}.ca_file", str(error))
            del values["ca_file"]
    if "proxy_from_env" in values:
        if values["proxy_from_env"] and "proxy" in values:
            reader.problem(f"{key}.proxy_from_env", "set either proxy or proxy_from_env, not both")
        values[INTERNAL] = None
        if values["proxy_from_env"]:
            try:
                values[INTERNAL] = read_proxy_environment(reader.env)
            except ValueError as error:
                reader.problem(f"{key}.proxy_from_env", str(error))
    return values


def redact_egress(values: dict[str, Any]) -> dict[str, Any]:
    """Plain data of a table holding egress keys: the proxy masked, the path a string, nothing internal."""
    shown = {name: value for name, value in values.items() if name != INTERNAL}
    if shown.get("proxy"):
        shown["proxy"] = MASK
    if isinstance(shown.get("ca_file"), Path):
        shown["ca_file"] = str(shown["ca_file"])
    return shown


def over_egress(overrides: dict[str, Any]) -> dict[str, Any]:
    """A runnable's keys to lay over ``[capabilities.http]``: choosing one proxy key clears the other."""
    merged = dict(overrides)
    if "proxy" in merged:
        merged.setdefault("proxy_from_env", False)
        merged.setdefault(INTERNAL, None)
    if merged.get("proxy_from_env"):
        merged.setdefault("proxy", None)
    return merged


__all__ = ["EGRESS", "EgressSettings", "finish_egress", "over_egress", "redact_egress"]
