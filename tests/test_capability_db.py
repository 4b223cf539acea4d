"""The database capability on a real SQLite file and a real PostgreSQL server started by the fixture."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import psycopg
import pytest

from reactr_wasm.capabilities.db import Database, QueryDef, QueryType, db_exec
from reactr_wasm.capabilities.db_postgres import PostgresDatabase
from reactr_wasm.capabilities.db_sqlite import SQLiteDatabase
from reactr_wasm.capabilities.errors import CapabilityError
from reactr_wasm.errors import ConfigError
from tests.services import Service, postgres_server

INSERT, SELECT, UPDATE, DELETE = range(4)
UUID = "d7e00ff6-1b30-48e9-aa7d-dd3db34cb8b5"  # tinygo-db's user

SCHEMA = """
CREATE TABLE users (
    uuid VARCHAR(36) PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    state CHAR(1) NOT NULL,
    identifier INTEGER NOT NULL
)
"""


def reactr_queries(placeholder: Callable[[int], str], now: str, as_json: str) -> list[QueryDef]:
    """The four queries of Reactr's DB test (engine/wasmtest/db_test.go) with the backend's placeholders."""
    p = placeholder
    return [
        QueryDef(
            "PGInsertUser",
            QueryType.INSERT,
            2,
            "INSERT INTO users (uuid, email, created_at, state, identifier)"
            f" VALUES ({p(1)}, {p(2)}, {now}, 'A', 12345)",
        ),
        QueryDef("PGSelectUserWithUUID", QueryType.SELECT, 1, f"SELECT * FROM users WHERE uuid = {p(1)}"),
        QueryDef("PGUpdateUserWithUUID", QueryType.UPDATE, 1, f"UPDATE users SET state='B' WHERE uuid = {p(1)}"),
        QueryDef("PGDeleteUserWithUUID", QueryType.DELETE, 1, f"DELETE FROM users WHERE uuid = {p(1)}"),
        QueryDef("ParseJSON", QueryType.SELECT, 1, f"SELECT {as_json.format(p(1))} AS value"),
        QueryDef("CountUsers", QueryType.SELECT, 0, "SELECT count(*) AS n FROM users"),
    ]


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def postgres() -> Iterator[Service]:
    with postgres_server() as service:
        yield service


def _reset_postgres(url: str, extra_sql: Sequence[str] = ()) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("DROP TABLE IF EXISTS users, items")
        admin.execute(SCHEMA)
        for statement in extra_sql:
            admin.execute(statement)


@pytest.fixture
def pg_url(postgres: Service) -> str:
    _reset_postgres(postgres.url)
    return postgres.url


def _sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "reactr.db"
    import sqlite3

    with sqlite3.connect(path) as connection:
        connection.execute(SCHEMA)
    connection.close()
    return path


def open_sqlite(tmp_path: Path) -> SQLiteDatabase:
    return SQLiteDatabase(_sqlite_file(tmp_path), reactr_queries(lambda n: "?", "CURRENT_TIMESTAMP", "json({})"))


def open_postgres(url: str) -> PostgresDatabase:
    return PostgresDatabase(url, reactr_queries(lambda n: f"${n}", "NOW()", "{}::jsonb"))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db: Database = open_sqlite(tmp_path)
    else:
        db = open_postgres(request.getfixturevalue("pg_url"))
    with db:
        yield db


def run(db: Database, query_type: int, name: str, *variables: str) -> object:
    return json.loads(db.execute(query_type, name, list(variables)))


# ---------------------------------------------------------------- the Reactr flow


def test_reactr_db_flow(database: Database) -> None:
    expected_id = 1 if isinstance(database, SQLiteDatabase) else 0  # pgx/psycopg: no id without RETURNING
    assert database.execute(INSERT, "PGInsertUser", [UUID, "connor@suborbital.dev"]) == (
        f'{{"lastInsertID":{expected_id},"rowsAffected":0}}'.encode()
    )
    assert database.execute(UPDATE, "PGUpdateUserWithUUID", [UUID]) == b'{"lastInsertID":0,"rowsAffected":1}'

    rows = run(database, SELECT, "PGSelectUserWithUUID", UUID)
    assert isinstance(rows, list) and len(rows) == 1
    row = rows[0]
    assert sorted(row) == ["created_at", "email", "identifier", "state", "uuid"]
    assert (row["uuid"], row["email"], row["state"], row["identifier"]) == (UUID, "connor@suborbital.dev", "B", 12345)

    assert database.execute(DELETE, "PGDeleteUserWithUUID", [UUID]) == b'{"lastInsertID":0,"rowsAffected":1}'
    assert database.execute(SELECT, "PGSelectUserWithUUID", [UUID]) == b"[]"
    assert database.execute(DELETE, "PGDeleteUserWithUUID", [UUID]) == b'{"lastInsertID":0,"rowsAffected":0}'


def test_select_row_is_go_json_with_sorted_keys(database: Database) -> None:
    database.execute(INSERT, "PGInsertUser", [UUID, "<a&b>@example.com"])
    body = database.execute(SELECT, "PGSelectUserWithUUID", [UUID])
    assert body.startswith(b'[{"created_at":"')
    assert b'"email":"\\u003ca\\u0026b\\u003e@example.com","identifier":12345,"state":"A","uuid":"' in body


def test_variables_are_values_never_sql(database: Database) -> None:
    hostile = "x'); DROP TABLE users; --"
    database.execute(INSERT, "PGInsertUser", [hostile, "e"])
    assert run(database, SELECT, "CountUsers") == [{"n": 1}]
    assert run(database, SELECT, "PGSelectUserWithUUID", hostile)[0]["uuid"] == hostile  # type: ignore[index]


# ---------------------------------------------------------------- errors, in Reactr's order


def test_error_texts_are_byte_exact(database: Database) -> None:
    cases: list[tuple[int, str, list[str], str]] = [
        (4, "PGInsertUser", [UUID, "e"], "query type invalid"),
        (-1, "no such query", [], "query type invalid"),
        (INSERT, "no such query", [], "query not found"),
        (SELECT, "PGInsertUser", [UUID, "e"], "query type incorrect"),
        (DELETE, "PGUpdateUserWithUUID", [UUID], "query type incorrect"),
        (INSERT, "PGInsertUser", [UUID], "expected 2 variables, got 1: number of variables incorrect"),
        (SELECT, "CountUsers", ["extra"], "expected 0 variables, got 1: number of variables incorrect"),
    ]
    for query_type, name, variables, text in cases:
        with pytest.raises(CapabilityError) as caught:
            database.execute(query_type, name, variables)
        assert str(caught.value) == text, (query_type, name)


def test_capability_disabled_comes_after_the_type_check() -> None:
    with pytest.raises(CapabilityError, match=r"^query type invalid$"):
        db_exec(None, 9, "PGInsertUser", [])
    with pytest.raises(CapabilityError, match=r"^capability is not enabled$"):
        db_exec(None, INSERT, "PGInsertUser", [])


def test_driver_errors_sqlite(tmp_path: Path) -> None:
    with open_sqlite(tmp_path) as db:
        db.execute(INSERT, "PGInsertUser", [UUID, "e"])
        with pytest.raises(CapabilityError) as caught:
            db.execute(INSERT, "PGInsertUser", [UUID, "e"])
        assert str(caught.value) == "failed to Exec: UNIQUE constraint failed: users.uuid"
        with pytest.raises(CapabilityError) as caught:
            db.execute(SELECT, "ParseJSON", ["{bad"])
        assert str(caught.value) == "failed to stmt.Query: malformed JSON"


def test_driver_errors_postgres(pg_url: str) -> None:
    with open_postgres(pg_url) as db:
        db.execute(INSERT, "PGInsertUser", [UUID, "e"])
        with pytest.raises(CapabilityError) as caught:
            db.execute(INSERT, "PGInsertUser", [UUID, "e"])
        assert str(caught.value) == (
            'failed to Exec: ERROR: duplicate key value violates unique constraint "users_pkey" (SQLSTATE 23505)'
        )
        with pytest.raises(CapabilityError) as caught:
            db.execute(SELECT, "ParseJSON", ["{bad"])
        assert str(caught.value) == "failed to stmt.Query: ERROR: invalid input syntax for type json (SQLSTATE 22P02)"


# ---------------------------------------------------------------- start-up validation


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (QueryDef("Broken", QueryType.SELECT, 0, "SELEC nothing"), "query 'Broken' does not"),
        (QueryDef("NoTable", QueryType.SELECT, 0, "SELECT * FROM nowhere"), "query 'NoTable' does not"),
        (
            QueryDef("Count", QueryType.SELECT, 2, "SELECT * FROM users WHERE uuid = {}"),
            "query 'Count' declares varCount 2",
        ),
    ],
)
def test_bad_queries_fail_at_start(tmp_path: Path, pg_url: str, query: QueryDef, reason: str) -> None:
    sqlite_query = QueryDef(query.name, query.type, query.var_count, query.query.format("?"))
    with pytest.raises(ConfigError, match=reason):
        SQLiteDatabase(_sqlite_file(tmp_path), [sqlite_query])
    pg_query = QueryDef(query.name, query.type, query.var_count, query.query.format("$1"))
    with pytest.raises(ConfigError, match=reason):
        PostgresDatabase(pg_url, [pg_query])


def test_sqlite_refuses_several_statements_in_one_query(tmp_path: Path) -> None:
    sneaky = QueryDef("Sneaky", QueryType.SELECT, 0, "SELECT 1; DROP TABLE users")
    with pytest.raises(ConfigError, match="query 'Sneaky' does not compile"):
        SQLiteDatabase(_sqlite_file(tmp_path), [sneaky])


def test_duplicate_names_and_bad_config_entries(tmp_path: Path) -> None:
    query = QueryDef("Twice", QueryType.SELECT, 0, "SELECT 1")
    with pytest.raises(ConfigError, match="'Twice' is declared twice"):
        SQLiteDatabase(_sqlite_file(tmp_path), [query, query])
    parsed = QueryDef.from_config({"type": 1, "name": "S", "varCount": 1, "query": "SELECT ?"})
    assert parsed == QueryDef("S", QueryType.SELECT, 1, "SELECT ?")
    with pytest.raises(ConfigError, match="'type' must be 0 insert"):
        QueryDef.from_config({"type": 4, "name": "S", "varCount": 0, "query": "SELECT 1"})
    with pytest.raises(ConfigError, match="'varCount' must be"):
        QueryDef.from_config({"type": 1, "name": "S", "varCount": -1, "query": "SELECT 1"})


def test_unreachable_postgres_is_a_config_error() -> None:
    from tests.services import free_port

    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(ConfigError, match="cannot connect to PostgreSQL") as caught:
        PostgresDatabase(url, [], connect_timeout_seconds=1)
    assert "secret" not in str(caught.value)


def test_sqlite_last_insert_id(tmp_path: Path) -> None:
    path = _sqlite_file(tmp_path)
    queries = [
        QueryDef("Add", QueryType.INSERT, 1, "INSERT OR IGNORE INTO users VALUES (?, 'e', 0, 'A', 1)"),
        QueryDef(
            "AddReturning", QueryType.INSERT, 1, "INSERT INTO users VALUES (?, 'e', 0, 'A', 7) RETURNING identifier"
        ),
    ]
    with SQLiteDatabase(path, queries) as db:
        assert db.execute(INSERT, "Add", ["a"]) == b'{"lastInsertID":1,"rowsAffected":0}'
        assert db.execute(INSERT, "Add", ["b"]) == b'{"lastInsertID":2,"rowsAffected":0}'
        assert db.execute(INSERT, "Add", ["a"]) == b'{"lastInsertID":0,"rowsAffected":0}'  # ignored: no new row
        assert db.execute(INSERT, "AddReturning", ["c"]) == b'{"lastInsertID":7,"rowsAffected":0}'


# ---------------------------------------------------------------- PostgreSQL specifics


def test_postgres_insert_returning_id_reports_it(postgres: Service) -> None:
    _reset_postgres(postgres.url, ["CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT NOT NULL)"])
    insert = QueryDef("AddItem", QueryType.INSERT, 1, "INSERT INTO items (name) VALUES ($1) RETURNING id")
    with PostgresDatabase(postgres.url, [insert]) as db:
        assert db.execute(INSERT, "AddItem", ["a"]) == b'{"lastInsertID":1,"rowsAffected":0}'
        assert db.execute(INSERT, "AddItem", ["b"]) == b'{"lastInsertID":2,"rowsAffected":0}'


def test_postgres_values_as_go_encoded_them(pg_url: str) -> None:
    query = QueryDef(
        "Types",
        QueryType.SELECT,
        0,
        "SELECT true AS b, 42 AS i, 1.5::float8 AS f, 12.30::numeric AS n, NULL AS z,"
        " '\\x0102'::bytea AS raw, 'd7e00ff6-1b30-48e9-aa7d-dd3db34cb8b5'::uuid AS u,"
        " '2021-03-04 05:06:07.25+00'::timestamptz AS tz, '2021-03-04 05:06:07'::timestamp AS ts,"
        " '2021-03-04'::date AS d, '{\"k\": [1]}'::jsonb AS j",
    )
    with PostgresDatabase(pg_url, [query], statement_timeout_seconds=None) as db:
        assert run(db, SELECT, "Types") == [
            {
                "b": True,
                "i": 42,
                "f": 1.5,
                "n": "12.30",
                "z": None,
                "raw": "AQI=",
                "u": UUID,
                "tz": "2021-03-04T05:06:07.25Z",
                "ts": "2021-03-04T05:06:07Z",
                "d": "2021-03-04T00:00:00Z",
                "j": {"k": [1]},
            }
        ]


def test_postgres_recovers_from_a_dropped_connection(pg_url: str) -> None:
    with open_postgres(pg_url) as db:
        db.execute(INSERT, "PGInsertUser", [UUID, "e"])
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
        with pytest.raises(CapabilityError, match=r"^failed to stmt\.Query: "):
            db.execute(SELECT, "PGSelectUserWithUUID", [UUID])
        assert len(run(db, SELECT, "PGSelectUserWithUUID", UUID)) == 1  # type: ignore[arg-type]


def test_postgres_statement_timeout_and_pool_wait(pg_url: str) -> None:
    sleep = QueryDef("Sleep", QueryType.SELECT, 1, "SELECT pg_sleep($1) AS slept")
    with PostgresDatabase(pg_url, [sleep], statement_timeout_seconds=0.2) as db:
        with pytest.raises(CapabilityError) as caught:
            db.execute(SELECT, "Sleep", ["5"])
        assert str(caught.value) == (
            "failed to stmt.Query: ERROR: canceling statement due to statement timeout (SQLSTATE 57014)"
        )
    with PostgresDatabase(pg_url, [sleep], max_connections=1, pool_wait_seconds=0.1) as db:
        busy = threading.Thread(target=db.execute, args=(SELECT, "Sleep", ["0.5"]))
        busy.start()
        time.sleep(0.1)
        with pytest.raises(CapabilityError) as caught:
            db.execute(SELECT, "Sleep", ["0"])
        busy.join(5)
        assert str(caught.value) == "failed to stmt.Query: no database connection free within 0.1 s"
        assert db.execute(SELECT, "Sleep", ["0"]) == b'[{"slept":""}]'


# ---------------------------------------------------------------- threads


def test_concurrent_use_from_worker_threads(database: Database) -> None:
    threads, per_thread = 6, 15
    insert_ids: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            for n in range(per_thread):
                key = f"user-{index}-{n}"
                result = run(database, INSERT, "PGInsertUser", key, f"{key}@example.com")
                assert run(database, SELECT, "PGSelectUserWithUUID", key) != []
                assert run(database, UPDATE, "PGUpdateUserWithUUID", key) == {"lastInsertID": 0, "rowsAffected": 1}
                with lock:
                    insert_ids.append(result["lastInsertID"])  # type: ignore[index]
        except BaseException as error:
            failures.append(error)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(30)
    assert not failures, failures[:3]
    assert run(database, SELECT, "CountUsers") == [{"n": threads * per_thread}]
    if isinstance(database, SQLiteDatabase):  # each insert saw its own rowid
        assert sorted(insert_ids) == list(range(1, threads * per_thread + 1))


def test_closed_database_refuses_calls(tmp_path: Path, pg_url: str) -> None:
    for db in (open_sqlite(tmp_path), open_postgres(pg_url)):
        db.close()
        with pytest.raises(CapabilityError, match=r"^failed to stmt\.Query: "):
            db.execute(SELECT, "CountUsers", [])
