"""How outbound HTTP leaves the host: a forward proxy, a private CA bundle, pinned addresses.

Shared by guest HTTP (``fetch_url``, ``graphql_query``) and webhook callbacks:
the config turns ``proxy``/``proxy_from_env``, ``ca_file`` and ``resolve`` into
one ``Egress`` and both clients ask it the same questions - which proxy (if
any) carries a request, which addresses a ``host:port`` is pinned to, which
certificates are trusted. The aiohttp side is ``egress_connector.py``; this
module is plain data and imports no network library.

Decisions (the README says the same):

- A proxy is an ``http://[user:password@]host[:port]`` URL (port 80 when
  left out). HTTPS goes through it as a ``CONNECT host:port`` tunnel (TLS is
  still verified end to end against the hostname), plain HTTP as an
  absolute-form request. The proxy is named by the operator and trusted: its
  own address may be private.
- ``proxy_from_env`` reads ``https_proxy``/``HTTPS_PROXY`` (for https URLs),
  ``http_proxy``/``HTTP_PROXY`` (for http URLs) and ``no_proxy``/``NO_PROXY``,
  the lower-case name first, as curl and Python do; an empty variable is
  unset. ``ALL_PROXY`` is not read.
- ``NO_PROXY`` (``bypasses_proxy``): comma-separated entries; ``*`` alone
  bypasses the proxy for every host; an IP address or CIDR block matches URLs
  whose host is an address in it (no DNS lookup); any other entry is a domain
  that matches itself and its subdomains (a leading ``.`` or ``*.`` changes
  nothing), for one port only when written ``name:port``. Case and a trailing
  dot are ignored.
- ``resolve`` (curl's ``--resolve``): ``"host:port" = "address"`` (or a list
  of addresses, tried in order) sends connections for that host and port to
  those addresses instead of DNS; the name stays in Host, SNI and certificate
  checks. A pinned ``host:port`` never goes through the proxy: it is a direct
  route chosen by the operator. The addresses still pass the address rules.
- ``ca_file`` adds a PEM bundle to the system's trusted CAs (it does not
  replace them: guests reach public and private services alike).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reactr_wasm.capabilities.netrules import literal_address, normal_host

Pins = tuple[tuple[tuple[str, int], tuple[str, ...]], ...]


@dataclass(frozen=True)
class ProxyEnvironment:
    """The proxy variables as read at start: a proxy URL per scheme, and the NO_PROXY entries."""

    https: str | None = field(default=None, repr=False)  # may hold a password
    http: str | None = field(default=None, repr=False)
    no_proxy: tuple[str, ...] = ()


def _variable(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """``(name as set, value)`` of the lower-case variable, else the upper-case one; empty counts as unset."""
    for spelled in (name.lower(), name.upper()):
        value = env.get(spelled, "").strip()
        if value:
            return spelled, value
    return None


def read_proxy_environment(env: Mapping[str, str]) -> ProxyEnvironment:
    """The proxy settings ``env`` holds; raises ValueError (``"HTTPS_PROXY: reason"``) for a bad URL."""
    proxies: dict[str, str | None] = {}
    for scheme in ("https", "http"):
        found = _variable(env, f"{scheme}_proxy")
        if found is None:
            proxies[scheme] = None
            continue
        name, value = found
        try:
            proxies[scheme] = proxy_url(value)
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    no_proxy = _variable(env, "no_proxy")
    entries = tuple(entry.strip() for entry in (no_proxy[1] if no_proxy else "").split(",") if entry.strip())
    return ProxyEnvironment(proxies["https"], proxies["http"], entries)


def proxy_url(value: str) -> str:
    """A proxy as ``http://[user:password@]host[:port]`` (no scheme: ``http://``); raises ValueError.

    The reasons never repeat the value: it may hold a password.
    """
    text = value.strip()
    if "://" not in text:
        text = f"http://{text}"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("must be a URL like http://proxy.example:3128 (the port is not a number 0-65535)") from None
    if parts.scheme.lower() != "http":
        raise ValueError(f"must be an http:// proxy URL; {parts.scheme}:// proxies are not supported")
    if not parts.hostname:
        raise ValueError("must name the proxy's host, like http://proxy.example:3128")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be http://[user:password@]host[:port], with no path or query")
    return text


def resolve_entry(key: str, value: Any) -> tuple[tuple[str, int], tuple[str, ...]]:
    """One ``"host:port" = "address"`` (or a list of addresses) entry, checked; raises ValueError."""
    host, colon, port_text = key.rpartition(":")
    host = normal_host(host)
    if not colon or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f'{key!r}: the key must be "host:port" with a port 1-65535, like "api.internal:443"')
    if host.startswith("[") or literal_address(host) is not None:
        raise ValueError(f"{key!r}: the host must be a name; an IP address needs no resolve entry")
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(item, str) for item in values):
        raise ValueError(f"{key!r}: the value must be an IP address or a list of them")
    addresses: list[str] = []
    for item in values:
        try:
            addresses.append(str(ipaddress.ip_address(item.strip().removeprefix("[").removesuffix("]"))))
        except ValueError:
            raise ValueError(f"{key!r}: {item!r} is not an IP address (write it as 10.0.0.5 or fd00::5)") from None
    return (host, int(port_text)), tuple(dict.fromkeys(addresses))


def resolve_pins(table: Mapping[str, Any]) -> Pins:
    """Every entry of a ``resolve`` table (``resolve_entry``); raises ValueError naming the first bad one."""
    return tuple(resolve_entry(key, value) for key, value in table.items())


def bypasses_proxy(no_proxy: Sequence[str], host: str, port: int) -> bool:
    """Whether a NO_PROXY list sends ``host:port`` direct (the rules are in the module docstring)."""
    host = normal_host(host.removeprefix("[").removesuffix("]"))
    literal = literal_address(host)
    address = ipaddress.ip_address(literal) if literal is not None else None
    for raw in no_proxy:
        entry = raw.strip().lower()
        if entry == "*":
            return True
        if address is not None and _address_entry_matches(entry, address):
            return True
        name, colon, wanted = entry.rpartition(":") if entry.count(":") == 1 else ("", "", "")
        if not colon or not wanted.isdigit():
            name, wanted = entry, ""
        elif int(wanted) != port:
            continue
        name = normal_host(name.removeprefix("*").removeprefix("."))
        if name and (host == name or host.endswith(f".{name}")):
            return True
    return False


def _address_entry_matches(entry: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return address in ipaddress.ip_network(entry.removeprefix("[").removesuffix("]"), strict=False)
    except ValueError:
        return False  # not an address entry: a domain


def load_ca_file(path: Path) -> None:
    """Check that ``path`` is a readable PEM bundle with at least one certificate; raises ValueError."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except OSError as error:
        if isinstance(error, ssl.SSLError):
            raise ValueError(f"{path} holds no usable PEM certificate ({error.reason or error})") from None
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None


@dataclass(frozen=True)
class Egress:
    """Where requests go on their way out; the default is direct, with the system's CAs.

    ``https_proxy``/``http_proxy`` carry requests to https/http URLs (checked
    by ``proxy_url``), except hosts ``no_proxy`` matches and pinned ones;
    ``pins`` are the ``resolve`` entries (``resolve_pins``); ``ca_file`` is
    added to the trusted CAs.
    """

    https_proxy: str | None = field(default=None, repr=False)  # may hold a password
    http_proxy: str | None = field(default=None, repr=False)
    no_proxy: tuple[str, ...] = ()
    pins: Pins = ()
    ca_file: Path | None = None

    @cached_property
    def _pinned(self) -> dict[tuple[str, int], tuple[str, ...]]:
        return dict(self.pins)

    def pinned(self, host: str, port: int) -> tuple[str, ...] | None:
        """The addresses ``resolve`` pins ``host:port`` to, or None (DNS decides)."""
        return self._pinned.get((normal_host(host), port)) if self.pins else None

    def proxy_for(self, scheme: str, host: str, port: int) -> str | None:
        """The proxy URL that carries a request to ``scheme://host:port``, or None for a direct connection."""
        proxy = self.https_proxy if scheme == "https" else self.http_proxy if scheme == "http" else None
        if proxy is None or self.pinned(host, port) is not None or bypasses_proxy(self.no_proxy, host, port):
            return None
        return proxy

    @property
    def proxies(self) -> tuple[str, ...]:
        """Every proxy URL in use (the connector trusts their addresses)."""
        return tuple(dict.fromkeys(proxy for proxy in (self.https_proxy, self.http_proxy) if proxy))

    def tls_context(self) -> ssl.SSLContext:
        """The system's trusted CAs plus ``ca_file``; raises OSError/ssl.SSLError if the file went bad."""
        context = ssl.create_default_context()
        if self.ca_file is not None:
            context.load_verify_locations(cafile=str(self.ca_file))
        return context


DIRECT = Egress()

__all__ = [
    "DIRECT",
    "Egress",
    "ProxyEnvironment",
    "bypasses_proxy",
    "load_ca_file",
    "proxy_url",
    "read_proxy_environment",
    "resolve_entry",
    "resolve_pins",
]
