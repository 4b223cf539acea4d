"""Hot reload: keep the served runnables in step with the ``*.wasm`` files of a folder.

A ``.wasm`` file added, replaced or removed is served, updated or withdrawn
without a restart. A replacement that does not load is logged and the previous
version keeps serving; jobs in flight finish on the version they started on
(``Reactr.register`` replaces a name that way). Two ways to notice a change:

**Events (Linux, inotify through ``folder_events.py``)** - the default. A file is
loaded only when the kernel says its bytes are complete: a writer closed it
after writing, or it was renamed into the folder (``mv``, ``reactr-wasm build``;
a rename is atomic). Writes alone never load anything, however long the writer
pauses, so a file is never loaded half-written. If the file is written again
before the server has read it (a write event arrives after the close, even one
that comes while the server reads), that read is dropped and the next close is
awaited. A file deleted or renamed away is withdrawn. A file that appears by
``ln`` is picked up at its next close or rename. Latency: the compile time.

**Polling (the fallback)** - when events are unavailable: not Linux, the folder
on a network or FUSE file system, inotify refused (instance or watch limits),
or the watch ended at run time (folder removed, moved or unmounted). The reason
is logged as a warning naming the folder. Every 0.5 s each file is stat'ed; a
file whose stat (inode, size, mtime, ctime) changed is *settling* and is loaded
once the next poll sees the same stat again (latency 0.5-1 s). So a writer
that pauses for longer than a poll interval mid-file can get its half-written
file loaded (or refused, if it does not compile); its final version is loaded
once it finishes. Writing elsewhere and renaming into the folder is safe here too.

Common to both:
- a file is read once and hashed (SHA-256); the same content as the last
  attempt (a ``touch``, a rewrite with equal bytes) changes nothing;
- a load that fails (ModuleError) is logged with the file and the reason and
  remembered by its hash: it is retried as soon as the content changes again;
  while no version of that runnable is served, ``load_errors`` holds the reason
  (the server answers its jobs 503 with it rather than 404);
- at start-up (``poll(settle=False)``) every file present is loaded as it is;
  with events, one still being written then is reloaded when its writer closes it;
- a folder that cannot be read (moved away, unmounted, a typo) withdraws nothing: that
  is not "delete all"; files deleted from it are withdrawn;
- if the kernel's event queue overflows (events lost), the folder is rescanned
  at once as at start-up and a warning is logged.

It runs as an asyncio task of the server (``cleanup_ctx``); loading runs on a
worker thread (``asyncio.to_thread``) because compiling a module blocks. The task
stops before the app's cleanup finishes, after its current step, so no
registration races the scheduler's shutdown. ``poll()``, ``watch_events()`` and
``apply_events()`` are plain synchronous code, so embedders and tests can drive
the folder without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from reactr_wasm.errors import ModuleError, RunnableNotFound
from reactr_wasm.server.folder_events import READY, REMOVED, Batch, EventsUnavailable, FolderEvents

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


def _runnable_name(file_name: str) -> str | None:
    """``NAME`` for ``NAME.wasm``; None for other files and hidden ones (build scratch files)."""
    if file_name.endswith(".wasm") and not file_name.startswith("."):
        return file_name[: -len(".wasm")]
    return None


@dataclass
class _File:
    stat: Stat
    settled: bool = False  # polling: seen with this stat on two polls in a row
    digest: str = ""  # SHA-256 of the last content tried, loaded or not
    served: bool = False  # some version of this file is registered


class RunnableFolder:
    """Serves every ``NAME.wasm`` of ``directory`` under ``NAME`` and follows changes.

    ``events=False`` never tries inotify (polling only). Use as a context manager
    or call ``close()`` after ``watch_events()``.
    """

    def __init__(
        self, directory: Path, load: Load, unload: Unload, *, interval: float = POLL_SECONDS, events: bool = True
    ) -> None:
        self.directory, self.interval = directory, interval
        self._load, self._unload = load, unload
        self._files: dict[str, _File] = {}
        self.load_errors: dict[str, str] = {}  # runnable -> why it does not load, while none of it is served
        self._missing_logged = False
        self._use_events = events  # False after a fall-back: events are not tried again
        self._events: FolderEvents | None = None

    @property
    def served(self) -> list[str]:
        return sorted(name for name, file in self._files.items() if file.served)

    @property
    def mode(self) -> str:
        """``"events"`` while inotify is followed, else ``"polling"``."""
        return "events" if self._events is not None else "polling"

    def __enter__(self) -> RunnableFolder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop following events (polling needs no cleanup)."""
        if self._events is not None:
            self._events.close()
            self._events = None

    # --- polling -------------------------------------------------------------------

    def _scan(self) -> dict[str, Path] | None:
        try:
            entries = list(os.scandir(self.directory))
        except OSError as error:
            if not self._missing_logged:
                log.warning("cannot read runnables folder %s: %s; serving what is loaded", self.directory, error)
                self._missing_logged = True
            return None
        self._missing_logged = False
        paths = {}
        for entry in entries:
            name = _runnable_name(entry.name)
            if name is not None and entry.is_file():
                paths[name] = Path(entry.path)
        return paths

    def poll(self, *, settle: bool = True) -> None:
        """Apply what changed since the last poll. ``settle=False`` loads changed files at once (start-up)."""
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
                file.settled = True  # the same stat on two polls in a row: the writer is taken to be done
            if file.settled:
                self._try_load(name, path, file)

    # --- events --------------------------------------------------------------------

    def watch_events(self) -> bool:
        """Follow inotify events from now on; False (logged) when they are unavailable: ``poll`` then."""
        if self._events is not None:
            return True
        try:
            self._events = FolderEvents(self.directory)
        except EventsUnavailable as why:
            self._fall_back(str(why))
            return False
        log.info("hot reload of %s: loading files when they are closed after writing or renamed in", self.directory)
        return True

    def _fall_back(self, why: str) -> None:
        self._use_events = False
        log.warning(
            "hot reload of %s: %s; polling every %g s instead: a file is loaded once it is unchanged for one "
            "interval, so replace runnables by renaming a finished file into the folder",
            self.directory,
            why,
            self.interval,
        )

    def apply_events(self) -> None:
        """Apply the events that have arrived, without waiting for more.

        When the watch has ended (folder removed, moved, unmounted) or reading
        events fails, this logs why and switches to polling (``mode``).
        """
        if self._events is None:
            return
        try:
            batch = self._events.drain()
            while batch:
                batch = self._apply(batch)
        except OSError as error:
            self.close()
            self._fall_back(f"reading inotify events failed: {error}")

    def _apply(self, batch: Batch) -> Batch:
        """Apply one batch; returns the events that arrived meanwhile (to apply next)."""
        if batch.overflowed:
            log.warning("hot reload of %s: inotify events were lost (queue overflow); rescanning", self.directory)
            self.poll(settle=False)
        later = Batch()
        for file_name, state in batch.files.items():
            name = _runnable_name(file_name)
            if name is None:
                continue
            path = self.directory / file_name
            if state == REMOVED and name in self._files and not path.exists():
                self._withdraw(name)
            elif state == READY and (stat := _stat(path)) is not None:
                file = self._files.setdefault(name, _File(stat))
                file.stat, file.settled = stat, True
                self._try_load(name, path, file, later)
        if batch.lost:
            self.close()
            self._fall_back(f"events stopped: {batch.lost}")
        return later

    # --- loading -------------------------------------------------------------------

    def _try_load(self, name: str, path: Path, file: _File, later: Batch | None = None) -> None:
        """Read, hash and load ``path``; with ``later``, drop the read if the file was touched meanwhile."""
        try:
            data = path.read_bytes()
        except OSError as error:
            log.warning("runnable '%s': cannot read %s: %s", name, path, error)
            return
        if later is not None and self._events is not None:
            later.update(self._events.drain())
            if path.name in later.files:
                return  # written, replaced or removed while being read: its next event decides
        digest = hashlib.sha256(data).hexdigest()
        if digest == file.digest:
            return  # same bytes as the last attempt: nothing new to serve or to report
        file.digest = digest
        try:
            self._load(name, data, path)
        except ModuleError as error:
            log.error("%s%s", error, "; the previous version keeps serving" if file.served else "")
            self._failed(name, file, str(error))
            return
        except Exception as error:  # a host bug on one module must not stop the others from loading
            log.exception("runnable '%s' (%s): cannot load", name, path)
            self._failed(name, file, f"runnable '{name}' ({path}): cannot load: {type(error).__name__}: {error}")
            return
        log.info("runnable '%s' %s from %s", name, "reloaded" if file.served else "loaded", path)
        file.served = True
        self.load_errors.pop(name, None)

    def _failed(self, name: str, file: _File, reason: str) -> None:
        if not file.served:  # a served version answers its jobs meanwhile
            self.load_errors[name] = reason

    def _withdraw(self, name: str) -> None:
        file = self._files.pop(name)
        self.load_errors.pop(name, None)
        if not file.served:
            return
        try:
            self._unload(name)
        except RunnableNotFound:
            return
        log.info("runnable '%s' withdrawn: %s was removed", name, self.directory / f"{name}.wasm")

    # --- running in the server -------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Follow the folder until ``stopping`` is set: by events when possible, else by polling."""
        try:
            if self._events is not None or (self._use_events and self.watch_events()):
                await self._step(partial(self.poll, settle=False))  # changes made before the watch began
                await self._follow_events(stopping)
            await self._follow_polls(stopping)
        finally:
            self.close()

    async def _step(self, step: Callable[[], None]) -> None:
        try:
            await asyncio.to_thread(step)
        except Exception:  # a bug must not end hot reload for the server's lifetime
            log.exception("hot reload of %s failed; retrying", self.directory)

    async def _follow_events(self, stopping: asyncio.Event) -> None:
        """Apply events as they arrive, until ``stopping`` is set or the watch ends."""
        stop = asyncio.ensure_future(stopping.wait())
        try:
            while (events := self._events) is not None and not stopping.is_set():
                arrival = asyncio.ensure_future(events.wait())
                await asyncio.wait({arrival, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not arrival.done():
                    arrival.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await arrival
                    return
                if (error := arrival.exception()) is not None:
                    self.close()
                    self._fall_back(f"reading inotify events failed: {error}")
                    return
                await self._step(self.apply_events)
        finally:
            stop.cancel()

    async def _follow_polls(self, stopping: asyncio.Event) -> None:
        """Poll every ``interval`` seconds until ``stopping`` is set."""
        while True:
            try:
                await asyncio.wait_for(stopping.wait(), self.interval)
                return
            except TimeoutError:
                pass
            await self._step(self.poll)

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """For ``app.cleanup_ctx``: watch while the app runs; stop after the current step."""
        stopping = asyncio.Event()
        if self._use_events:
            self.watch_events()  # before serving: no change after start-up goes unseen
        task = asyncio.create_task(self.run(stopping), name=f"reactr-watch {self.directory}")
        yield
        stopping.set()
        await task
