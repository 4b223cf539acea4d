"""The static-file capability behind ``get_static_file``: read-only files under one root.

Names are normalised as Reactr's bundle loader did (strip one ``static/``, then
one leading ``/``, then one ``./``), so ``static/a.md``, ``/a.md`` and ``./a.md``
all mean ``<root>/a.md``; a leading ``/`` therefore names the static root, never
the host's filesystem. Everything that could leave the root is refused before
any file is opened: ``..`` segments, names still absolute after normalisation
(``//etc/passwd``), backslashes and NUL bytes. Symlinks are followed only while
their target stays inside the root. Only regular files are served, up to a size
cap. The root is configured by the host, never writable by guests, so the
check-then-open gap is not an attack surface; ``O_NOFOLLOW`` still closes it for
the last path component.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reactr_wasm.capabilities.errors import CapabilityError
from reactr_wasm.errors import ConfigError

FILE_DOES_NOT_EXIST = "file does not exist"  # byte-exact: Reactr's bundle loader

DEFAULT_MAX_BYTES = 16 * 1024 * 1024


def normalise_name(name: str) -> str:
    """Reactr's ``NormalizeStaticFilename``: one ``static/``, one leading ``/``, one ``./`` removed, in that order."""
    name = name.removeprefix("static/")
    name = name.removeprefix("/")
    return name.removeprefix("./")


def _refusal(name: str) -> str | None:
    """Why ``name`` (already normalised) may not be looked up, or ``None``."""
    if not name:
        return "empty file name"
    if "\x00" in name:
        return "file name contains a NUL byte"
    if "\\" in name:
        return "file name contains a backslash"
    if name.startswith("/"):
        return "absolute paths are not allowed"
    if ".." in name.split("/"):
        return "path traversal ('..') is not allowed"
    return None


class StaticFiles:
    """Serves the regular files under ``root`` to guests, by Reactr-normalised name.

    Raises ``ConfigError`` at construction when ``root`` is not a directory.
    """

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        try:
            self._root = root.resolve(strict=True)
        except OSError as error:
            raise ConfigError(f"static files root {str(root)!r}: {_describe(error)}") from error
        if not self._root.is_dir():
            raise ConfigError(f"static files root {str(root)!r}: not a directory")
        self._max_bytes = max_bytes

    @property
    def root(self) -> Path:
        return self._root

    def read(self, name: str) -> bytes:
        """The bytes of file ``name``.

        Raises ``CapabilityError`` with ``file does not exist`` when it is missing,
        or ``static file '<name>' refused: <reason>`` when the name or the file is
        not allowed (traversal, outside the root, not a regular file, too large).
        """
        relative = normalise_name(name)
        reason = _refusal(relative)
        if reason is not None:
            raise CapabilityError(f"static file {name!r} refused: {reason}")
        try:
            resolved = (self._root / relative).resolve(strict=True)
        except FileNotFoundError:
            raise CapabilityError(FILE_DOES_NOT_EXIST) from None
        except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
            raise CapabilityError(f"static file {name!r} refused: {_describe(error)}") from None
        if not resolved.is_relative_to(self._root):
            raise CapabilityError(f"static file {name!r} refused: it resolves outside the static root")
        return self._read_regular(name, resolved)

    def _read_regular(self, name: str, path: Path) -> bytes:
        # O_NONBLOCK: opening a FIFO must not hang the worker thread.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise CapabilityError(FILE_DOES_NOT_EXIST) from None
        except OSError as error:
            raise CapabilityError(f"static file {name!r} refused: {_describe(error)}") from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise CapabilityError(f"static file {name!r} refused: it is a directory")
            if not stat.S_ISREG(info.st_mode):
                raise CapabilityError(f"static file {name!r} refused: not a regular file")
            if info.st_size > self._max_bytes:
                raise CapabilityError(f"static file {name!r} refused: larger than {self._max_bytes} bytes")
            data = _read_at_most(fd, self._max_bytes + 1)
        finally:
            os.close(fd)
        if len(data) > self._max_bytes:  # grew after fstat
            raise CapabilityError(f"static file {name!r} refused: larger than {self._max_bytes} bytes")
        return data


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__
