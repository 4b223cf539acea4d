"""PostgreSQL behind ``db_exec``: psycopg 3 with a small connection pool (optional extra ``postgres``)."""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

from reactr_wasm.capabilities.db import Database, QueryDef, returned_id
from reactr_wasm.errors import ConfigError

if TYPE_CHECKING:
    import psycopg


class _PoolTimeout(Exception):
    """No connection became free in time."""


def _import_psycopg() -> ModuleType:
    try:
        return importlib.import_module("psycopg")
    except ImportError as error:
        raise ConfigError("db: PostgreSQL needs the 'psycopg' package (pip install 'reactr-wasm[postgres]')") from error


class _ConnectionPool:
    """At most ``max_size`` connections, made on demand; broken ones are dropped, never reused."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], max_size: int, wait_seconds: float) -> None:
        self._connect = connect
        self._max_size = max_size
        self._wait_seconds = wait_seconds
        self._idle: list[psycopg.Connection[Any]] = []
        self._size = 0
        self._closed = False
        self._condition = threading.Condition()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        connection = self._acquire()
        try:
            yield connection
        finally:
            self._release(connection)

    def _acquire(self) -> psycopg.Connection[Any]:
        with self._condition:
            if not self._condition.wait_for(
                lambda: self._closed or self._idle or self._size < self._max_size, self._wait_seconds
            ):
                raise _PoolTimeout(f"no database connection free within {self._wait_seconds:g} s")
            if self._closed:
                raise _PoolTimeout("the database is closed")
            if self._idle:
                return self._idle.pop()
            self._size += 1
        try:
            return self._connect()
        except BaseException:
            with self._condition:
                self._size -= 1
                self._condition.notify()
            raise

    def _release(self, connection: psycopg.Connection[Any]) -> None:
        reusable = not connection.closed and not connection.broken and connection.info.transaction_status == 0  # IDLE
        with self._condition:
            keep = reusable and not self._closed
            if keep:
                self._idle.append(connection)
            else:
                self._size -= 1
            self._condition.notify()
        if not keep:
            connection.close()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            self._condition.notify_all()
        for connection in idle:
            connection.close()


class PostgresDatabase(Database):
    """Declared queries on PostgreSQL (``$1, $2, ...`` placeholders) through psycopg 3.

    Up to ``max_connections`` autocommit connections are shared by the worker
    threads; each query is server-side prepared on the connection that runs it.
    ``statement_timeout_seconds`` bounds every statement (``None``: no bound); a
    call waits at most ``pool_wait_seconds`` for a free connection.
    Raises ``ConfigError`` when the server cannot be reached or a query does not
    prepare (the message names the query, never the password).
    """

    def __init__(
        self,
        url: str,
        queries: Sequence[QueryDef],
        *,
        max_connections: int = 4,
        connect_timeout_seconds: float = 5.0,
        statement_timeout_seconds: float | None = 30.0,
        pool_wait_seconds: float = 10.0,
    ) -> None:
        super().__init__(queries)
        self._psycopg = _import_psycopg()
        self._driver_errors = (self._psycopg.Error, _PoolTimeout)
        options = ""
        if statement_timeout_seconds is not None:
            options = f"-c statement_timeout={int(statement_timeout_seconds * 1000)}"

        def connect() -> psycopg.Connection[Any]:
            connection: psycopg.Connection[Any] = self._psycopg.connect(
                url, autocommit=True, connect_timeout=max(1, math.ceil(connect_timeout_seconds)), options=options
            )
            return connection

        self._pool = _ConnectionPool(connect, max_connections, pool_wait_seconds)
        try:
            with self._pool.connection() as connection:
                for query in queries:
                    self._check(connection, query)
        except self._driver_errors as error:
            self._pool.close()
            raise ConfigError(f"db: cannot connect to PostgreSQL: {self._describe(error)}") from error
        except ConfigError:
            self._pool.close()
            raise

    def _check(self, connection: psycopg.Connection[Any], query: QueryDef) -> None:
        """Prepare ``query`` as the unnamed statement: parses it against the schema and counts its parameters."""
        pq = self._psycopg.pq
        pgconn = connection.pgconn
        result = pgconn.prepare(b"", query.query.encode())
        if result.status != pq.ExecStatus.COMMAND_OK:
            message = (result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode(errors="replace")
            raise ConfigError(f"db.queries: query {query.name!r} does not prepare: {message}")
        described = pgconn.describe_prepared(b"")
        if described.nparams != query.var_count:
            raise ConfigError(
                f"db.queries: query {query.name!r} declares varCount {query.var_count}"
                f" but its SQL has {described.nparams} parameters"
            )

    def _describe(self, error: Exception) -> str:
        # pgx's PgError text: "<severity>: <message> (SQLSTATE <code>)".
        diag = getattr(error, "diag", None)
        if diag is not None and diag.message_primary:
            return f"{diag.severity or 'ERROR'}: {diag.message_primary} (SQLSTATE {diag.sqlstate})"
        return super()._describe(error)

    def _run(self, query: QueryDef, variables: Sequence[str]) -> tuple[list[str], list[tuple[Any, ...]], int]:
        with self._pool.connection() as connection:
            cursor = self._psycopg.RawCursor(connection)
            with cursor:
                cursor.execute(query.query, list(variables), prepare=True)
                columns = [column.name for column in cursor.description or ()]
                rows = cursor.fetchall() if cursor.description else []
                return columns, rows, cursor.rowcount

    def _select(self, query: QueryDef, variables: Sequence[str]) -> list[list[tuple[str, Any]]]:
        columns, rows, _ = self._run(query, variables)
        return [list(zip(columns, row, strict=True)) for row in rows]

    def _exec(self, query: QueryDef, variables: Sequence[str]) -> tuple[int, int]:
        _, rows, affected = self._run(query, variables)
        return returned_id(rows) or 0, max(affected, 0)

    def close(self) -> None:
        self._pool.close()
