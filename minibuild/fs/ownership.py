"""The ownership overlay: each root's owners, modes, device nodes and xattrs held by minibuild, never the host's.

A stage root is a host directory, but what its files *are* in the image (uid, gid, permission bits, a char or
block device and its numbers, ``security.capability``) is data minibuild holds, the way fakeroot and umoci's
rootless mode do, so that a build gives the same bytes as root and as any ordinary user:

* every writer of a root (layer extraction, COPY/ADD, WORKDIR, the emulated shell) records what it made through
  an ``Overlay`` (``overlay_of(root)``): ``created``, ``set_owner``, ``set_mode``, ``make_node``, ``set_xattr``.
  Records are keyed by inode (``st_dev``, ``st_ino``), so a rename, a hard link or ``mv`` keeps them; each also
  remembers what the host held when it was made, so a record whose inode was deleted and reused, or whose file
  was changed behind minibuild's back (a real process under ``--executor chroot``), no longer applies;
* every reader (the layer writer's snapshots and diffs, COPY --from sources, the shell's ls/stat/find/test/tar)
  goes through ``view``/``lstat``: the recorded values where a valid record exists, else the host's, with the
  builder's own uid/gid read as 0 (a file the builder made without a record is root's, as it would be as root);
* root and ordinary users take the same path; as root each write is also made on the host (lchown, exact modes,
  real device nodes), which is what the chroot executor's real processes then see.  As an ordinary user the host
  keeps a placeholder empty file for a device node and the owner's rw(x) bits on every file and directory, so
  minibuild can always read and write what it recorded as, say, mode 000.
"""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from minibuild.store.tarlayer import EntryType

_KINDS: dict[str, int] = {"char": stat.S_IFCHR, "block": stat.S_IFBLK}


@dataclass(frozen=True, slots=True)
class Meta:
    """What minibuild recorded of one inode, and what the host held when it did (to tell a stale record)."""

    host_fmt: int  # S_IFMT of the host inode
    host_uid: int
    host_gid: int
    host_perm: int
    uid: int
    gid: int
    perm: int | None = None  # the permission bits (07777) when recorded, else the host's
    kind: str | None = None  # "char" / "block": the host holds a placeholder (not root)
    rdev: int = 0
    xattrs: tuple[tuple[str, bytes], ...] | None = None  # None: the host's
    gen: int = 0  # which creation of an inode number this is (a directory removed and made again is a new one)


def _access_bits(fmt: int) -> int:
    """The owner bits an ordinary user keeps on the host so minibuild can read, write and enter everything."""
    return 0o700 if fmt == stat.S_IFDIR else 0o600 if fmt == stat.S_IFREG else 0


class Overlay:
    """The recorded metadata of one root's inodes (see the module docstring)."""

    def __init__(self, root: str, *, exact: bool = False) -> None:
        self.root = root
        self.exact = exact  # the host gets the exact bits even when not root (an export, not a build root)
        self._meta: dict[tuple[int, int], Meta] = {}
        self._gen = 0
        self._euid = os.geteuid()
        self._egid = os.getegid()
        self.as_root = self._euid == 0

    def __len__(self) -> int:
        return len(self._meta)

    # ------------------------------------------------------------------ reading
    def _valid(self, st: os.stat_result) -> Meta | None:
        m = self._meta.get((st.st_dev, st.st_ino))
        if m is None or m.host_fmt != stat.S_IFMT(st.st_mode):
            return None  # never recorded, or the inode was deleted and its number reused
        return m

    def owner(self, st: os.stat_result) -> tuple[int, int]:
        """The (uid, gid) of a host inode in the image."""
        m = self._valid(st)
        uid = st.st_uid if m is None or st.st_uid != m.host_uid else m.uid
        gid = st.st_gid if m is None or st.st_gid != m.host_gid else m.gid
        if m is None or st.st_uid != m.host_uid:
            uid = 0 if uid == self._euid else uid
        if m is None or st.st_gid != m.host_gid:
            gid = 0 if gid == self._egid else gid
        return uid, gid

    def view(self, st: os.stat_result) -> os.stat_result:
        """``st`` (a host lstat of a path of this root) as the image has it."""
        m = self._valid(st)
        uid, gid = self.owner(st)
        fmt = stat.S_IFMT(st.st_mode)
        perm = stat.S_IMODE(st.st_mode)
        rdev = st.st_rdev
        if m is not None:
            if m.perm is not None and perm == m.host_perm:
                perm = m.perm
            if m.kind is not None:
                fmt, rdev = _KINDS[m.kind], m.rdev
        if (uid, gid, fmt, perm, rdev) == (st.st_uid, st.st_gid, stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                            st.st_rdev):
            return st
        return os.stat_result(
            (fmt | perm, st.st_ino, st.st_dev, st.st_nlink, uid, gid, st.st_size, int(st.st_atime), int(st.st_mtime),
             int(st.st_ctime)),
            {"st_atime": st.st_atime, "st_mtime": st.st_mtime, "st_ctime": st.st_ctime, "st_atime_ns": st.st_atime_ns,
             "st_mtime_ns": st.st_mtime_ns, "st_ctime_ns": st.st_ctime_ns, "st_blksize": st.st_blksize,
             "st_blocks": st.st_blocks, "st_rdev": rdev})

    def lstat(self, path: str | Path) -> os.stat_result:
        """``os.lstat(path)`` as the image has it."""
        return self.view(os.lstat(path))

    def generation(self, st: os.stat_result) -> int:
        """Which creation of this inode number minibuild recorded last (0: none): the host reuses the number of a
        deleted directory for the next one made, and a diff must still see a new directory there."""
        m = self._valid(st)
        return 0 if m is None else m.gen

    def xattrs(self, path: str | Path, st: os.stat_result) -> tuple[tuple[str, bytes], ...] | None:
        """The recorded xattrs of ``path`` (None: read the host's)."""
        m = self._valid(st)
        return None if m is None else m.xattrs

    # ------------------------------------------------------------------ writing
    def _put(self, path: str | Path, **fields: object) -> None:
        st = os.lstat(path)
        old = self._valid(st)
        uid, gid = self.owner(st)  # what the image has now: a field the host changed since is the host's
        base: dict[str, object] = {"uid": uid, "gid": gid}
        if old is not None:
            keep = old.perm is not None and stat.S_IMODE(st.st_mode) == old.host_perm
            base.update(perm=old.perm if keep else None, kind=old.kind, rdev=old.rdev, xattrs=old.xattrs, gen=old.gen)
        base.update(fields)
        self._meta[(st.st_dev, st.st_ino)] = Meta(
            host_fmt=stat.S_IFMT(st.st_mode), host_uid=st.st_uid, host_gid=st.st_gid,
            host_perm=stat.S_IMODE(st.st_mode), **base)  # type: ignore[arg-type]

    def created(self, path: str | Path, uid: int = 0, gid: int = 0) -> None:
        """A new inode at ``path``, owned ``uid``:``gid`` (any older record of its inode number is dropped)."""
        st = os.lstat(path)
        self._gen += 1
        self._meta[(st.st_dev, st.st_ino)] = Meta(
            host_fmt=stat.S_IFMT(st.st_mode), host_uid=st.st_uid, host_gid=st.st_gid,
            host_perm=stat.S_IMODE(st.st_mode), uid=0, gid=0, gen=self._gen)
        self.set_owner(path, uid, gid)

    def set_owner(self, path: str | Path, uid: int, gid: int) -> None:
        """chown ``path`` (never followed) in the image; as root on the host too.  As the kernel does (even for
        root), a non-directory loses its setuid bit, its setgid bit when group-executable, and its file
        capability."""
        before = self.lstat(path)
        if self.as_root:
            os.lchown(path, uid, gid)
        self._put(path, uid=uid, gid=gid)
        fmt = stat.S_IFMT(before.st_mode)
        if fmt in (stat.S_IFDIR, stat.S_IFLNK):
            return
        perm = stat.S_IMODE(before.st_mode)
        kill = stat.S_ISUID | (stat.S_ISGID if perm & stat.S_IXGRP else 0)
        if perm & kill:
            self.set_mode(path, perm & ~kill)
        m = self._valid(os.lstat(path))
        if m is not None and m.xattrs is not None and any(n == "security.capability" for n, _ in m.xattrs):
            self._put(path, xattrs=tuple((n, v) for n, v in m.xattrs if n != "security.capability"))

    def set_mode(self, path: str | Path, perm: int) -> None:
        """chmod ``path`` (not a symlink) in the image; the host gets the same bits (plus the owner's access
        bits when not root)."""
        perm &= 0o7777
        st = os.lstat(path)
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFLNK:
            return
        host = perm if self.as_root or self.exact else perm | _access_bits(fmt)
        os.chmod(path, host)  # not a symlink (checked above): nothing is followed
        self._put(path, perm=perm)

    def make_node(self, path: str | Path, kind: EntryType, perm: int, rdev: int, uid: int = 0, gid: int = 0) -> None:
        """Create a char or block device (as root, a real node; else an empty placeholder file) or a FIFO."""
        if kind == "fifo":
            os.mkfifo(path, 0o600)
        elif self.as_root:
            os.mknod(path, _KINDS[kind] | 0o600, rdev)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            os.close(fd)
        self.created(path, uid, gid)
        self.set_mode(path, perm)
        if kind != "fifo" and not self.as_root:
            self._put(path, kind=kind, rdev=rdev)

    def set_xattr(self, path: str | Path, name: str, value: bytes) -> bool:
        """Set an xattr in the image (on the host too where it may be set); False when only minibuild holds it."""
        st = os.lstat(path)
        old = self._valid(st)
        held = list(old.xattrs) if old is not None and old.xattrs is not None else []
        if old is None or old.xattrs is None:
            try:
                held = [(n, os.getxattr(path, n, follow_symlinks=False))
                        for n in os.listxattr(path, follow_symlinks=False)]
            except OSError:
                held = []
        held = [(n, v) for n, v in held if n != name] + [(name, value)]
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
            on_host = True
        except OSError:
            on_host = False
        self._put(path, xattrs=tuple(sorted(held)))
        return on_host


_lock = threading.Lock()
_overlays: dict[str, Overlay] = {}


def overlay_of(root: str | Path) -> Overlay:
    """The overlay of ``root`` (made empty on first use; one per root for the life of the process)."""
    key = os.path.realpath(root)
    with _lock:
        ov = _overlays.get(key)
        if ov is None:
            ov = _overlays[key] = Overlay(key)
        return ov


def find_overlay(root: str | Path) -> Overlay | None:
    """The overlay of ``root`` when one was made (a build context has none: its owners never count)."""
    with _lock:
        return _overlays.get(os.path.realpath(root))


def release_under(top: str | Path) -> None:
    """Forget the overlays of every root under ``top`` (a build's scratch tree, removed)."""
    prefix = os.path.realpath(top).rstrip("/") + "/"
    with _lock:
        for key in [k for k in _overlays if k.startswith(prefix) or k + "/" == prefix]:
            del _overlays[key]
