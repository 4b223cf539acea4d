"""The ``[capabilities]`` section: how each capability works, and who gets it.

Deny by default: a runnable may use the capabilities in ``[capabilities].grant``
(``["cache"]`` unless the file says otherwise), or exactly those listed in its
own ``[runnables.NAME].capabilities``. Logging, request fields, response headers
and ``run_job`` need no grant. A grant of a capability that is not configured
(``static`` without a folder, ``db`` without a database) is refused at start.

Each ``[capabilities.X]`` table is one settings class (a ``Section``: its rule
table, its checks, whether it is ready, how it opens its backend) and one
field of ``CapabilitiesConfig``; which capability uses which section, and the
names a grant may hold, are ``capabilities/registry.py``.

    [capabilities]
    grant = ["cache"]
    [capabilities.http]              # fetch_url and graphql_query
    allowed_domains = ["api.example.com", "*.example.org"]
    proxy = "http://proxy.internal:3128"  # or proxy_from_env = true
    ca_file = "private-ca.pem"
    [capabilities.http.auth]
    "api.example.com" = "Bearer env(API_TOKEN)"
    [capabilities.http.resolve]
    "api.internal:443" = "10.0.0.5"
    [capabilities.cache]
    backend = "redis"
    url = "env(REDIS_URL)"
    [capabilities.static]
    dir = "static"
    [capabilities.db]
    path = "app.db"
    [[capabilities.db.queries]]
    name = "AddUser"
    type = "insert"
    varCount = 2
    query = "INSERT INTO users (uuid, email) VALUES ($1, $2)"
    [runnables.fetch]
    capabilities = ["http"]
    [runnables.fetch.http]           # this runnable's own rules, over [capabilities.http]
    allowed_domains = ["api.github.com"]
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from reactr_wasm.capabilities.cache import MemoryCache
from reactr_wasm.capabilities.db import Database, QueryDef, QueryType
from reactr_wasm.capabilities.http_rules import HttpRules
from reactr_wasm.capabilities.registry import CAPABILITIES, NAMES
from reactr_wasm.capabilities.static import StaticFiles
from reactr_wasm.config.checks import (
    MASK,
    Invalid,
    Reader,
    Rule,
    boolean,
    choice,
    integer,
    parse_size,
    path_string,
    ports,
    seconds,
    show,
    string_table,
    strings,
    text,
    toml_key,
)
from reactr_wasm.config.egress import EGRESS, EgressSettings, finish_egress, over_egress, redact_egress
from reactr_wasm.errors import ConfigError

if TYPE_CHECKING:
    from reactr_wasm.capabilities.cache import Cache
    from reactr_wasm.capabilities.http_clients import HttpClients


def grant_list(value: Any) -> list[str]:
    """A list of capability names (``capabilities/registry.py``), each once."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Invalid(f"must be a list of capability names ({', '.join(NAMES)})", value)
    unknown = [item for item in value if item not in NAMES]
    if unknown:
        raise Invalid(f"unknown capability {unknown[0]!r}; known: {', '.join(NAMES)}")
    return list(dict.fromkeys(value))


class Section:
    """What every ``[capabilities.<section>]`` settings class below answers (a mixin of the dataclasses).

    ``read`` checks the table; ``ready`` says whether a grant of the section's
    capabilities can work (the config refuses the grant otherwise); ``open``
    makes its backend, once per server and only when some runnable is granted
    one of its capabilities (``compose.build_backends``); ``over`` lays a
    runnable's own table of the section over it (``[runnables.NAME.http]``).
    """

    @classmethod
    def read(cls, reader: Reader, key: str, raw: dict[str, Any], base: Path) -> Self:
        """The checked table ``key``; problems are collected in ``reader``."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether a grant of this section's capabilities can work (else the config refuses the grant)."""
        return True

    def open(self) -> object:
        """The section's backend; raises ConfigError when it cannot be opened."""
        raise NotImplementedError

    def over(self, overrides: dict[str, Any]) -> Self:
        """These settings with a runnable's own keys of the section in place of the shared ones."""
        return replace(self, **overrides)  # type: ignore[type-var]


@dataclass
class HttpSettings(EgressSettings, Section):
    """Where ``fetch_url`` and ``graphql_query`` may go (Reactr's rules, plus limits), and how (``EgressSettings``)."""

    allowed_domains: list[str] = field(default_factory=list)  # empty: any domain not blocked
    blocked_domains: list[str] = field(default_factory=list)
    allow_ips: bool = True  # URLs naming an IP address instead of a domain
    allow_private: bool = False  # loopback, private, link-local, metadata ranges (resolved address)
    allow_http: bool = True  # plain http:// URLs
    allowed_ports: list[int] = field(default_factory=list)
    blocked_ports: list[int] = field(default_factory=list)
    timeout: float = 10.0  # seconds per request, never beyond the job's own deadline
    max_response_size: int = 10 * 1024 * 1024
    max_redirects: int = 5
    auth: dict[str, str] = field(default_factory=dict)  # host -> full Authorization value; secret

    def rules(self) -> HttpRules:
        return HttpRules(
            allowed_domains=tuple(self.allowed_domains),
            blocked_domains=tuple(self.blocked_domains),
            allow_ips=self.allow_ips,
            allow_private=self.allow_private,
            allow_http=self.allow_http,
            allowed_ports=tuple(self.allowed_ports),
            blocked_ports=tuple(self.blocked_ports),
            timeout_seconds=self.timeout,
            max_response_bytes=self.max_response_size,
            max_redirects=self.max_redirects,
        )

    @classmethod
    def read(cls, reader: Reader, key: str, raw: dict[str, Any], base: Path) -> Self:
        return cls(**read_http(reader, key, raw, base))

    def open(self) -> HttpClients:
        """The clients of ``http`` and ``graphql`` on one loop thread; their module loads aiohttp, so only now."""
        from reactr_wasm.capabilities.http_clients import HttpClients

        return HttpClients()

    def over(self, overrides: dict[str, Any]) -> Self:
        """Each key the runnable sets replaces the shared value whole (a ``resolve`` table too);
        setting ``proxy`` or ``proxy_from_env`` clears the other."""
        return replace(self, **over_egress(overrides))


@dataclass
class CacheSettings(Section):
    backend: Literal["memory", "redis"] = "memory"
    max_entries: int = 10_000  # memory backend: least recently used entries go first
    url: str | None = None  # redis backend: redis://[user:password@]host:port/db; secret
    namespace: str = "reactr"  # prefix of every key, so servers can share one Redis

    @classmethod
    def read(cls, reader: Reader, key: str, raw: dict[str, Any], base: Path) -> Self:
        settings = cls(**reader.table(key, raw, CACHE))
        if settings.backend == "redis" and not settings.url:
            reader.problem(f"{key}.url", 'is required when backend = "redis"')
        return settings

    def open(self) -> Cache:
        if self.backend == "redis":
            from reactr_wasm.capabilities.redis_cache import RedisCache  # the redis package is optional

            assert self.url is not None  # read() refuses redis without a url
            return RedisCache(self.url, self.namespace)
        return MemoryCache(self.max_entries)


@dataclass
class StaticSettings(Section):
    dir: Path | None = None  # the folder get_static_file reads from
    max_file_size: int = 16 * 1024 * 1024

    @classmethod
    def read(cls, reader: Reader, key: str, raw: dict[str, Any], base: Path) -> Self:
        values = reader.table(key, raw, STATIC)
        if "dir" in values:
            values["dir"] = _path(base, values["dir"])
        return cls(**values)

    def ready(self) -> bool:
        return self.dir is not None

    def open(self) -> StaticFiles | None:
        return StaticFiles(self.dir, max_bytes=self.max_file_size) if self.dir is not None else None


@dataclass
class DbSettings(Section):
    path: Path | None = None  # SQLite file
    url: str | None = None  # PostgreSQL URL; secret
    max_connections: int = 4  # PostgreSQL
    queries: list[QueryDef] = field(default_factory=list)

    @property
    def configured(self) -> bool:
        return self.path is not None or self.url is not None

    @classmethod
    def read(cls, reader: Reader, key: str, raw: dict[str, Any], base: Path) -> Self:
        values = reader.table(key, {k: v for k, v in raw.items() if k != "queries"}, DB)
        if "path" in values:
            values["path"] = _path(base, values["path"])
        settings = cls(**values)
        if settings.path is not None and settings.url is not None:
            reader.problem(key, "set either path (SQLite) or url (PostgreSQL), not both")
        settings.queries = _queries(reader, key, raw.get("queries", []))
        if settings.queries and not settings.configured:
            reader.problem(key, "queries are declared but neither path nor url is set")
        return settings

    def ready(self) -> bool:
        return self.configured

    def open(self) -> Database | None:
        """The database, every query compiled against its schema; raises ConfigError naming a bad query."""
        if self.path is not None:
            from reactr_wasm.capabilities.db_sqlite import SQLiteDatabase

            return SQLiteDatabase(self.path, self.queries)
        if self.url is not None:
            from reactr_wasm.capabilities.db_postgres import PostgresDatabase  # psycopg is optional

            return PostgresDatabase(self.url, self.queries, max_connections=self.max_connections)
        return None


@dataclass
class CapabilitiesConfig:
    """``[capabilities]``: the default grant, and one settings field per section (named as its table)."""

    grant: list[str] = field(default_factory=lambda: ["cache"])
    http: HttpSettings = field(default_factory=HttpSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    static: StaticSettings = field(default_factory=StaticSettings)
    db: DbSettings = field(default_factory=DbSettings)

    def sections(self) -> dict[str, Section]:
        """Each ``[capabilities.<section>]`` table's settings, by section name: every field but ``grant``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "grant"}

    def redacted(self) -> dict[str, Any]:
        data: dict[str, Any] = {"grant": self.grant}
        for name, settings in self.sections().items():
            data[name] = redact_settings(settings)
        return data


HTTP = {
    **EGRESS,  # first, as EgressSettings' fields come first
    "allowed_domains": Rule(strings),
    "blocked_domains": Rule(strings),
    "allow_ips": Rule(boolean),
    "allow_private": Rule(boolean),
    "allow_http": Rule(boolean),
    "allowed_ports": Rule(ports),
    "blocked_ports": Rule(ports),
    "timeout": Rule(seconds()),
    "max_response_size": Rule(parse_size),
    "max_redirects": Rule(integer(0, 20)),
    "auth": Rule(string_table, secret=True),
}
CACHE = {
    "backend": Rule(choice("memory", "redis")),
    "max_entries": Rule(integer(1)),
    "url": Rule(text, secret=True),
    "namespace": Rule(text),
}
STATIC = {"dir": Rule(path_string), "max_file_size": Rule(parse_size)}
DB = {"path": Rule(path_string), "url": Rule(text, secret=True), "max_connections": Rule(integer(1, 256))}
SECRET_KEYS = {"auth", "url", "proxy"}  # in any table: masked when shown, and in the log
QUERY_TYPES = {kind.name.lower(): int(kind) for kind in QueryType}


def redact_settings(settings: Any) -> dict[str, Any]:
    """``settings`` as plain data with secrets masked and paths as strings."""
    return redact_table({f.name: getattr(settings, f.name) for f in fields(settings)})


def redact_table(values: dict[str, Any]) -> dict[str, Any]:
    """One table's values (settings, or a runnable's HTTP keys) as plain data: secrets masked, paths strings."""
    values = redact_egress(values)
    for key, value in values.items():
        if key in SECRET_KEYS and value:
            values[key] = {name: MASK for name in value} if isinstance(value, dict) else MASK
        elif isinstance(value, Path):
            values[key] = str(value)
        elif key == "queries":
            values[key] = [_query_data(query) for query in value]
    return values


def _query_data(query: QueryDef) -> dict[str, Any]:
    data = asdict(query)
    return {"name": data["name"], "type": query.type.name.lower(), "varCount": data["var_count"], "query": query.query}


def read_capabilities(reader: Reader, raw: Any, base: Path) -> CapabilitiesConfig:
    """The checked ``[capabilities]`` table; problems are collected in ``reader``."""
    if not isinstance(raw, dict):
        reader.problem("capabilities", f"must be a table ([capabilities]), got {show(raw)}")
        return CapabilitiesConfig()
    config = CapabilitiesConfig()
    top = reader.table("capabilities", {k: v for k, v in raw.items() if not isinstance(v, dict)}, {"grant": _GRANT})
    if "grant" in top:
        config.grant = top["grant"]
    for key, value in raw.items():
        if not isinstance(value, dict):
            continue
        kind = SECTION_TYPES.get(key)
        if kind is None:
            reader.problem(f"capabilities.{toml_key(key)}", f"unknown table; known: {', '.join(SECTION_TYPES)}")
            continue
        setattr(config, key, kind.read(reader, f"capabilities.{key}", value, base))
    return config


_GRANT = Rule(grant_list)
SECTION_TYPES: dict[str, type[Section]] = {name: type(s) for name, s in CapabilitiesConfig().sections().items()}


def read_http(reader: Reader, key: str, raw: Any, base: Path) -> dict[str, Any]:
    """The checked keys of one ``[capabilities.http]`` or ``[runnables.NAME.http]`` table."""
    return finish_egress(reader, key, reader.table(key, raw, HTTP), base)


def _path(base: Path, value: str) -> Path:
    return base / os.path.expanduser(value)


def _queries(reader: Reader, key: str, queries: Any) -> list[QueryDef]:
    """The checked ``[[<key>.queries]]``; problems are collected in ``reader``."""
    if not isinstance(queries, list) or not all(isinstance(entry, dict) for entry in queries):
        reader.problem(f"{key}.queries", f"must be an array of tables ([[{key}.queries]])")
        return []
    checked: list[QueryDef] = []
    for index, entry in enumerate(queries):
        where = f"{key}.queries[{index}]"
        entry = dict(entry)
        if isinstance(entry.get("type"), str) and entry["type"].lower() in QUERY_TYPES:
            entry["type"] = QUERY_TYPES[entry["type"].lower()]
        try:
            query = QueryDef.from_config(entry, where)
        except ConfigError as error:
            reader.problems.append(f"{reader.source}: {error}")
            continue
        if any(query.name == seen.name for seen in checked):
            reader.problem(where, f"a query named {query.name!r} is declared twice")
        checked.append(query)
    return checked


def runnable_settings(config: CapabilitiesConfig, section: str, own: object) -> Section:
    """``[capabilities.<section>]`` as one runnable sees it: its own table of the section laid over.

    ``own`` is the runnable's ``RunnableConfig``; its attribute named after the
    section is that table (only ``http`` has one: ``[runnables.NAME.http]``).
    """
    shared = config.sections()[section]
    overrides = getattr(own, section, None)
    return shared.over(overrides) if overrides else shared


def check_grants(reader: Reader, config: CapabilitiesConfig, grants: dict[str, list[str]]) -> None:
    """Refuse grants of capabilities whose section is not ``ready`` (``db`` without a database, ...)."""
    sections = config.sections()
    for where, granted in grants.items():
        for spec in CAPABILITIES:
            if spec.name in granted and not sections[spec.section].ready():
                reader.problem(where, f"grants {spec.name!r} but [capabilities.{spec.section}] is not configured")
