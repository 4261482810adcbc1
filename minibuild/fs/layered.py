"""A layered stage root: a host directory that holds only what a build touched, filled from the image's layers on
first touch, so no base image is unpacked for the paths its steps never read.

How it works (``docs/architecture.md``, "The layered root"):

* The **lower** layers are the image's, read in place (``LowerTree``: the merged layer headers of
  ``minibuild.view``, file content read at its offset in the uncompressed layer blob). The **upper** is the host
  directory: whatever a step created, changed or removed, plus the lower paths copied up when first touched.
* **A read finds its layer** through the one resolver (``minibuild.fs.confine``): before it looks at a path
  component on the host it asks this root to *fill* it. A path not filled yet is copied up from the lower layers
  with its metadata (owner, mode, mtime, xattrs, device numbers and hard links go to the ownership overlay,
  ``minibuild.fs.ownership``); a directory is listed only after all its children were filled
  (``ensure_children``). Each path is filled at most once: after that the host directory is the truth.
* **A write, a delete and a rename** are plain host operations on filled paths. A deleted path stays deleted (it
  is never filled again); a directory removed and made again is *opaque*: the lower children of the old one never
  show through (a filled directory remembers its inode and overlay generation, and children are filled only into
  that same directory) — the semantics of overlayfs and of OCI's opaque whiteouts.
* **A step's layer** is the diff of the host directory against the snapshot taken when the step began plus the
  records of what the step filled (``begin_step``/``end_step``): paths never touched are in neither, so the diff
  costs what the step touched, not the size of the base.
* A consumer that needs the whole tree (the chroot executor's real processes) calls ``ensure_all`` once per stage;
  the root then holds every lower path and is detached from the resolver.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from minibuild.fs.confine import fill_on_touch
from minibuild.fs.diff import RACY_WINDOW_NS, StatRecord, snapshot_record
from minibuild.fs.ownership import overlay_of
from minibuild.fs.rootfs import EntryMaker
from minibuild.store.tarlayer import Entry


class LowerTree(Protocol):
    """The merged lower layers of a layered root, addressed by physical relative path ("" is the root)."""

    def entry(self, rel: str) -> Entry | None:
        """The entry the lower layers hold at ``rel`` (a hard link as its own file), or None."""

    def names(self, rel: str) -> Sequence[str]:
        """The names of the children of directory ``rel`` in the lower layers."""

    def links(self, rel: str) -> Sequence[str]:
        """Every path sharing ``rel``'s inode in the lower layers (``rel`` included)."""

    def open(self, rel: str) -> BinaryIO:
        """The content of file ``rel``."""


class LayeredRoot:
    """A host directory filled from ``lower`` on first touch (see the module docstring)."""

    def __init__(self, root: Path | str, lower: LowerTree) -> None:
        self.root = os.path.realpath(root)
        self.lower = lower
        self.overlay = overlay_of(self.root)
        self._maker = EntryMaker(self.root)
        self._dirs: dict[str, tuple[int, int, int]] = {"": self._identity(os.lstat(self.root))}
        self._done: set[str] = {""}
        self._listed: set[str] = set()
        self._busy = False
        self._records: dict[str, StatRecord] | None = None
        self._racy_after: int | None = None
        self.filled = 0  # paths copied up
        self.bytes = 0  # file bytes copied up
        fill_on_touch(self.root, self)

    def _identity(self, st: os.stat_result) -> tuple[int, int, int]:
        return st.st_dev, st.st_ino, self.overlay.generation(st)

    # ------------------------------------------------------------------ the resolver's hooks
    def ensure(self, rel: str) -> None:
        """Fill ``rel`` and its parents from the lower layers where they were never touched."""
        if rel in self._done or self._busy:
            return
        self._busy = True
        try:
            self._ensure_path(rel)
        finally:
            self._busy = False

    def ensure_children(self, rel: str) -> None:
        """Fill every child of directory ``rel`` (before it is listed)."""
        if rel in self._listed or self._busy:
            return
        self._busy = True
        try:
            self._ensure_path(rel)
            self._fill_children(rel)
        finally:
            self._busy = False

    def ensure_tree(self, rel: str) -> None:
        """Fill everything below directory ``rel`` (a whole subtree about to be read by another tool)."""
        if self._busy:
            return
        self._busy = True
        try:
            self._ensure_path(rel)
            stack = [rel]
            while stack:
                d = stack.pop()
                self._fill_children(d)
                prefix = d + "/" if d else ""
                stack.extend(prefix + n for n in self.lower.names(d) if prefix + n in self._dirs)
        finally:
            self._busy = False

    def pending_subdirs(self, rel: str) -> int:
        """How many subdirectories of ``rel`` its lower layers hold that were never filled (a directory's link
        count counts them; filling them for a stat would copy every file beside them)."""
        if rel in self._listed or rel not in self._dirs or self._busy:
            return 0
        try:
            if self._identity(os.lstat(self._host(rel))) != self._dirs[rel]:
                return 0  # removed and made again: opaque, nothing of the lower layers shows through
        except OSError:
            return 0
        prefix = rel + "/" if rel else ""
        count = 0
        for name in self.lower.names(rel):
            child = prefix + name
            if child not in self._done:
                e = self.lower.entry(child)
                count += e is not None and e.type == "dir"
        return count

    def drop(self, rel: str) -> None:
        """``rel`` is removed (a layer's whiteout): it is never filled, so nothing of it is copied up first."""
        self._done.add(rel)

    def drop_children(self, rel: str) -> None:
        """Directory ``rel`` is opaque (a layer's opaque marker): its lower children never show through."""
        self.ensure(rel)
        prefix = rel + "/" if rel else ""
        self._done.update(prefix + name for name in self.lower.names(rel))
        self._listed.add(rel)

    def ensure_all(self) -> None:
        """Fill every lower path: the host directory becomes the whole root (the chroot executor's tree)."""
        self.ensure_tree("")

    def detach(self) -> None:
        """Stop filling: the host directory is the root from now on."""
        fill_on_touch(self.root, None)

    # ------------------------------------------------------------------ steps
    def begin_step(self) -> None:
        """Start recording what is filled (the step's snapshot must know these paths as they were)."""
        self._records = {}
        self._racy_after = time.time_ns() - RACY_WINDOW_NS

    def end_step(self) -> dict[str, StatRecord]:
        """The records of the paths filled since ``begin_step``, as they were when filled."""
        records, self._records = self._records or {}, None
        return records

    # ------------------------------------------------------------------ filling
    def _host(self, rel: str) -> str:
        return self.root + "/" + rel if rel else self.root

    def _ensure_path(self, rel: str) -> None:
        if rel in self._done:
            return
        cut = 0
        while True:
            cut = rel.find("/", cut + 1)
            part = rel if cut < 0 else rel[:cut]
            if part not in self._done:
                self._fill(part)
            if cut < 0:
                return

    def _fill_children(self, rel: str) -> None:
        if rel in self._listed:
            return
        self._listed.add(rel)
        if rel not in self._dirs:
            return
        prefix = rel + "/" if rel else ""
        todo = [prefix + name for name in self.lower.names(rel) if prefix + name not in self._done]
        if not todo:
            return
        pst = self._parent_ready(todo[0])
        if pst is None:
            self._done.update(todo)
            return
        for child in todo:
            if child not in self._done:  # (a hard link of an earlier child is filled with it)
                self._fill(child, pst)
        self._restore_mtime(todo[0], pst)

    def _parent_ready(self, rel: str) -> os.stat_result | None:
        """The lstat of ``rel``'s parent when it is the very directory filled from the lower layers, else None
        (the parent was removed, replaced, or made by the build: nothing of the lower layers shows through)."""
        head = rel.rpartition("/")[0]
        ident = self._dirs.get(head)
        if ident is None:
            return None
        try:
            pst = os.lstat(self._host(head))
        except OSError:
            return None
        return pst if stat.S_ISDIR(pst.st_mode) and self._identity(pst) == ident else None

    def _fill(self, rel: str, ready: os.stat_result | None = None) -> None:
        """Fill one path; ``ready``: its parent's lstat, known ready (the caller restores the parent's times)."""
        self._done.add(rel)
        pst = ready if ready is not None else self._parent_ready(rel)
        if pst is None:
            return
        e = self.lower.entry(rel)
        if e is None:
            return
        host = self._host(rel)
        if os.path.lexists(host):
            return  # made by the build before anything looked: the build's own
        if e.type == "file" and e.size:
            with self.lower.open(rel) as stream:
                self._maker.make(e, host, stream)
            self.bytes += e.size
        else:
            self._maker.make(e, host, None)
        self.filled += 1
        if ready is None:
            self._restore_mtime(rel, pst)
        st = os.lstat(host)
        if stat.S_ISDIR(st.st_mode):
            self._dirs[rel] = self._identity(st)
        self._record(rel)
        if e.type == "file":
            for other in self.lower.links(rel):
                if other != rel and other not in self._done:
                    self._link(other, host)

    def _link(self, rel: str, source: str) -> None:
        """Fill the hard link ``rel`` of the file just filled at ``source`` (its whole group is filled at once, so
        a change to one name is seen through every other, as in the image)."""
        head = rel.rpartition("/")[0]
        if head:
            self._ensure_path(head)
        self._done.add(rel)
        pst = self._parent_ready(rel)
        if pst is None or os.path.lexists(self._host(rel)):
            return
        os.link(source, self._host(rel), follow_symlinks=False)
        self.filled += 1
        self._restore_mtime(rel, pst)
        self._record(rel)
        for other in self.lower.links(rel):  # every name's record holds the group's link count
            if other in (self._records or {}):
                self._record(other)

    def _restore_mtime(self, rel: str, pst: os.stat_result) -> None:
        """Filling a child is not a change of its directory: keep the directory's times."""
        os.utime(self._host(rel.rpartition("/")[0]), ns=(pst.st_atime_ns, pst.st_mtime_ns), follow_symlinks=False)

    def _record(self, rel: str) -> None:
        if self._records is not None:
            rec = snapshot_record(self._host(rel), self.overlay, self._racy_after)
            if rec is not None:
                self._records[rel] = rec
