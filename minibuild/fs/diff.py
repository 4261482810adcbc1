"""Tree snapshots and diffs: the layer Entries that turn one directory tree into another (image-format.md §5).

* added or modified paths are emitted in full; "modified" is a change of type, permission bits, uid, gid, device
  number, ``security.capability`` xattr, symlink target, or for regular files the size, the content (``diff_trees``:
  compared byte by byte) or mtime/ctime (``diff_snapshot``: the same tree before and after, so an inode change is
  visible), or the set of paths sharing its inode; directories ignore mtime and size;
* a deleted path gives one whiteout ``.wh.<name>`` (its children are implied); a directory that was deleted and
  created again (a new inode, seen by ``diff_snapshot``) is emitted with an opaque marker ``.wh..wh..opq`` and
  its whole new content;
* a type change needs no whiteout: the new entry replaces the old path when applied;
* hardlinks: when a regular file of a multiply-linked inode is emitted, every path of that inode in the tree is
  emitted too, the first in layer order carrying the data and the others as hardlink entries to it;
* every emitted entry's parent directories are emitted too, with their real attributes (never the root);
* sockets are skipped; names starting with ``.wh.`` cannot be stored in a layer and raise BuildError.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import cast

from minibuild.fs.ownership import Overlay, overlay_of
from minibuild.fs.rootfs import resolve_in_root
from minibuild.errors import BuildError, UnsafePathError
from minibuild.fsperm import file_type
from minibuild.record import record
from minibuild.store.tarlayer import WHITEOUT_PREFIX, Entry, EntryType, normalize_path, opaque, sort_key, whiteout

CAPABILITY_XATTR = "security.capability"
_CMP_CHUNK = 1 << 20


@record
class StatRecord:
    """What a snapshot remembers of one path (lstat fields, symlink target, file capability)."""

    type: EntryType
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    dev: int
    ino: int
    nlink: int
    rdev: int
    linkname: str = ""
    capability: bytes | None = None
    racy_digest: str | None = None  # content hash, kept for files changed too recently for timestamps to tell
    gen: int = 0  # the ownership overlay's creation count of the inode (a reused inode number is a new file)


@record
class TreeSnapshot:
    """A stat-level record of every path under ``root`` (relative POSIX paths; the root itself excluded)."""

    root: str
    records: Mapping[str, StatRecord]


def _kind(mode: int) -> EntryType | None:
    """The layer entry type of a stat mode; sockets are not stored in layers."""
    kind = file_type(mode)
    return None if kind == "socket" else cast(EntryType, kind)


def _capability(path: str, st: os.stat_result, overlay: Overlay | None) -> bytes | None:
    held = overlay.xattrs(path, st) if overlay is not None else None
    if held is not None:
        return next((v for n, v in held if n == CAPABILITY_XATTR), None)
    try:
        return os.getxattr(path, CAPABILITY_XATTR, follow_symlinks=False)
    except OSError:
        return None


def stat_record(path: str, overlay: Overlay | None = None) -> StatRecord | None:
    """The StatRecord of ``path`` (not followed), or None for sockets; owners, modes and device nodes as the
    root's ownership overlay records them (``minibuild.fs.ownership``) when given."""
    host = os.lstat(path)
    st = overlay.view(host) if overlay is not None else host
    kind = _kind(st.st_mode)
    if kind is None:
        return None
    return StatRecord(
        type=kind, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
        size=st.st_size if kind == "file" else 0, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns,
        dev=st.st_dev, ino=st.st_ino, nlink=st.st_nlink, rdev=st.st_rdev,
        linkname=os.readlink(path) if kind == "symlink" else "",
        capability=_capability(path, host, overlay) if kind in ("file", "dir") else None,
        gen=overlay.generation(host) if overlay is not None else 0,
    )


# Timestamps come from a coarse kernel clock (a few ms): a file written within that window of the snapshot could be
# rewritten with the same size and times.  Like git's "racy clean" rule, such files get a content hash.
RACY_WINDOW_NS = 2_000_000_000


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CMP_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def snapshot(root: Path | str, *, hash_recent: bool = True, overlay_root: Path | str | None = None) -> TreeSnapshot:
    """Record every path under ``root`` without following symlinks (recently changed files also by content),
    through the ownership overlay of ``overlay_root`` (default ``root``: the tree is a root of its own)."""
    base = os.path.realpath(root)
    overlay = overlay_of(base) if overlay_root is None else overlay_of(overlay_root)
    racy_after = time.time_ns() - RACY_WINDOW_NS if hash_recent else None
    records: dict[str, StatRecord] = {}
    for child, path in _below(base):
        rec = snapshot_record(path, overlay, racy_after)
        if rec is not None:
            records[child] = rec
    return TreeSnapshot(root=base, records=records)


def _below(base: str) -> Iterator[tuple[str, str]]:
    """Every path under the directory ``base``: (relative path, host path), directories entered (never a symlink)."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(base, rel) if rel else base) as it:
            for de in it:
                child = f"{rel}/{de.name}" if rel else de.name
                yield child, de.path
                if de.is_dir(follow_symlinks=False):
                    stack.append(child)


def snapshot_record(path: str, overlay: Overlay | None, racy_after: int | None) -> StatRecord | None:
    """What a snapshot records of one path: its StatRecord, plus a content hash when a file changed after
    ``racy_after`` (ns since the epoch; None: never hashed)."""
    rec = stat_record(path, overlay)
    if rec is not None and racy_after is not None and rec.type == "file" and max(rec.mtime_ns, rec.ctime_ns) >= racy_after:
        rec = replace(rec, racy_digest=_hash_file(path))
    return rec


def _groups(records: Mapping[str, StatRecord]) -> dict[tuple[int, int], frozenset[str]]:
    groups: dict[tuple[int, int], set[str]] = {}
    for path, r in records.items():
        if r.type == "file" and r.nlink > 1:
            groups.setdefault((r.dev, r.ino), set()).add(path)
    return {k: frozenset(v) for k, v in groups.items()}


def _same_content(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(_CMP_CHUNK), fb.read(_CMP_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def _entry(root: str, path: str, r: StatRecord) -> Entry:
    if path.rpartition("/")[2].startswith(WHITEOUT_PREFIX):
        raise BuildError(f"/{path}: names starting with '.wh.' cannot be stored in an image layer")
    is_dev = r.type in ("char", "block")
    return Entry(
        path=path, type=r.type, mode=r.mode, uid=r.uid, gid=r.gid, size=r.size, linkname=r.linkname,
        mtime=r.mtime_ns // 1_000_000_000,
        xattrs=((CAPABILITY_XATTR, r.capability),) if r.capability is not None else (),
        devmajor=os.major(r.rdev) if is_dev else 0, devminor=os.minor(r.rdev) if is_dev else 0,
        source_path=os.path.join(root, path) if r.type == "file" else None,
    )


def _ancestors(path: str) -> Iterable[str]:
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def _assemble(root: str, after: Mapping[str, StatRecord], emit: set[str], extra: list[Entry]) -> list[Entry]:
    """Entries for ``emit`` (paths of ``after``) plus ``extra`` (whiteouts), with parents and hardlinks."""
    groups = _groups(after)
    for path in list(emit):
        r = after[path]
        if r.type == "file" and r.nlink > 1:
            emit.update(groups.get((r.dev, r.ino), ()))
    for path in [*emit, *(e.path for e in extra)]:
        for parent in _ancestors(path):
            if parent not in after or after[parent].type != "dir":
                raise BuildError(f"/{parent} changed while the layer was computed")
            emit.add(parent)
    out: list[Entry] = []
    first_of_inode: dict[tuple[int, int], str] = {}
    for path in sorted(emit, key=sort_key):
        r = after[path]
        e = _entry(root, path, r)
        if r.type == "file" and r.nlink > 1:
            key = (r.dev, r.ino)
            if key in first_of_inode:
                e = Entry(path=path, type="hardlink", mode=r.mode, uid=r.uid, gid=r.gid, linkname=first_of_inode[key],
                          mtime=e.mtime)
            else:
                first_of_inode[key] = path
        out.append(e)
    out.extend(extra)
    out.sort(key=lambda e: sort_key(e.path))
    return out


def _diff(
    before: Mapping[str, StatRecord], before_root: str | None, after: Mapping[str, StatRecord], after_root: str,
) -> list[Entry]:
    same_tree = before_root is None
    groups_before = _groups(before)
    groups_after = _groups(after)
    emit: set[str] = set()
    opaque_dirs: set[str] = set()
    for path in sorted(after, key=sort_key):
        a = after[path]
        if any(p in opaque_dirs for p in _ancestors(path)):
            emit.add(path)
            continue
        b = before.get(path)
        if b is None or b.type != a.type:
            emit.add(path)
            continue
        if a.type == "dir":
            if same_tree and (a.dev, a.ino, a.gen) != (b.dev, b.ino, b.gen):
                opaque_dirs.add(path)
                emit.add(path)
            elif (a.mode, a.uid, a.gid, a.capability) != (b.mode, b.uid, b.gid, b.capability):
                emit.add(path)
            continue
        if (a.mode, a.uid, a.gid, a.capability, a.linkname, a.rdev, a.size) != (
            b.mode, b.uid, b.gid, b.capability, b.linkname, b.rdev, b.size
        ):
            emit.add(path)
            continue
        if a.type != "file":
            if same_tree and (a.mtime_ns, a.ctime_ns, a.ino, a.gen) != (b.mtime_ns, b.ctime_ns, b.ino, b.gen):
                emit.add(path)
            continue
        ga = groups_after.get((a.dev, a.ino), frozenset()) if a.nlink > 1 else frozenset()
        gb = groups_before.get((b.dev, b.ino), frozenset()) if b.nlink > 1 else frozenset()
        if ga != gb:
            emit.add(path)
        elif same_tree:
            if (a.mtime_ns, a.ctime_ns, a.ino, a.gen) != (b.mtime_ns, b.ctime_ns, b.ino, b.gen):
                emit.add(path)
            elif b.racy_digest is not None and b.racy_digest != _hash_file(os.path.join(after_root, path)):
                emit.add(path)
        else:
            assert before_root is not None
            if not _same_content(os.path.join(before_root, path), os.path.join(after_root, path)):
                emit.add(path)
    extra: list[Entry] = []
    for path in sorted(before, key=sort_key):
        if path in after:
            continue
        head = path.rpartition("/")[0]
        if head and (head not in after or after[head].type != "dir" or head in opaque_dirs
                     or any(p in opaque_dirs for p in _ancestors(head))):
            continue  # an ancestor was deleted, replaced or made opaque: this path is already gone
        extra.append(whiteout(path))
    extra.extend(opaque(d) for d in opaque_dirs)
    return _assemble(after_root, after, emit, extra)


def diff_snapshot(root: Path | str, before: TreeSnapshot) -> list[Entry]:
    """The layer entries of what changed under ``root`` since ``before`` was taken (same tree, stat-based)."""
    now = snapshot(root, hash_recent=False)
    return _diff(before.records, None, now.records, now.root)


def diff_trees(a: Path | str, b: Path | str) -> list[Entry]:
    """The layer entries that turn tree ``a`` into tree ``b`` (file contents compared byte by byte)."""
    sa, sb = snapshot(a, hash_recent=False), snapshot(b, hash_recent=False)
    return _diff(sa.records, sa.root, sb.records, sb.root)


def entries_for_paths(root: Path | str, paths: Iterable[str], *, recursive: bool = True) -> list[Entry]:
    """Entries for ``paths`` under ``root`` (and, when ``recursive``, everything below directories among them),
    with their parent directories and hardlinks inside the set; used for COPY layers.

    Paths are resolved inside ``root`` (parents chroot-style, the last component not followed); a missing path
    raises BuildError, a path leading out of the root UnsafePathError.
    """
    base = os.path.realpath(root)
    overlay = overlay_of(base)
    records: dict[str, StatRecord] = {}
    emit: set[str] = set()

    def record(rel: str) -> StatRecord | None:
        if rel not in records:
            rec = stat_record(os.path.join(base, rel), overlay)
            if rec is None:
                return None
            records[rel] = rec
        return records[rel]

    # parents resolved once per directory: resolving "a/b/leaf" without following the leaf is resolving "a/b"
    # (links followed) plus "leaf", and a COPY of many files would otherwise lstat every ancestor of every file
    parent_rel: dict[str, str] = {}

    def resolve(norm: str) -> str:
        parent, _, leaf = norm.rpartition("/")
        prel = parent_rel.get(parent)
        if prel is None:
            prel = os.path.relpath(resolve_in_root(base, parent, follow_final=True, strict=True), base)
            prel = parent_rel[parent] = "" if prel == "." else prel
        return f"{prel}/{leaf}" if prel else leaf

    for p in paths:
        norm = normalize_path(p)
        rel = resolve(norm) if norm else ""
        if rel and rel not in records:
            try:
                rec = stat_record(os.path.join(base, rel), overlay)
            except OSError:
                raise BuildError(f"/{norm} does not exist in the root") from None
            if rec is not None:
                records[rel] = rec
        if rel and rel in records:
            emit.add(rel)
        if recursive and (not rel or records[rel].type == "dir"):
            sub = snapshot(os.path.join(base, rel) if rel else base, hash_recent=False, overlay_root=base)
            for child, rec in sub.records.items():
                crel = f"{rel}/{child}" if rel else child
                records[crel] = rec
                emit.add(crel)
    for path in list(emit):
        for parent in _ancestors(path):
            if record(parent) is None or records[parent].type != "dir":
                raise UnsafePathError(f"/{parent} is not a directory")
            emit.add(parent)
    # hardlinks only within the emitted set: the first path of an inode in layer order carries the data
    out: list[Entry] = []
    first_of_inode: dict[tuple[int, int], str] = {}
    for path in sorted(emit, key=sort_key):
        r = records[path]
        e = _entry(base, path, r)
        if r.type == "file" and r.nlink > 1:
            key = (r.dev, r.ino)
            if key in first_of_inode:
                e = Entry(path=path, type="hardlink", mode=r.mode, uid=r.uid, gid=r.gid,
                          linkname=first_of_inode[key], mtime=e.mtime)
            else:
                first_of_inode[key] = path
        out.append(e)
    return out


OVERLAY_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def _opaque_dir(path: str) -> bool:
    for name in OVERLAY_OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def diff_upper(upper: Path | str, lower: Path | str) -> list[Entry]:
    """The layer entries of what an overlay mount's upper directory holds over ``lower`` (the tree it was mounted
    on): overlay whiteouts (0/0 character devices) become OCI whiteouts, opaque directories OCI opaque markers, and
    a path overlayfs only copied up (same metadata and content as below) is no change. Owners, modes and device
    nodes as ``lower``'s ownership overlay records them: a copied-up file keeps its recorded owner and mode unless
    the step changed them on the host."""
    up = os.path.realpath(upper)
    low = os.path.realpath(lower)
    overlay = overlay_of(low)
    after: dict[str, StatRecord] = {}
    emit: set[str] = set()
    extra: list[Entry] = []
    opaque_dirs: set[str] = set()
    for child, path in _below(up):
        host = os.lstat(path)
        if stat.S_ISCHR(host.st_mode) and host.st_rdev == 0:
            extra.append(whiteout(child))
            continue
        rec = stat_record(path, overlay)
        if rec is None:
            continue
        try:
            below: os.stat_result | None = os.lstat(os.path.join(low, child))
        except OSError:
            below = None
        seen = None
        if below is not None and stat.S_IFMT(below.st_mode) == stat.S_IFMT(host.st_mode):
            seen = stat_record(os.path.join(low, child), overlay)
            if seen is not None and (host.st_uid, host.st_gid, stat.S_IMODE(host.st_mode)) == (
                    below.st_uid, below.st_gid, stat.S_IMODE(below.st_mode)):
                rec = replace(rec, uid=seen.uid, gid=seen.gid, mode=seen.mode)
        after[child] = rec
        inside_opaque = any(p in opaque_dirs for p in _ancestors(child))
        if rec.type == "dir":
            if _opaque_dir(path) and not inside_opaque:
                opaque_dirs.add(child)
                extra.append(opaque(child))
                emit.add(child)
            elif inside_opaque or seen is None or (rec.mode, rec.uid, rec.gid, rec.capability) != (
                    seen.mode, seen.uid, seen.gid, seen.capability):
                emit.add(child)
            continue
        if inside_opaque or seen is None or (
                rec.mode, rec.uid, rec.gid, rec.capability, rec.linkname, rec.rdev, rec.size, rec.mtime_ns) != (
                seen.mode, seen.uid, seen.gid, seen.capability, seen.linkname, seen.rdev, seen.size,
                seen.mtime_ns) or (rec.type == "file" and not _same_content(path,
                                                                              os.path.join(low, child))):
            emit.add(child)
    return _assemble(up, after, emit, extra)
