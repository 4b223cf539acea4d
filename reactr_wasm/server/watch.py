"""Hot reload: keep the served runnables in step with the ``*.wasm`` files of a folder.

A ``.wasm`` file added, replaced or removed is served, updated or withdrawn
within about a second, without a restart. A replacement that does not load is
logged and the previous version keeps serving; jobs in flight finish on the
version they started on (``Reactr.register`` replaces a name that way).

Why a stat-polling loop rather than ``watchfiles`` (or ``watchdog``): a folder
of runnables holds a handful of files, so one ``stat`` per file every 0.5 s
costs nothing measurable, while an inotify-based library adds a compiled
dependency whose events still need the same debounce and content checks
(editors and ``cp`` write a file in several steps; ``mv`` over a file shows as
delete + create), and whose events are missed or unsupported on network,
overlay and some container or CI file systems, where polling just works. The
loop is ~100 lines and has no failure mode of its own.

How a change is picked up (``poll()``):
- a file whose stat (inode, size, mtime, ctime) differs from the last poll is
  *settling*: it is loaded only once a poll sees the same stat again, so a
  file still being written is not loaded half-way (latency: 0.5-1 s);
- a settled file is read once and hashed (SHA-256); the same content as the
  last attempt (a ``touch``, a rewrite with equal bytes) changes nothing;
- a load that fails (ModuleError) is logged with the file and the reason and
  remembered by its hash: it is retried as soon as the content changes again,
  so a file caught half-written by a slow writer heals by itself;
- a file that disappears is withdrawn (``deregister``); queued jobs still run.
  A missing folder withdraws nothing (a remount or a typo is not "delete all").

It runs as an asyncio task of the server (``cleanup_ctx``), each poll on a
worker thread (``asyncio.to_thread``) because compiling a module blocks; the
task stops before the app's cleanup finishes, after its current poll, so no
registration races the scheduler's shutdown. ``poll()`` is plain synchronous
code, so embedders and tests can drive it without a server.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModuleError, RunnableNotFound

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5

Load = Callable[[str, bytes, Path], None]  # name, module bytes, file; raises ModuleError
Unload = Callable[[str], None]  # name; raises RunnableNotFound when not registered

Stat = tuple[int, int, int, int]


def _stat(path: Path) -> Stat | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


@dataclass
class _File:
    stat: Stat
    settled: bool = False  # seen with this stat on two polls in a row
    digest: str = ""  # SHA-256 of the last content tried, loaded or not
    served: bool = False  # some version of this file is registered


class RunnableFolder:
    """Serves every ``NAME.wasm`` of ``directory`` under ``NAME`` and follows changes."""

    def __init__(self, directory: Path, load: Load, unload: Unload, *, interval: float = POLL_SECONDS) -> None:
        self.directory, self.interval = directory, interval
        self._load, self._unload = load, unload
        self._files: dict[str, _File] = {}
        self._missing_logged = False

    @property
    def served(self) -> list[str]:
        return sorted(name for name, file in self._files.items() if file.served)

    def _scan(self) -> dict[str, Path] | None:
        try:
            entries = list(os.scandir(self.directory))
        except OSError as error:
            if not self._missing_logged:
                log.warning("cannot read runnables folder %s: %s; serving what is loaded", self.directory, error)
                self._missing_logged = True
            return None
        self._missing_logged = False
        return {
            Path(entry.name).stem: Path(entry.path)
            for entry in entries
            if entry.name.endswith(".wasm") and not entry.name.startswith(".") and entry.is_file()
        }

    def poll(self, *, settle: bool = True) -> None:
        """Apply what changed since the last poll. ``settle=False`` loads new files at once (start-up)."""
        paths = self._scan()
        if paths is None:
            return
        for name in sorted(self._files.keys() - paths.keys()):
            self._withdraw(name)
        for name, path in sorted(paths.items()):
            stat = _stat(path)
            if stat is None:
                continue  # vanished since the scan; the next poll withdraws it
            file = self._files.get(name)
            if file is None or file.stat != stat:  # new or changed: maybe still being written
                file = self._files.setdefault(name, _File(stat))
                file.stat, file.settled = stat, not settle
            elif file.settled:
                continue  # unchanged and already handled
            else:
                file.settled = True  # the same stat on two polls in a row: the writer is done
            if file.settled:
                self._try_load(name, path, file)

    def _try_load(self, name: str, path: Path, file: _File) -> None:
        try:
            data = path.read_bytes()
        except OSError as error:
            log.warning("runnable '%s': cannot read %s: %s", name, path, error)
            return
        digest = hashlib.sha256(data).hexdigest()
        if digest == file.digest:
            return  # same bytes as the last attempt: nothing new to serve or to report
        file.digest = digest
        try:
            self._load(name, data, path)
        except ModuleError as error:
            log.error("%s%s", error, "; the previous version keeps serving" if file.served else "")
            return
        except Exception:  # a host bug on one module must not stop the others from loading
            log.exception("runnable '%s' (%s): cannot load", name, path)
            return
        log.info("runnable '%s' %s from %s", name, "reloaded" if file.served else "loaded", path)
        file.served = True

    def _withdraw(self, name: str) -> None:
        file = self._files.pop(name)
        if not file.served:
            return
        try:
            self._unload(name)
        except RunnableNotFound:
            return
        log.info("runnable '%s' withdrawn: %s was removed", name, self.directory / f"{name}.wasm")

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll every ``interval`` seconds until ``stopping`` is set; each poll runs on a worker thread."""
        while True:
            try:
                await asyncio.wait_for(stopping.wait(), self.interval)
                return
            except TimeoutError:
                pass
            try:
                await asyncio.to_thread(self.poll)
            except Exception:  # a bug must not end hot reload for the server's lifetime
                log.exception("hot reload of %s failed; retrying", self.directory)

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``: watch while the app runs; stop after the current poll."""
        stopping = asyncio.Event()
        task = asyncio.create_task(self.run(stopping), name=f"reactr-watch {self.directory}")
        yield
        stopping.set()
        await task
