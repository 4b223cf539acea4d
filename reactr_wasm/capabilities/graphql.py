"""The GraphQL capability behind ``graphql_query``: one POST through the HTTP capability's client.

Differences from the Go original (§8.13 of the ABI notes): the status is
checked before the body is decoded, and ``errors[].path`` is read as the
array the GraphQL spec defines (joined with ``.`` in the error text).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reactr_wasm.capabilities.errors import CapabilityError
from reactr_wasm.capabilities.gojson import go_json

if TYPE_CHECKING:  # the client comes from the caller: importing it here would load aiohttp
    from reactr_wasm.capabilities.http import HttpClient


def _path_text(path: object) -> str:
    if isinstance(path, list):
        return ".".join(str(part) for part in path)
    return "" if path is None else str(path)


class GraphQLClient:
    """Runs guest GraphQL queries with ``http_client`` (its rules, auth and limits)."""

    def __init__(self, http_client: HttpClient) -> None:
        self._http = http_client

    def query(self, endpoint: str, query: str, *, timeout: float | None = None) -> bytes:
        """POST ``{"query": query}`` to ``endpoint``; the result is ``{"data":...}`` as Go encodes it.

        Raises CapabilityError with the guest-visible text: rule and transport
        errors, ``non-200 HTTP response code; <body>``, ``failed to Unmarshal
        response: ...``, ``graphQL error; path: <p>, message: <m>``. ``timeout``
        as in ``HttpClient.request``.
        """
        body = json.dumps({"query": query}, separators=(",", ":")).encode()
        headers = [("Content-Type", "application/json")]
        response = self._http.request("POST", endpoint, headers, body, timeout=timeout)
        raw = response.body.decode("utf-8", "replace")
        if response.status > 299:
            raise CapabilityError(f"non-200 HTTP response code; {raw}")
        try:
            decoded = json.loads(response.body)
        except ValueError as error:
            raise CapabilityError(f"failed to Unmarshal response: {error}") from None
        if not isinstance(decoded, dict):
            raise CapabilityError("failed to Unmarshal response: response is not a JSON object")
        errors = decoded.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            message = first.get("message", "")
            raise CapabilityError(f"graphQL error; path: {_path_text(first.get('path'))}, message: {message}")
        return go_json({"data": decoded.get("data")})


__all__ = ["GraphQLClient"]
