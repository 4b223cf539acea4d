"""Linux inotify events for hot reload: which files of the folder are ready, being written, or gone.

``watch.py`` decides what to load; this module only turns the kernel's events
into a ``Batch``: for each file name touched, the state its last event left it in.

- ``READY``: a writer closed it after writing (``IN_CLOSE_WRITE``) or it was
  renamed into the folder (``IN_MOVED_TO``, atomic): its bytes are complete.
- ``WRITING``: written (or truncated) after its last close: not to be read now.
- ``REMOVED``: deleted or renamed away.

Why asyncinotify: ``watchfiles`` (Rust ``notify``) reports only added, modified
and deleted, and drops the close events this rule needs; asyncinotify is a small,
typed, pure-Python binding of the inotify calls that hands over the raw event
masks and waits on the asyncio loop (``get``) or without one (``sync_get``).
It is Linux-only, a dependency only there (``sys_platform == 'linux'``).

``FolderEvents(directory)`` raises ``EventsUnavailable`` with a reason for the
log when events cannot be trusted: not Linux, the binding missing, inotify
refused (instance or watch limits), or the folder on a network or FUSE file
system (``/proc/self/mountinfo``), where changes made by other machines raise no
event. The caller then polls instead.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from asyncinotify import Event, Inotify, Mask

READY: Final = "ready"
WRITING: Final = "writing"
REMOVED: Final = "removed"
FileState = Literal["ready", "writing", "removed"]

# File systems whose changes may come from elsewhere (another machine, the host of
# a VM or container) and so raise no inotify event here. "fuse" covers fuse.sshfs,
# fuse.rclone, ...; fuseblk (local disks through FUSE, e.g. NTFS) is not listed.
REMOTE_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "gpfs", "virtiofs",
     "vboxsf", "davfs", "fuse"}
)  # fmt: skip


class EventsUnavailable(Exception):
    """inotify cannot follow this folder; the message says why."""


@dataclass
class Batch:
    """What a run of events says about the folder."""

    files: dict[str, FileState] = field(default_factory=dict)  # file name -> state after its last event
    overflowed: bool = False  # the kernel's queue overflowed: events were lost
    lost: str = ""  # why the watch ended (folder removed, moved, unmounted); "" while it lasts

    def __bool__(self) -> bool:
        return bool(self.files or self.overflowed or self.lost)

    def update(self, later: Batch) -> None:
        """Add the events of ``later``, which came after these."""
        for name, state in later.files.items():
            self.files.pop(name, None)  # keep arrival order: the latest event goes last
            self.files[name] = state
        self.overflowed |= later.overflowed
        self.lost = self.lost or later.lost


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the file system holding ``path`` (``ext4``, ``nfs4``, ...); None when unknown.

    Reads ``/proc/self/mountinfo`` unless ``mountinfo`` (its text) is given; the
    longest mount point that contains ``path`` wins.
    """
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = str(path.resolve())
    best, best_type = "", None
    for line in mountinfo.splitlines():
        fields, _, tail = line.partition(" - ")
        parts, types = fields.split(), tail.split()
        if len(parts) < 5 or not types:
            continue
        point = parts[4].encode().decode("unicode_escape")  # spaces are written as \040
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, types[0]
    return best_type


class FolderEvents:
    """An inotify watch on one folder. Not thread-safe: one caller at a time.

    Raises EventsUnavailable (at construction) when events cannot be used.
    """

    def __init__(self, directory: Path) -> None:
        if not sys.platform.startswith("linux"):
            raise EventsUnavailable(f"inotify is Linux-only (this is {sys.platform})")
        try:
            from asyncinotify import Inotify, Mask
        except (ImportError, OSError, RuntimeError) as error:  # RuntimeError: no inotify in the C library
            raise EventsUnavailable(f"the inotify binding (asyncinotify) cannot be loaded: {error}") from None
        kind = filesystem_type(directory)
        if kind is not None and kind.split(".")[0] in REMOTE_FILESYSTEMS:
            raise EventsUnavailable(f"{directory} is on a {kind} file system: changes made elsewhere raise no event")
        self._flags: type[Mask] = Mask
        try:
            self._inotify: Inotify = Inotify(sync_timeout=0)
        except OSError as error:
            raise EventsUnavailable(f"inotify refused: {error}") from None
        # MODIFY is watched only to notice a write after a close; it never triggers a load.
        watched = (
            Mask.CLOSE_WRITE | Mask.MOVED_TO | Mask.MODIFY | Mask.DELETE | Mask.MOVED_FROM
            | Mask.DELETE_SELF | Mask.MOVE_SELF | Mask.ONLYDIR | Mask.EXCL_UNLINK
        )  # fmt: skip
        try:
            self._inotify.add_watch(directory, watched)
        except OSError as error:
            self._inotify.close()
            raise EventsUnavailable(f"inotify cannot watch {directory}: {error}") from None
        self._arrived: list[Event] = []

    async def wait(self) -> None:
        """Return once an event has arrived (``drain`` then collects it); raises OSError."""
        self._arrived.append(await self._inotify.get())

    def drain(self) -> Batch:
        """Every event that has arrived, as a Batch; does not wait. Raises OSError."""
        batch = Batch()
        events, self._arrived = self._arrived, []
        while (event := self._inotify.sync_get()) is not None:
            events.append(event)
        for event in events:
            self._add(batch, event)
        return batch

    def _add(self, batch: Batch, event: Event) -> None:
        flags, mask, name = self._flags, event.mask, event.name
        if mask & flags.Q_OVERFLOW:
            batch.overflowed = True
        if mask & (flags.DELETE_SELF | flags.MOVE_SELF | flags.UNMOUNT | flags.IGNORED) and not batch.lost:
            batch.lost = (
                "its file system was unmounted" if mask & flags.UNMOUNT
                else "the folder was moved" if mask & flags.MOVE_SELF
                else "the folder was removed"
            )  # fmt: skip
        if name is None or mask & flags.ISDIR:
            return
        state: FileState
        if mask & (flags.CLOSE_WRITE | flags.MOVED_TO):
            state = READY
        elif mask & flags.MODIFY:
            state = WRITING
        elif mask & (flags.DELETE | flags.MOVED_FROM):
            state = REMOVED
        else:
            return
        batch.files.pop(str(name), None)  # re-insert: the order of the files is the order of their last events
        batch.files[str(name)] = state

    def close(self) -> None:
        self._inotify.close()
