"""What the SDK tests of both languages share: requests, calls through the server, and the
scenarios whose answers must not depend on the guest's language."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]
Serve = Callable[..., Awaitable[Client]]


def not_enabled(runnable: str, *grants: str, code: int = 1) -> dict[str, Any]:
    """A refused host call's error as a guest passes it on: Reactr's text and the line that grants it."""
    listed = ", ".join(f'"{name}"' for name in grants)
    hint = f"grant it with [runnables.{runnable}] capabilities = [{listed}]"
    return {"code": code, "message": f"capability is not enabled; {hint}"}


def request(body: bytes | str, *, url: str = "/probe", method: str = "POST", **fields: Any) -> str:
    """A CoordinatedRequest as a POST body: the server runs it as a request job."""
    data = body.encode() if isinstance(body, str) else body
    payload = {
        "method": method,
        "url": url,
        "request_id": "5d6f1c1e-0000-4000-8000-000000000001",
        "body": base64.b64encode(data).decode(),
        "headers": fields.get("headers", {}),
        "resp_headers": None,
        "params": fields.get("params", {}),
        "state": {key: base64.b64encode(value.encode()).decode() for key, value in fields.get("state", {}).items()},
    }
    return json.dumps(payload)


async def do(client: Client, name: str, body: bytes | str = b"", query: str = "") -> tuple[int, bytes, Any]:
    """``POST /do/NAME?then=true``: (status, body, headers)."""
    response = await client.post(f"/do/{name}?then=true{query}", data=body)
    return response.status, await response.read(), response.headers


async def ok(client: Client, name: str, body: bytes | str = b"", query: str = "") -> bytes:
    status, data, _ = await do(client, name, body, query)
    assert status == 200, data
    return data


async def error(client: Client, name: str, body: bytes | str = b"", query: str = "") -> tuple[int, dict[str, Any]]:
    status, data, _ = await do(client, name, body, query)
    assert status != 200, data
    return status, json.loads(data)


DB = """
[capabilities.db]
path = "app.db"
[[capabilities.db.queries]]
name = "AddUser"
type = 0
varCount = 2
query = "INSERT INTO users (uuid, email) VALUES (?, ?)"
[[capabilities.db.queries]]
name = "UserByUUID"
type = 1
varCount = 1
query = "SELECT uuid, email FROM users WHERE uuid = ?"
[[capabilities.db.queries]]
name = "SetEmail"
type = 2
varCount = 2
query = "UPDATE users SET email = ? WHERE uuid = ?"
[[capabilities.db.queries]]
name = "DeleteUser"
type = 3
varCount = 1
query = "DELETE FROM users WHERE uuid = ?"
"""


async def static_files_scenario(serve: Serve, tmp_path: Path) -> None:
    """The probe's ``static`` command, granted and not."""
    (tmp_path / "static" / "docs").mkdir(parents=True)
    (tmp_path / "static" / "docs" / "important.md").write_text("# Hello, World\n\nContents are very important")
    client = await serve('[capabilities.static]\ndir = "static"\n[runnables.probe]\ncapabilities = ["static"]\n')
    assert await ok(client, "probe", "static\ndocs/important.md") == b"# Hello, World\n\nContents are very important"
    status, body = await error(client, "probe", "static\nmissing.md")
    assert (status, body["code"]) == (500, 1) and body["message"]
    status, body = await error(client, "probe", "static\n../outside.txt")
    assert (status, body["code"]) == (500, 1) and body["message"]
    client = await serve('[capabilities.static]\ndir = "static"\n')
    assert await error(client, "probe", "static\ndocs/important.md") == (500, not_enabled("probe", "cache", "static"))


async def db_queries_scenario(serve: Serve) -> None:
    """The probe's ``db`` command over the ``DB`` queries (``database`` fixture): every type, errors, no grant."""
    client = await serve(DB + '[runnables.probe]\ncapabilities = ["db"]\n')
    uuid = "d7e00ff6-1b30-48e9-aa7d-dd3db34cb8b5"
    inserted = json.loads(await ok(client, "probe", f"db\ninsert\nAddUser\n{uuid}\nconnor@example.com"))
    assert inserted["rowsAffected"] in (0, 1) and inserted["lastInsertID"] >= 1
    assert json.loads(await ok(client, "probe", f"db\nselect\nUserByUUID\n{uuid}")) == [
        {"uuid": uuid, "email": "connor@example.com"}
    ]
    assert json.loads(await ok(client, "probe", f"db\nupdate\nSetEmail\nnew@example.com\n{uuid}")) == {
        "lastInsertID": 0, "rowsAffected": 1,
    }  # fmt: skip
    assert json.loads(await ok(client, "probe", f"db\nselect\nUserByUUID\n{uuid}"))[0]["email"] == "new@example.com"
    assert json.loads(await ok(client, "probe", f"db\ndelete\nDeleteUser\n{uuid}"))["rowsAffected"] == 1
    assert await ok(client, "probe", f"db\nselect\nUserByUUID\n{uuid}") == b"[]"

    assert await error(client, "probe", "db\nselect\nNoSuchQuery") == (500, {"code": 1, "message": "query not found"})
    assert await error(client, "probe", "db\nselect\nAddUser\na\nb") == (
        500, {"code": 1, "message": "query type incorrect"},
    )  # fmt: skip
    assert await error(client, "probe", "db\nselect\nUserByUUID") == (
        500, {"code": 1, "message": "expected 1 variables, got 0: number of variables incorrect"},
    )  # fmt: skip
    client = await serve(DB)
    assert await error(client, "probe", f"db\nselect\nUserByUUID\n{uuid}") == (500, not_enabled("probe", "cache", "db"))
