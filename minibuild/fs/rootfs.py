"""Apply layers onto a root directory safely, and resolve paths inside a root the way a chroot would.

Confinement rules (what every writer of the tree may rely on):

* ``resolve_in_root(root, path)`` (``minibuild.fs.confine``, re-exported here) resolves ``path`` as a process chrooted at ``root`` would: absolute symlink
  targets start again at ``root``, ``..`` never climbs above ``root``.  With ``strict=True`` a ``..`` that would
  climb above ``root`` (from the path or from a relative symlink target) raises UnsafePathError instead of being
  clamped.  The result is a host path under ``root`` whose every component but the last is a real directory or
  does not exist yet (when ``follow_final=False`` the last component may be a symlink; it is never followed).
* Applying a layer: entry names containing ``..`` are rejected; absolute names are made relative; each entry's
  parent directory is resolved with ``strict=True`` (a symlink that leads out raises UnsafePathError naming the
  entry); the final component is never followed (O_NOFOLLOW, lchown, link without follow, symlinks are created
  with their target as written).  Hardlink targets are resolved the same way and must already exist.
* OCI whiteouts: ``.wh.<name>`` deletes ``<name>`` unless this layer wrote it; ``.wh..wh..opq`` removes every child
  of the directory that this layer did not write (whatever the order of the entries).
* Owners, modes, device nodes and xattrs are recorded in the root's ownership overlay
  (``minibuild.fs.ownership``), as root and as any user alike; as root they are also set on the host (as an
  ordinary user a device node is a placeholder file there).  Directory modes and mtimes are applied after the
  whole layer (so a 0555 directory can still receive its children), each re-checked to still be the same real
  directory.

The rules assume nobody else modifies the tree while a layer is applied (no defence against concurrent races).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from minibuild.fs.confine import MAX_SYMLINKS, filler_of, resolve_in_root, safe_join
from minibuild.fs.ownership import Overlay, overlay_of
from minibuild.errors import BuildError, ImageFormatError, UnsafePathError
from minibuild.record import record
from minibuild.store.tarlayer import (CHUNK, OPAQUE_NAME, OVERLAY_OPAQUE, OVERLAY_XATTRS, WHITEOUT_PREFIX, Entry,
                                      normalize_path)
from minibuild.store.tarread import iter_layer

__all__ = ["MAX_SYMLINKS", "ApplyStats", "apply_entries", "apply_layer", "apply_layers", "EntryMaker", "resolve_in_root",
           "safe_join"]


@record
class ApplyStats:
    """Counts of what a layer application did, and warnings (e.g. device nodes skipped when not root)."""

    entries: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    specials: int = 0
    whiteouts: int = 0
    bytes: int = 0
    warnings: tuple[str, ...] = ()

    def __add__(self, other: "ApplyStats") -> "ApplyStats":
        return ApplyStats(
            entries=self.entries + other.entries, files=self.files + other.files, dirs=self.dirs + other.dirs,
            symlinks=self.symlinks + other.symlinks, hardlinks=self.hardlinks + other.hardlinks,
            specials=self.specials + other.specials, whiteouts=self.whiteouts + other.whiteouts,
            bytes=self.bytes + other.bytes, warnings=self.warnings + other.warnings,
        )


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _remove(path: str) -> None:
    st = _lstat(path)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


class _Applier:
    """Applies the entries of one layer; tracks what the layer wrote (for whiteouts and opaque markers)."""

    def __init__(self, root: Path | str, *, export: bool = False, overlay_format: bool = False) -> None:
        self.root = os.path.realpath(root)
        self.overlay_format = overlay_format  # whiteouts kept as overlayfs marks (an unpacked lower layer)
        if not os.path.isdir(self.root):
            raise BuildError(f"root directory {root} does not exist")
        # a build root's owners, modes and nodes are minibuild's (its overlay); an export's are the host's own
        self.overlay = Overlay(self.root, exact=True) if export else overlay_of(self.root)
        self.export = export
        self.written: set[str] = set()
        self.ancestors: set[str] = set()
        self.deferred_dirs: list[tuple[str, str, int, int]] = []
        self.counts = {"entries": 0, "files": 0, "dirs": 0, "symlinks": 0, "hardlinks": 0, "specials": 0,
                       "whiteouts": 0, "bytes": 0}
        self.warnings: list[str] = []
        # each entry's parent as resolved (a real directory): kept until anything is removed or a symlink made
        self._parents: dict[str, str] = {}
        # a layered root (minibuild.fs.layered): each directory an entry merges into, removes or clears is filled
        # first, so that a lower path never shows through where this layer replaced or removed it
        self._filler = filler_of(self.root)

    def _touch(self, phys: str, *, drop: bool = False, opaque: bool = False) -> None:
        if self._filler is not None:
            rel = phys[len(self.root) + 1:]
            if opaque:
                self._filler.drop_children(rel)
            elif drop:
                self._filler.drop(rel)
            else:
                self._filler.ensure(rel)

    # -- paths -------------------------------------------------------------------------------------------------
    def _rm(self, path: str) -> None:
        self._parents.clear()  # a resolved parent may have been this path or below it
        _remove(path)

    def _parent_dir(self, head: str, entry_name: str) -> str:
        known = self._parents.get(head)
        if known is not None:
            return known
        parent = self._resolve_parent(head, entry_name)
        self._parents[head] = parent
        return parent

    def _resolve_parent(self, head: str, entry_name: str) -> str:
        try:
            parent = str(resolve_in_root(self.root, head, strict=True))
        except UnsafePathError as err:
            raise UnsafePathError(f"layer entry {entry_name!r} would be written outside the root ({err})") from err
        st = _lstat(parent)
        if st is None:
            try:
                missing = []
                p = parent
                while _lstat(p) is None and p != self.root:
                    missing.append(p)
                    p = os.path.dirname(p)
                for m in reversed(missing):
                    os.mkdir(m, 0o755)
                    self.overlay.created(m)
                    self.overlay.set_mode(m, 0o755)
                    self._mark(m)
            except OSError as err:
                raise ImageFormatError(f"layer entry {entry_name!r}: cannot create its parent: {err.strerror}") from err
        elif not stat.S_ISDIR(st.st_mode):
            raise ImageFormatError(f"layer entry {entry_name!r}: parent {head!r} is not a directory")
        return parent

    def _mark(self, phys: str) -> None:
        self.written.add(phys)
        p = os.path.dirname(phys)
        while p not in self.ancestors and len(p) > len(self.root):
            self.ancestors.add(p)
            p = os.path.dirname(p)

    # -- entries -----------------------------------------------------------------------------------------------
    def apply(self, e: Entry, stream: BinaryIO | None) -> None:
        try:
            self._apply(e, stream)
        except OSError as err:
            raise BuildError(f"cannot extract layer entry {e.path!r}: {err.strerror or err}") from err

    def _apply(self, e: Entry, stream: BinaryIO | None) -> None:
        try:
            path = normalize_path(e.path)
        except UnsafePathError as err:
            raise UnsafePathError(f"layer entry {e.path!r} contains '..'") from err
        if not path:
            return  # the root itself: attributes are engine-defined, never changed
        self.counts["entries"] += 1
        head, _, name = path.rpartition("/")
        parent = self._parent_dir(head, e.path)
        if name == OPAQUE_NAME:
            self.counts["whiteouts"] += 1
            if self.overlay_format:
                os.setxattr(parent, OVERLAY_OPAQUE, b"y", follow_symlinks=False)
            else:
                self._clear_lower(parent)
            return
        if name.startswith(WHITEOUT_PREFIX):
            victim = name[len(WHITEOUT_PREFIX):]
            if victim in ("", ".", ".."):
                raise UnsafePathError(f"invalid whiteout name {e.path!r}")
            self.counts["whiteouts"] += 1
            target = os.path.join(parent, victim)
            if target not in self.written:
                self._touch(target, drop=True)
                self._rm(target)
                if self.overlay_format:  # overlayfs's whiteout: a 0:0 character device
                    os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0))
            return
        target = os.path.join(parent, name)
        if e.type == "dir" and target not in self.written:
            self._touch(target)  # merged with the lower directory (a file or link simply replaces what was there)
        self._create(e, target, stream)
        self._mark(target)

    def _create(self, e: Entry, target: str, stream: BinaryIO | None) -> None:
        existing = _lstat(target)
        if e.type == "dir":
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                self._rm(target)
                existing = None
            if existing is None:
                os.mkdir(target, 0o700)
                self.overlay.created(target, e.uid, e.gid)
                self.overlay.set_mode(target, 0o700)
            else:
                self._owner(target, e)
            self._xattrs(target, e)
            rel = os.path.relpath(target, self.root)
            self.deferred_dirs.append((target, rel, e.mode, e.mtime))
            self.counts["dirs"] += 1
            return
        if existing is not None:
            self._rm(target)
        if e.type == "file":
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                if stream is not None:
                    while chunk := stream.read(CHUNK):
                        f.write(chunk)
                        self.counts["bytes"] += len(chunk)
                elif e.data is not None:
                    f.write(e.data)
                    self.counts["bytes"] += len(e.data)
                elif e.source_path is not None and e.size:
                    with open(e.source_path, "rb") as src:
                        while chunk := src.read(CHUNK):
                            f.write(chunk)
                            self.counts["bytes"] += len(chunk)
                f.flush()
            self.overlay.created(target, e.uid, e.gid)
            self.overlay.set_mode(target, e.mode)
            os.utime(target, (e.mtime, e.mtime), follow_symlinks=False)
            self._xattrs(target, e)
            self.counts["files"] += 1
        elif e.type == "symlink":
            self._parents.clear()  # (never a parent resolved before: the path did not exist, but cheap to be sure)
            os.symlink(e.linkname, target)
            self.overlay.created(target, e.uid, e.gid)
            os.utime(target, (e.mtime, e.mtime), follow_symlinks=False)
            self.counts["symlinks"] += 1
        elif e.type == "hardlink":
            try:
                source = str(resolve_in_root(self.root, e.linkname, follow_final=False, strict=True))
            except UnsafePathError as err:
                raise UnsafePathError(f"hardlink {e.path!r} -> {e.linkname!r} leads outside the root") from err
            st = _lstat(source)
            if st is None or stat.S_ISDIR(st.st_mode):
                raise ImageFormatError(f"hardlink {e.path!r} -> {e.linkname!r}: target is missing or a directory")
            os.link(source, target, follow_symlinks=False)
            self.counts["hardlinks"] += 1
        elif e.type in ("char", "block", "fifo"):
            if self.export and e.type != "fifo" and not self.overlay.as_root:
                self.warnings.append(f"skipped device node {e.path!r} ({e.type} {e.devmajor}:{e.devminor}): not root")
                return
            self.overlay.make_node(target, e.type, e.mode, os.makedev(e.devmajor, e.devminor), e.uid, e.gid)
            os.utime(target, (e.mtime, e.mtime), follow_symlinks=False)
            self.counts["specials"] += 1
        else:  # pragma: no cover - Entry types are closed
            raise ImageFormatError(f"layer entry {e.path!r}: unknown type {e.type!r}")

    def _owner(self, target: str, e: Entry) -> None:
        self.overlay.set_owner(target, e.uid, e.gid)

    def _xattrs(self, target: str, e: Entry) -> None:
        for name, value in e.xattrs:
            if name.startswith(OVERLAY_XATTRS) and self.overlay_format:
                continue  # a layer never speaks for the overlay (as Docker's overlay2 drops them)
            self.overlay.set_xattr(target, name, value)  # held by minibuild where the host may not set it

    def _clear_lower(self, directory: str) -> None:
        """Remove every child of ``directory`` that this layer did not write (opaque whiteout)."""
        self._touch(directory, opaque=True)  # (its lower children are never copied up only to be removed)
        for child in sorted(os.listdir(directory)):
            cp = os.path.join(directory, child)
            st = _lstat(cp)
            if st is None:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if cp in self.written or cp in self.ancestors:
                if is_dir:
                    self._clear_lower(cp)
            else:
                self._rm(cp)

    def finish(self) -> ApplyStats:
        for target, rel, mode, mtime in reversed(self.deferred_dirs):
            try:
                again = str(resolve_in_root(self.root, rel, follow_final=False, strict=True))
            except UnsafePathError:
                continue
            st = _lstat(target)
            if again != target or st is None or not stat.S_ISDIR(st.st_mode):
                continue  # replaced later in the layer: its attributes no longer apply
            self.overlay.set_mode(target, mode)
            os.utime(target, (mtime, mtime), follow_symlinks=False)
        return ApplyStats(**self.counts, warnings=tuple(self.warnings))


class EntryMaker:
    """Creates single entries (not hard links or whiteouts) at known host paths of one root, whose parents
    exist: content from a stream (else ``data``/``source_path``), metadata in the root's ownership overlay, a
    directory's mode and mtime set at once (a layered root's fills, ``minibuild.fs.layered``)."""

    def __init__(self, root: Path | str) -> None:
        self._applier = _Applier(root)

    def make(self, e: Entry, target: str, stream: BinaryIO | None) -> None:
        a = self._applier
        a.deferred_dirs.clear()
        try:
            a._create(e, target, stream)
            for path, _rel, mode, mtime in a.deferred_dirs:
                a.overlay.set_mode(path, mode)
                os.utime(path, (mtime, mtime), follow_symlinks=False)
        except OSError as err:
            raise BuildError(f"cannot fill /{e.path} from its layer: {err.strerror or err}") from err
        finally:
            a.deferred_dirs.clear()


def apply_entries(root: Path | str, entries: Iterable[Entry]) -> ApplyStats:
    """Apply Entries (content from ``data`` or ``source_path``) onto ``root`` with layer semantics."""
    applier = _Applier(root)
    for e in entries:
        applier.apply(e, None)
    return applier.finish()


def apply_layer(root: Path | str, layer: BinaryIO, *, export: bool = False,
                overlay_format: bool = False) -> ApplyStats:
    """Extract one layer blob (tar, gzip, bzip2 or xz; sniffed) onto ``root`` with whiteouts honoured.

    A build root records owners, modes and device nodes in its ownership overlay; with ``export`` (``-o
    type=local``, ``materialize``) the tree is the product: modes are set exactly on the host, and owners and
    device nodes only as root (otherwise skipped, device nodes with a warning), as ``tar -x`` does.
    ``overlay_format`` (with ``export``, as root): one layer alone, its whiteouts as overlayfs lower layers hold
    them (a 0:0 character device; an opaque directory's ``trusted.overlay.opaque=y``)."""
    applier = _Applier(root, export=export, overlay_format=overlay_format)
    for entry, stream in iter_layer(layer):
        applier.apply(entry, stream)
    return applier.finish()


def apply_layers(root: Path | str, layers: Iterable[BinaryIO]) -> ApplyStats:
    """Apply a chain of layer blobs, base first."""
    total = ApplyStats()
    for layer in layers:
        total = total + apply_layer(root, layer)
    return total
