"""SQLite behind ``db_exec``: one file, from the standard library's ``sqlite3``."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reactr_wasm.capabilities.db import Database, QueryDef, returned_id
from reactr_wasm.errors import ConfigError


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
            returned = returned_id(cursor.fetchall()) if cursor.description else None
            affected = max(cursor.rowcount, 0)
            # lastrowid is per connection: when nothing was inserted it still names an earlier caller's row.
            last_id = returned if returned is not None else (cursor.lastrowid or 0) if affected else 0
            return last_id, affected

    def close(self) -> None:
        with self._lock:
            self._connection.close()
