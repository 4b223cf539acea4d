"""Which runnables' sources changed: the events behind ``reactr-wasm build --watch``.

watchfiles does the watching: the operating system's notifications (inotify, FSEvents,
ReadDirectoryChangesW) where they work, polling where they do not (network and container
mounts: ``WATCHFILES_FORCE_POLLING=1``), and it groups a burst of events (an editor's
save, a ``git checkout``) into one batch. A batch is yielded once no event came for
``STEP_MS``. Watching ``DIR/src`` rather than each folder sees runnables that are
added (``new``) or recreated.

Ignored: what builds write into a source folder (cargo's ``target/`` and ``Cargo.lock``),
hidden files and folders, and editors' temporary files (watchfiles' default filter).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watchfiles import Change

STEP_MS = 200  # quiet time that ends a batch: long enough for a multi-file save
BUILD_OUTPUTS = {"target", "Cargo.lock"}  # written by cargo while it builds: not edits


class _SourceFilter:
    """Keeps the changes to runnable sources under ``src``: ``src/NAME/...`` minus build outputs."""

    def __init__(self, src: Path) -> None:
        from watchfiles import DefaultFilter

        self.src = src
        self.default = DefaultFilter()

    def __call__(self, change: Change, path: str) -> bool:
        try:
            parts = Path(path).relative_to(self.src).parts
        except ValueError:
            return False
        if not parts or any(part.startswith(".") for part in parts) or BUILD_OUTPUTS.intersection(parts[1:]):
            return False
        return self.default(change, path)


def changed_runnables(src: Path) -> Iterator[set[str]]:
    """Yields, batch by batch, the names of the folders of ``src`` whose files changed.

    Runs until the caller stops iterating; Ctrl-C raises KeyboardInterrupt out of it.
    Raises FileNotFoundError when ``src`` does not exist.
    """
    import watchfiles  # imported here: only `build --watch` needs it

    root = src.resolve()
    for changes in watchfiles.watch(root, watch_filter=_SourceFilter(root), step=STEP_MS):
        names = {Path(path).relative_to(root).parts[0] for _, path in changes}
        if names:
            yield names
