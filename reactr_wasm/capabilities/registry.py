"""The capabilities a runnable can be granted: one entry each, and every list of them is read from here.

A capability is what Spin calls a factor: a name a runnable is granted, the
``env`` host functions that name guards, the ``[capabilities.<section>]``
table that configures it, the backend opened from that table once per
server, and what each granted runnable receives. ``CapabilitySpec`` holds
that, and ``CAPABILITIES`` holds one spec per capability:

- ``name`` is the grant (``[capabilities].grant``, ``[runnables.NAME].capabilities``),
  the ``Capabilities`` field its object goes in, and the word logs use;
- ``host_functions`` are refused (``capability is not enabled``) to a runnable
  without the grant;
- ``section`` names the settings class in ``config/capabilities.py`` (the
  ``CapabilitiesConfig`` field of that name: its rule table, its checks, when
  it is ``ready`` to be granted, how it ``open``-s its backend). Two
  capabilities may share one section: ``graphql`` runs on ``http``'s rules
  and clients;
- ``grant`` turns the section's backend and the runnable's view of the
  section (``[runnables.NAME.http]`` laid over ``[capabilities.http]``) into
  the runnable's object.

Read from here: the grant names the config accepts (and its "unknown
capability" message), the "grants X but [capabilities.X] is not configured"
check, which backends ``compose.build_backends`` opens (only those some
runnable is granted: no HTTP client, loop thread or aiohttp without ``http``
or ``graphql``), what ``compose.capabilities_for`` puts in a runnable's
``Capabilities``, the capability labels of ``wasm/module.py`` (``inspect``),
the host calls' refusal logs, and the load-time "uses X but is not granted" warning.

Light on purpose: the engine's ABI table imports this module, so it imports
no backend; each section's ``open`` imports its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reactr_wasm.capabilities.graphql import GraphQLClient

# (the section's backend, the runnable's settings of that section) -> the runnable's capability object.
Grant = Callable[[Any, Any], object]


def shared_backend(backend: Any, settings: Any) -> object:
    """Every granted runnable uses the one backend of the server (the cache, the static files, the database)."""
    return backend


def http_client(clients: Any, settings: Any) -> object:
    """The client of the runnable's own HTTP rules (``HttpClients.client``): one per distinct settings."""
    return clients.client(settings)


def graphql_client(clients: Any, settings: Any) -> object:
    """GraphQL over the runnable's HTTP client: its rules, auth and limits."""
    return GraphQLClient(clients.client(settings))


@dataclass(frozen=True)
class CapabilitySpec:
    """One capability: its grant name, the host functions it guards, its config section, what a runnable gets."""

    name: str
    host_functions: tuple[str, ...]
    section: str
    grant: Grant = shared_backend


CAPABILITIES: tuple[CapabilitySpec, ...] = (
    CapabilitySpec("http", ("fetch_url",), section="http", grant=http_client),
    CapabilitySpec("graphql", ("graphql_query",), section="http", grant=graphql_client),
    CapabilitySpec("cache", ("cache_set", "cache_get"), section="cache"),
    CapabilitySpec("static", ("get_static_file",), section="static"),
    CapabilitySpec("db", ("db_exec", "add_ffi_var"), section="db"),
)

NAMES: tuple[str, ...] = tuple(spec.name for spec in CAPABILITIES)
GUARDS: dict[str, str] = {function: spec.name for spec in CAPABILITIES for function in spec.host_functions}
"""Host function -> the capability that guards it."""

__all__ = ["CAPABILITIES", "GUARDS", "NAMES", "CapabilitySpec", "Grant"]
