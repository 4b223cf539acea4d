"""The compiled-module disk cache: wasmtime artefacts on disk, loaded only when provably ours.

Loading an artefact (``Module.deserialize``) maps it as machine code without
verifying it: damaged bytes do not raise, they crash the process (SIGSEGV,
SIGILL), at start or at the first job. So an entry is loaded only when

- the folder and the entry belong to this process's user and no one else can
  write them (anyone who can write an entry can run native code in the
  server), and the entry is a regular file, not a symlink;
- its header says this cache wrote it for this very module: the magic, the
  SHA-256 of the ``.wasm`` it was compiled from, and the length and SHA-256 of
  the artefact that follows, which must match the bytes read.

Anything else is logged with the file and the reason. A refused entry is
compiled again and rewritten (the folder is ours, so the new file replaces it);
a refused folder is neither read nor written: the module is compiled in memory.

Entry ``<sha256 of the .wasm>-wasmtime<version>.cwasm``, mode 0600, in a folder
created 0700::

    8 bytes   magic b"RWCWASM1"
    8 bytes   artefact length, unsigned little-endian
    32 bytes  SHA-256 of the .wasm
    32 bytes  SHA-256 of the artefact
    ...       the artefact (``Module.serialize()``)

wasmtime itself refuses artefacts of another version or engine configuration.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.metadata
import logging
import os
import stat
import struct
import tempfile
from pathlib import Path

from wasmtime import Engine, Module, WasmtimeError

log = logging.getLogger(__name__)

WASMTIME_VERSION = importlib.metadata.version("wasmtime")
MAGIC = b"RWCWASM1"
HEADER = struct.Struct("<8sQ32s32s")  # magic, artefact length, .wasm digest, artefact digest


def _foreign(info: os.stat_result) -> str | None:
    """Why a file or folder with ``info`` may hold someone else's bytes, or None when only we can write it."""
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}, not this user (uid {os.geteuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by group or others (mode {stat.S_IMODE(info.st_mode):#o})"
    return None


def _artefact(data: bytes, source_digest: bytes) -> tuple[bytes | None, str]:
    """``(artefact, "")`` when ``data`` is a sound entry for ``source_digest``, else ``(None, why not)``."""
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        return None, "not a reactr-wasm cache entry (no header)"
    if len(data) < HEADER.size:
        return None, f"truncated ({len(data)} of at least {HEADER.size} bytes)"
    _, length, source, digest = HEADER.unpack_from(data)
    artefact = data[HEADER.size :]
    if source != source_digest:
        return None, "compiled from another module"
    if len(artefact) != length:
        return None, f"truncated ({len(data)} of {HEADER.size + length} bytes)"
    if hashlib.sha256(artefact).digest() != digest:
        return None, "damaged (its SHA-256 does not match)"
    return artefact, ""


def _entry_bytes(path: Path) -> tuple[bytes | None, str]:
    """The bytes of the entry at ``path``; ``(None, "")`` if there is none, ``(None, why)`` if it may not be read."""
    try:
        # O_NOFOLLOW: a symlink could point anywhere. O_NONBLOCK: a FIFO must not hang the start.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, ""
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None, "a symbolic link, not a file"
        return None, f"cannot open it: {error.strerror or error}"
    # Read into memory rather than deserialize_file: that one maps the file, and
    # a file truncated under the mapping kills the process with SIGBUS.
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())  # the file actually opened, not whatever the name points to now
        reason = _foreign(info) if stat.S_ISREG(info.st_mode) else "not a regular file"
        return (None, reason) if reason else (file.read(), "")


class ModuleCache:
    """Compiled modules on disk (None: no cache), keyed by the module's SHA-256 and the wasmtime version.

    ``load`` never raises for a cache problem: a damaged, truncated, foreign or
    exposed entry, or an unusable folder, is logged as a warning naming it, and
    the module is compiled instead.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._refused_folder = ""  # the last folder warning, so many modules log it once

    def load(self, engine: Engine, wasm: bytes) -> Module:
        """The compiled ``wasm``, from a sound cache entry if any; raises WasmtimeError if it cannot compile."""
        source_digest = hashlib.sha256(wasm).digest()
        path = self._entry_path(source_digest)
        if path is not None:
            module = self._read(engine, path, source_digest)
            if module is not None:
                return module
        module = Module(engine, wasm)
        if path is not None:
            self._write(path, source_digest, module)
        return module

    def _entry_path(self, source_digest: bytes) -> Path | None:
        """Where the entry of the module with ``source_digest`` lives; None without a usable folder."""
        if self.directory is None or not self._folder_usable(self.directory):
            return None
        return self.directory / f"{source_digest.hex()}-wasmtime{WASMTIME_VERSION}.cwasm"

    def _folder_usable(self, folder: Path) -> bool:
        """Create the folder (0700) if missing; False, with a warning, if it is not ours alone."""
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            reason = _foreign(folder.stat())
        except OSError as error:
            reason = f"cannot create it: {error}"
        if reason is None:
            self._refused_folder = ""
            return True
        warning = f"not using the compiled cache folder {folder}: {reason}; compiling in memory"
        if warning != self._refused_folder:
            log.warning("%s", warning)
            self._refused_folder = warning
        return False

    @staticmethod
    def _read(engine: Engine, path: Path, source_digest: bytes) -> Module | None:
        """The module of a sound entry at ``path``; None (with a warning, unless there is no entry) otherwise."""
        data, reason = _entry_bytes(path)
        if data is not None:
            artefact, reason = _artefact(data, source_digest)
            if artefact is not None:
                try:
                    return Module.deserialize(engine, artefact)
                except WasmtimeError as error:
                    reason = f"wasmtime refused it: {str(error).strip().splitlines()[0]}"
        if reason:
            log.warning("ignoring compiled cache entry %s: %s; compiling it again", path, reason)
        return None

    @staticmethod
    def _write(path: Path, source_digest: bytes, module: Module) -> None:
        """Write the entry atomically (temp file, then rename); a failure is logged, not raised."""
        artefact = module.serialize()
        header = HEADER.pack(MAGIC, len(artefact), source_digest, hashlib.sha256(artefact).digest())
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")  # mode 0600
            with os.fdopen(fd, "wb") as out:
                out.write(header)
                out.write(artefact)
            # Readers never see a half-written file. No fsync: an entry cut short
            # by a power loss fails its digest and is compiled again.
            os.replace(tmp, path)
        except OSError as error:
            log.warning("cannot write compiled cache entry %s: %s", path, error)
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


__all__ = ["WASMTIME_VERSION", "ModuleCache"]
