"""Reactr's CoordinatedRequest: a job that carries an HTTP request.

A request job runs the guest on the request *body*; host calls read and change
the other fields (``reactr-abi.md`` §3). A job is one when its data is a
``CoordinatedRequest`` (the server makes one from each HTTP request to a
runnable that reads request fields) or when its payload is one in JSON form,
Go's: ``body`` and ``state`` values are standard base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIELD_META, FIELD_BODY, FIELD_HEADER, FIELD_PARAMS, FIELD_STATE, FIELD_QUERY = range(6)


class FieldError(Exception):
    """The field cannot be read or written (the guest sees -1 / an error)."""


@dataclass
class CoordinatedRequest:
    method: str
    url: str
    request_id: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    resp_headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    state: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def from_http(
        cls, method: str, url: str, request_id: str, body: bytes, headers: Iterable[tuple[str, str]]
    ) -> CoordinatedRequest:
        """The request of an HTTP job, as Atmo built one (``reactr-abi.md`` §3.6).

        ``url`` is the request target as sent (path and query); header names are
        lower-cased and repeated headers joined with ``", "`` (RFC 9110 §5.3);
        params and state are empty: the route has no path parameters.
        """
        joined: dict[str, str] = {}
        for name, value in headers:
            name = name.lower()
            joined[name] = f"{joined[name]}, {value}" if name in joined else value
        return cls(method=method, url=url, request_id=request_id, body=body, headers=joined)

    def to_payload(self) -> bytes:
        """The JSON form ``from_payload`` reads back (Go's, as Reactr wrote it)."""
        return json.dumps(
            {
                "method": self.method,
                "url": self.url,
                "request_id": self.request_id,
                "body": base64.b64encode(self.body).decode(),
                "headers": self.headers,
                "resp_headers": self.resp_headers,
                "params": self.params,
                "state": {key: base64.b64encode(value).decode() for key, value in self.state.items()},
            },
            separators=(",", ":"),  # ASCII: a header aiohttp kept undecodable still encodes
        ).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> CoordinatedRequest | None:
        """The request encoded in ``payload``, or None when it is not one.

        Like Reactr, a payload is a request when it is a JSON object whose
        ``method``, ``url`` and ``request_id`` are non-empty strings. As Go's
        decoder does, a lone UTF-16 surrogate escape in a string reads as U+FFFD.
        """
        if not payload.startswith(b"{") or b'"request_id"' not in payload:
            return None
        try:
            raw = _loads(payload)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            return None
        if not isinstance(raw, dict):
            return None
        lowered = {k.lower(): v for k, v in raw.items()}
        method, url, rid = (lowered.get(k) for k in ("method", "url", "request_id"))
        if not all(isinstance(v, str) and v for v in (method, url, rid)):
            return None
        try:
            return cls(
                method=str(method),
                url=str(url),
                request_id=str(rid),
                body=_b64(lowered.get("body")),
                headers={k.lower(): str(v) for k, v in _strings(lowered.get("headers")).items()},
                resp_headers=_strings(lowered.get("resp_headers")),
                params=_strings(lowered.get("params")),
                state={k: _b64(v) for k, v in _strings(lowered.get("state")).items()},
            )
        except (binascii.Error, ValueError, TypeError):
            return None

    # --- host-call access (reactr-abi.md §3.4, §3.5) -------------------------

    def get_field(self, field_type: int, key: str) -> bytes:
        """The value a guest reads; a missing key reads as empty (Reactr)."""
        if field_type == FIELD_META:
            meta = {"method": self.method, "url": self.url, "id": self.request_id}
            if key == "body":
                return self.body
            return meta.get(key, "").encode()
        if field_type == FIELD_BODY:
            return self._body_field(key).encode()
        if field_type == FIELD_HEADER:
            return self.headers.get(key.lower(), "").encode()
        if field_type == FIELD_PARAMS:
            return self.params.get(key, "").encode()
        if field_type == FIELD_STATE:
            return self.state.get(key, b"")
        if field_type == FIELD_QUERY:
            try:
                query = urlsplit(self.url).query
            except ValueError as error:  # e.g. an unclosed IPv6 bracket
                raise FieldError(f"url {self.url!r} cannot be parsed: {error}") from None
            values = parse_qs(query).get(key)
            return values[0].encode() if values else b""
        raise FieldError(f"invalid field type {field_type}")

    def set_field(self, field_type: int, key: str, value: str) -> None:
        if field_type == FIELD_META:
            if key == "method":
                self.method = value
            elif key == "url":
                self.url = value
            elif key == "body":
                self.body = value.encode()
            elif key != "id":
                raise FieldError(f"unknown meta field {key!r}")
        elif field_type == FIELD_BODY:
            fields = self._body_object() if self.body else {}
            fields[key] = value
            self.body = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        elif field_type == FIELD_HEADER:
            self.headers[key.lower()] = value
        elif field_type == FIELD_PARAMS:
            self.params[key] = value
        elif field_type == FIELD_STATE:
            self.state[key] = value.encode()
        else:
            raise FieldError(f"invalid field type {field_type}")

    def _body_object(self) -> dict[str, Any]:
        try:
            fields = _loads(self.body)
        except ValueError as error:
            raise FieldError(f"body is not JSON: {error}") from None
        except RecursionError:
            raise FieldError("body is JSON nested too deeply") from None
        if not isinstance(fields, dict):
            raise FieldError("body is not a JSON object")
        return fields

    def _body_field(self, key: str) -> str:
        if not self.body:
            return ""
        value = self._body_object().get(key)
        if not isinstance(value, str):
            raise FieldError(f"body field {key!r} is missing or not a string")
        return value


# A UTF-16 surrogate escape (\ud800-\udfff); json.loads joins valid pairs and keeps lone
# ones, which no UTF-8 encoder accepts. The hook runs only when one is present.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _loads(text: bytes) -> Any:
    """``json.loads``, with lone surrogates in object keys and string values read as U+FFFD.

    Raises ValueError and RecursionError as ``json.loads`` does.
    """
    if _SURROGATE_ESCAPE.search(text) is None:
        return json.loads(text)
    return json.loads(text, object_hook=_without_lone_surrogates)


def _without_lone_surrogates(pairs: dict[str, Any]) -> dict[str, Any]:
    def clean(value: Any) -> Any:
        return _LONE_SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value

    return {clean(key): clean(item) for key, item in pairs.items()}


def _b64(value: object) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise TypeError("expected a base64 string")
    return base64.b64decode(value, validate=True)


def _strings(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return {str(k): v for k, v in value.items() if isinstance(v, str)}
