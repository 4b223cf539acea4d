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
"""

from __future__ import annotations

import base64
import datetime
import decimal
import math
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from reactr_wasm.capabilities.errors import CapabilityError
from reactr_wasm.capabilities.graphql import go_json
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


def _returned_id(rows: Sequence[Sequence[Any]]) -> int | None:
    if rows and rows[0] and isinstance(rows[0][0], int) and not isinstance(rows[0][0], bool):
        return int(rows[0][0])
    return None


# ---------------------------------------------------------------- row values


def _go_time(value: datetime.datetime) -> str:
    """Go's ``time.Time`` JSON (RFC 3339, nanosecond fraction trimmed); naive values are UTC as pgx reads them."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset() or datetime.timedelta(0)
    if not offset:
        return text + "Z"
    sign, minutes = ("-", -offset) if offset < datetime.timedelta(0) else ("+", offset)
    hours, rest = divmod(int(minutes.total_seconds()) // 60, 60)
    return f"{text}{sign}{hours:02d}:{rest:02d}"


def json_value(value: Any) -> Any:
    """A driver value as Go's ``json.Marshal`` showed it through Reactr: bytes base64, times RFC 3339."""
    if value is None or isinstance(value, bool | int | str | dict | list):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime.datetime):
        return _go_time(value)
    if isinstance(value, datetime.date):
        return _go_time(datetime.datetime(value.year, value.month, value.day))
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, tuple):
        return [json_value(item) for item in value]
    return str(value)


# ---------------------------------------------------------------- SQLite


class SQLiteDatabase(Database):
    """Declared queries on an SQLite file (``?`` placeholders), shared by all worker threads.

    One connection in autocommit mode behind a lock: SQLite serialises writers
    anyway, and the lock keeps ``lastrowid`` paired with its own insert.
    Raises ``ConfigError`` when the file cannot be opened or a query does not compile.
    """

    _driver_errors = (sqlite3.Error,)

    def __init__(self, path: str | Path, queries: Sequence[QueryDef], *, busy_timeout_seconds: float = 5.0) -> None:
        super().__init__(queries)
        self._lock = threading.Lock()
        try:
            self._connection = sqlite3.connect(
                path,
                timeout=busy_timeout_seconds,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=max(128, 2 * len(queries)),
            )
        except sqlite3.Error as error:
            raise ConfigError(f"db: cannot open SQLite database {str(path)!r}: {error}") from error
        try:
            for query in queries:
                self._check(query)
        except ConfigError:
            self._connection.close()
            raise

    def _check(self, query: QueryDef) -> None:
        # EXPLAIN compiles the statement (schema, syntax, one statement only,
        # placeholder count) without running it.
        try:
            self._connection.execute(f"EXPLAIN {query.query}", [None] * query.var_count).fetchall()
        except sqlite3.ProgrammingError as error:
            if "bindings" not in str(error):
                raise ConfigError(f"db.queries: query {query.name!r} does not compile: {error}") from error
            raise ConfigError(
                f"db.queries: query {query.name!r} declares varCount {query.var_count} but its SQL disagrees: {error}"
            ) from error
        except (sqlite3.Error, sqlite3.Warning) as error:
            raise ConfigError(f"db.queries: query {query.name!r} does not compile: {error}") from error

    def _select(self, query: QueryDef, variables: Sequence[str]) -> list[list[tuple[str, Any]]]:
        with self._lock:
            cursor = self._connection.execute(query.query, list(variables))
            rows = cursor.fetchall()
            columns = [column[0] for column in cursor.description or ()]
        return [list(zip(columns, row, strict=True)) for row in rows]

    def _exec(self, query: QueryDef, variables: Sequence[str]) -> tuple[int, int]:
        with self._lock:
            cursor = self._connection.execute(query.query, list(variables))
            returned = _returned_id(cursor.fetchall()) if cursor.description else None
            affected = max(cursor.rowcount, 0)
            # lastrowid is per connection: when nothing was inserted it still names an earlier caller's row.
            last_id = returned if returned is not None else (cursor.lastrowid or 0) if affected else 0
            return last_id, affected

    def close(self) -> None:
        with self._lock:
            self._connection.close()


# ---------------------------------------------------------------- PostgreSQL
