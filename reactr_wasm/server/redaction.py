"""Secrets out of the log: a filter that masks credentials in every record a handler writes.

Two kinds of text are masked, in the message, its arguments, the traceback
and the stack of every record, aiohttp's and asyncio's included:

- the value of an ``Authorization``, ``Proxy-Authorization``, ``Cookie`` or
  ``Set-Cookie`` header, written as ``Name: value``, ``'Name': 'value'`` or
  ``name=value`` (header lines, header reprs, a parser error quoting a line);
- every configured secret (``secret_values``) wherever it appears, e.g. a
  bearer token a client put in the URL, which the access log's request line shows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from ..config import MASK, Config

MIN_SECRET = 4  # characters; masking shorter values would mask ordinary words everywhere
_CREDENTIAL_HEADERS = (
    r"(?P<name>\b(?:proxy-)?authorization|\b(?:set-)?cookie)"  # the header's name
    r"""(?P<sep>['"]?\s*[:=]\s*(?:b?['"])?)"""  # ": ", "': '", "=", "': b'"
    r"""(?P<value>[^\r\n'"]+)"""  # up to the end of the line or of the quoted repr
)
_FORMATTER = logging.Formatter()


def secret_values(config: Config) -> list[str]:
    """The configured secrets to mask: tokens, keys, Authorization values and their credentials, URL passwords."""
    values = [*config.server.auth_tokens, config.callbacks.secret or ""]
    auth_tables = [config.capabilities.http.auth, *(own.http.get("auth", {}) for own in config.runnables.values())]
    for table in auth_tables:
        for value in table.values():
            values += [value, value.partition(" ")[2].strip()]  # "Bearer abc": also "abc" alone
    for url in (config.capabilities.cache.url, config.capabilities.db.url):
        password = urlsplit(url).password if url else None
        if password:
            values += [password, unquote(password)]
    return sorted({value for value in values if value})


class Redactor(logging.Filter):
    """Masks credential headers and the given secrets in each record (see the module docstring); never drops one.

    Secrets shorter than ``MIN_SECRET`` characters are not masked.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first: a secret containing another is masked whole.
        kept = sorted({secret for secret in secrets if len(secret) >= MIN_SECRET}, key=len, reverse=True)
        alternatives = [_CREDENTIAL_HEADERS, *(re.escape(secret) for secret in kept)]
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE)

    def redact(self, text: str) -> str:
        return self._pattern.sub(self._mask, text)

    @staticmethod
    def _mask(match: re.Match[str]) -> str:
        if match.group("name") is None:
            return MASK
        return f"{match.group('name')}{match.group('sep')}{MASK}"

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: the handler reports it
            return True
        redacted = self.redact(message)
        if redacted != message:  # else msg and args stay as they are, for handlers that group by them
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)  # what the handler would print
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True
