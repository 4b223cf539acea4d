"""What one runnable's host calls may reach: its granted capability objects.

A ``Capabilities`` is built once per runnable (by ``compose.py`` from the
config, or by an embedding program) and handed to every job of that runnable.
A field left ``None`` is a capability not granted: its host function answers
the ABI's ``capability is not enabled`` and the refusal is logged. The fields
are the names of ``registry.CAPABILITIES``, in its order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from reactr_wasm.capabilities.registry import NAMES

if TYPE_CHECKING:  # for the annotations only: the HTTP client would load aiohttp
    from reactr_wasm.capabilities.cache import Cache
    from reactr_wasm.capabilities.db import Database
    from reactr_wasm.capabilities.graphql import GraphQLClient
    from reactr_wasm.capabilities.http import HttpClient
    from reactr_wasm.capabilities.static import StaticFiles


@dataclass(frozen=True)
class Capabilities:
    """The capability objects one runnable may use; ``None``: not granted."""

    http: HttpClient | None = None  # fetch_url
    graphql: GraphQLClient | None = None  # graphql_query
    cache: Cache | None = None  # cache_set / cache_get
    static: StaticFiles | None = None  # get_static_file
    db: Database | None = None  # db_exec

    def granted(self) -> list[str]:
        """The names of the granted capabilities, for logs and ``inspect``."""
        return [name for name in NAMES if getattr(self, name) is not None]


NONE = Capabilities()
