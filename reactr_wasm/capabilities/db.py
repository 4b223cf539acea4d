"""The database capability behind ``db_exec``: named queries declared in config, never raw SQL.

A guest names a query and passes positional string variables; the host runs
the query declared under that name and answers the ABI's JSON (§2.8):

* insert -> ``{"lastInsertID":<id>,"rowsAffected":0}``
* update/delete -> ``{"lastInsertID":0,"rowsAffected":<n>}``
* select -> ``[{"column":value,...},...]`` (``[]`` when empty, never ``null``)

Checks run in Reactr's order with its byte-exact texts; driver failures read
``failed to Exec: ...`` / ``failed to stmt.Query: ...``. Every query is
compiled against the live schema at start-up, so bad SQL, a missing table or
a ``varCount`` that disagrees with the placeholders is a ``ConfigError``
naming the query, not a surprise at the first call.

Last insert id (fixes §8.15): SQLite reports the rowid of the inserted row;
on PostgreSQL an insert query that ends in ``RETURNING id`` (any single integer
column) reports that value, otherwise ``0`` as pgx did.

Placeholders are written as the database expects them: ``?`` for SQLite and
``$1, $2, ...`` for PostgreSQL; the PostgreSQL text is sent to the server
unchanged (psycopg's ``RawCursor``), so ``$n`` inside string literals or
comments is never rewritten by a client-side parser.

This module holds what every database shares (the queries, the checks, the
answers); ``db_sqlite.py`` and ``db_postgres.py`` the drivers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType
from typing import Any

from reactr_wasm.capabilities.errors import CapabilityError
from reactr_wasm.capabilities.gojson import go_json, json_value
from reactr_wasm.errors import ConfigError

# Byte-exact texts from Reactr's api/db.go and capabilities/db.go.
QUERY_TYPE_INVALID = "query type invalid"
CAPABILITY_DISABLED = "capability is not enabled"
QUERY_NOT_FOUND = "query not found"
QUERY_TYPE_INCORRECT = "query type incorrect"


class QueryType(IntEnum):
    """``db_exec``'s first argument, in the Go host's numbering."""

    INSERT = 0
    SELECT = 1
    UPDATE = 2
    DELETE = 3


@dataclass(frozen=True)
class QueryDef:
    """One query a runnable may run, declared in the host's config."""

    name: str
    type: QueryType
    var_count: int
    query: str

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], where: str = "db.queries") -> QueryDef:
        """Parse Reactr's ``{"type", "name", "varCount", "query"}``. Raises ``ConfigError``."""
        name, kind, count, query = entry.get("name"), entry.get("type"), entry.get("varCount", 0), entry.get("query")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: every query needs a non-empty string 'name'")
        if not isinstance(kind, int) or isinstance(kind, bool) or kind not in set(QueryType):
            raise ConfigError(f"{where}: query {name!r}: 'type' must be 0 insert, 1 select, 2 update or 3 delete")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ConfigError(f"{where}: query {name!r}: 'varCount' must be a non-negative integer")
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"{where}: query {name!r}: 'query' must be a non-empty SQL string")
        return cls(name=name, type=QueryType(kind), var_count=count, query=query)


def check_query_type(query_type: int) -> QueryType:
    """The ``QueryType`` for ``db_exec``'s argument. Raises ``CapabilityError("query type invalid")``."""
    try:
        return QueryType(query_type)
    except ValueError:
        raise CapabilityError(QUERY_TYPE_INVALID) from None


def db_exec(database: Database | None, query_type: int, name: str, variables: Sequence[str]) -> bytes:
    """The whole host call in Reactr's order: type valid, capability enabled (``database`` set), then ``execute``."""
    check_query_type(query_type)
    if database is None:
        raise CapabilityError(CAPABILITY_DISABLED)
    return database.execute(query_type, name, variables)


class Database(ABC):
    """Runs declared queries; thread-safe. Subclasses supply the driver calls."""

    # Exceptions the driver raises for a failing statement or connection.
    _driver_errors: tuple[type[Exception], ...] = ()

    def __init__(self, queries: Sequence[QueryDef]) -> None:
        self._queries: dict[str, QueryDef] = {}
        for query in queries:
            if query.name in self._queries:
                raise ConfigError(f"db.queries: query {query.name!r} is declared twice")
            self._queries[query.name] = query

    @property
    def queries(self) -> Mapping[str, QueryDef]:
        return self._queries

    def execute(self, query_type: int, name: str, variables: Sequence[str]) -> bytes:
        """Run query ``name`` as ``query_type`` with positional ``variables``; the ABI's JSON.

        Raises ``CapabilityError`` whose text is what the guest receives.
        """
        kind = check_query_type(query_type)
        query = self._queries.get(name)
        if query is None:
            raise CapabilityError(QUERY_NOT_FOUND)
        if query.type is not kind:
            raise CapabilityError(QUERY_TYPE_INCORRECT)
        if len(variables) != query.var_count:
            raise CapabilityError(
                f"expected {query.var_count} variables, got {len(variables)}: number of variables incorrect"
            )
        if kind is QueryType.SELECT:
            try:
                rows = self._select(query, variables)
            except self._driver_errors as error:
                raise CapabilityError(f"failed to stmt.Query: {self._describe(error)}") from error
            return go_json([{column: json_value(value) for column, value in row} for row in rows])
        try:
            last_id, affected = self._exec(query, variables)
        except self._driver_errors as error:
            raise CapabilityError(f"failed to Exec: {self._describe(error)}") from error
        if kind is QueryType.INSERT:
            return go_json({"lastInsertID": last_id, "rowsAffected": 0})
        return go_json({"lastInsertID": 0, "rowsAffected": affected})

    @abstractmethod
    def _select(self, query: QueryDef, variables: Sequence[str]) -> list[list[tuple[str, Any]]]:
        """Rows as ``(column, value)`` pairs in column order."""

    @abstractmethod
    def _exec(self, query: QueryDef, variables: Sequence[str]) -> tuple[int, int]:
        """``(last insert id, rows affected)``."""

    def _describe(self, error: Exception) -> str:
        return str(error).strip() or type(error).__name__

    @abstractmethod
    def close(self) -> None:
        """Close every connection; later calls fail."""

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def returned_id(rows: Sequence[Sequence[Any]]) -> int | None:
    """The id an insert's ``RETURNING`` gave: the first column of the first row when it is an integer, else None."""
    if rows and rows[0] and isinstance(rows[0][0], int) and not isinstance(rows[0][0], bool):
        return int(rows[0][0])
    return None
