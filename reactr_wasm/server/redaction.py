"""Secrets out of the log: a filter that masks credentials in every record a handler writes.

Two kinds of text are masked, in the message, its arguments, the traceback,
the stack and the string ``extra`` fields (what the JSON format writes) of
every record, aiohttp's and asyncio's included:

- the value of an ``Authorization``, ``Proxy-Authorization``, ``Cookie`` or
  ``Set-Cookie`` header, written as ``Name: value``, ``'Name': 'value'`` or
  ``name=value`` (header lines, header reprs, a parser error quoting a line);
- every configured secret (``secret_values``) wherever it appears, e.g. a
  bearer token a client put in the URL, which the access log's request line shows.

Most text holds neither, and the pattern is slow: ~14 µs on one access-log line
here (measured on a busy machine). So ASCII text (nearly all of it) is first
searched for the lowercased header names and secrets with ``in`` (~1 µs), and
the pattern runs only on a hit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from reactr_wasm.config import MASK, Config
from reactr_wasm.server.logformat import RECORD_ATTRIBUTES

MIN_SECRET = 4  # characters; masking shorter values would mask ordinary words everywhere
_CREDENTIAL_HEADERS = (
    r"(?P<name>\b(?:proxy-)?authorization|\b(?:set-)?cookie)"  # the header's name
    r"""(?P<sep>['"]?\s*[:=]\s*(?:b?['"])?)"""  # ": ", "': '", "=", "': b'"
    r"""(?P<value>[^\r\n'"]+)"""  # up to the end of the line or of the quoted repr
)
_FORMATTER = logging.Formatter()


def secret_values(config: Config) -> list[str]:
    """The text to mask for each configured secret (``Config.secrets``): the value, a credential's part
    after its scheme ("Bearer abc": also "abc"), and a URL's password (as written and decoded)."""
    values = []
    for secret in config.secrets():
        values += [secret, secret.partition(" ")[2].strip()]
        if "://" in secret:
            try:
                password = urlsplit(secret).password
            except ValueError:  # not a URL after all
                password = None
            values += [password, unquote(password)] if password else []
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
        # Every match holds one of these, lowercased. The pre-check is exact only for ASCII on both
        # sides (IGNORECASE also equates the dotless i with "i"), so other text, or a non-ASCII secret, skips it.
        needles = ["authorization", "cookie", *(secret.lower() for secret in kept)]
        self._needles = needles if all(needle.isascii() for needle in needles) else None

    def redact(self, text: str) -> str:
        """``text`` with credential header values and secrets masked; ``text`` itself when there is none."""
        return text if self._clean(text) else self._pattern.sub(self._mask, text)

    def _clean(self, text: str) -> bool:
        """True when ``text`` has surely nothing to mask; False when it may have."""
        needles = self._needles
        if needles is None or not text.isascii():
            return False
        lowered = text.lower()
        for needle in needles:  # noqa: SIM110  # a loop, not all(...): twice as fast for a few needles
            if needle in lowered:
                return False
        return True

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
        fields = vars(record)
        texts = {key: value for key in fields.keys() - RECORD_ATTRIBUTES if isinstance(value := fields[key], str)}
        if texts and not self._clean("\n".join(texts.values())):  # one pre-check for all: most have nothing
            for key, value in texts.items():
                fields[key] = self.redact(value)
        return True
