"""The emulated shell's view of a root directory: chroot-like path resolution that never leaves the root."""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from minibuild.fs.confine import Filler, filler_of
from minibuild.fs.ownership import Overlay, overlay_of

MAX_SYMLINKS = 40
DEVICES = ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/zero", "/dev/fd/0", "/dev/fd/1", "/dev/fd/2")
RANDOM_DEVICES = ("/dev/random", "/dev/urandom")
# Device nodes, FIFOs and sockets found in the root are never opened: an image layer may carry a node whose
# numbers name a HOST device (a disk, /dev/mem, an endless 1:5), and a FIFO blocks forever.  Only regular files
# (and, for reading, directories, which then fail with EISDIR) are opened; the emulated devices above are
# handled by the interpreter and builtins without touching the root.
_OPEN_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
    | getattr(os, "O_CLOEXEC", 0)


def fs_error(code: int, vpath: str) -> OSError:
    """An OSError carrying the path as the user sees it inside the root."""
    return OSError(code, os.strerror(code), vpath)


def vnorm(path: str, cwd: str = "/") -> str:
    """Join `path` to `cwd` and normalise lexically, clamping `..` at `/` (no symlinks consulted)."""
    full = path if path.startswith("/") else posixpath.join(cwd, path)
    out: list[str] = []
    for comp in full.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if out:
                out.pop()
            continue
        out.append(comp)
    return "/" + "/".join(out)


@dataclass(frozen=True, slots=True)
class Mount:
    """A host file or directory seen at a path of the root (a RUN --mount), read-only or not."""

    host: Path
    readonly: bool = False


@dataclass(slots=True)
class RootFS:
    """A root directory plus the identity and umask new files get; every host path comes from `resolve`.

    ``binds`` are files bound over paths of the root, as Docker bind-mounts /etc/hosts: each virtual path (resolved
    in the root once, as a mount point is) maps to a host file outside the root, used while it is a regular file."""

    root: Path
    uid: int = 0
    gid: int = 0
    umask: int = 0o022
    binds: Mapping[str, Path] = field(default_factory=dict)
    max_bytes: int | None = None  # the largest file read whole into memory (the shell's memory limit)
    mounts: Mapping[str, Mount] = field(default_factory=dict)
    meta: Overlay = field(init=False)  # owners, modes, device nodes: minibuild's, never the host's
    filler: Filler | None = field(init=False)  # a layered root's: fills each path from the layers on first touch

    def __post_init__(self) -> None:
        self.root = Path(os.path.realpath(self.root))
        self.meta = overlay_of(self.root)
        self.filler = filler_of(self.root)
        binds, self.binds = self.binds, {}
        resolved = {}
        for vpath, host in binds.items():
            try:
                resolved[self.resolve(vpath)] = Path(host)
            except OSError:
                continue  # e.g. /etc is a file in this root: nothing can be bound there
        self.binds = resolved
        table, self.mounts = self.mounts, {}
        for vpath, mnt in table.items():  # each resolved as the table so far sees it (a mount inside a mount)
            self.mounts = {**self.mounts, self.resolve(vpath): mnt}

    def _mounted(self, vpath: str) -> Path | None:
        """The host path of ``vpath`` (symlink-free) when it lies in a mount: the deepest mount holding it."""
        best = ""
        for point in self.mounts:
            if (vpath == point or vpath.startswith(point + "/")) and len(point) > len(best):
                best = point
        if not best:
            return None
        rest = vpath[len(best):].lstrip("/")
        host = self.mounts[best].host
        return host / rest if rest else host

    def check_write(self, host: Path | str, *, remove: bool = False) -> None:
        """Refuse a change at ``host`` inside a read-only mount (EROFS), and the removal or renaming of a mount
        point itself (EBUSY), as the kernel does for the mounts a RUN sees."""
        if not self.mounts:
            return
        text = os.path.abspath(host)
        for point, mnt in self.mounts.items():
            top = os.path.abspath(mnt.host)
            if remove and text == top:
                raise fs_error(errno.EBUSY, point)
            if mnt.readonly and (text == top or text.startswith(top.rstrip("/") + "/")):
                raise fs_error(errno.EROFS, self.to_virtual(host))

    def _bound(self, vpath: str) -> Path | None:
        """The host file bound at ``vpath`` while it is a regular file (never a link someone put in its place)."""
        host = self.binds.get(vpath)
        if host is None:
            return None
        try:
            return host if stat.S_ISREG(os.lstat(host).st_mode) else None
        except OSError:
            return None

    def host(self, vpath: str) -> Path:
        """Host path of a virtual path that is already resolved (symlink-free prefix); internal use."""
        if self.binds:
            bound = self._bound(vnorm(vpath))
            if bound is not None:
                return bound
        if self.mounts:
            mounted = self._mounted(vnorm(vpath))
            if mounted is not None:
                return mounted
        rel = vpath.lstrip("/")
        return self.root / rel if rel else self.root

    def resolve(self, path: str, cwd: str = "/", *, follow: bool = True) -> str:
        """Resolve `path` like the kernel would under chroot(root), returning a symlink-free virtual path.

        Every intermediate symlink is followed inside the root (absolute targets restart at the root, `..`
        clamps at it); the last component is followed only when `follow`. A missing component ends the walk
        (the rest is appended lexically); a non-directory in the middle raises ENOTDIR.
        """
        if path == "":
            raise fs_error(errno.ENOENT, path)
        if path.startswith("/proc/") or path == "/proc" or vnorm(path, cwd).startswith("/proc/") or vnorm(path, cwd) == "/proc":
            raise fs_error(errno.EACCES, path)
        start = path if path.startswith("/") else cwd.rstrip("/") + "/" + path
        todo = [c for c in start.split("/") if c not in ("", ".")]
        todo.reverse()
        done: list[str] = []
        hops = 0
        trailing_slash = path.endswith("/")
        dir_wanted = trailing_slash or path.endswith("/.") or path == "."
        while todo:
            comp = todo.pop()
            if comp == "..":
                if done:
                    done.pop()
                continue
            cand = done + [comp]
            mounted = self._mounted("/" + "/".join(cand)) if self.mounts else None
            if mounted is None and self.filler is not None:
                self.filler.ensure("/".join(cand))
            hostp = mounted or self.root.joinpath(*cand)
            try:
                st = os.lstat(hostp)
            except FileNotFoundError:
                rest = list(reversed(todo))
                out = cand + [c for c in rest]
                # lexical for the missing remainder, still clamped
                return vnorm("/" + "/".join(out))
            except NotADirectoryError:
                raise fs_error(errno.ENOTDIR, path) from None
            is_last = not todo
            if stat.S_ISLNK(st.st_mode) and (not is_last or follow or trailing_slash):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise fs_error(errno.ELOOP, path)
                target = os.readlink(hostp)
                if target.startswith("/"):
                    done = []
                comps = [c for c in target.split("/") if c not in ("", ".")]
                todo.extend(reversed(comps))
                continue
            if not (is_last and not dir_wanted) and not stat.S_ISDIR(st.st_mode):
                raise fs_error(errno.ENOTDIR, path)  # in the middle, or last with a trailing / or /.
            done = cand
        return "/" + "/".join(done)

    def path(self, path: str, cwd: str = "/", *, follow: bool = True) -> Path:
        """Host path for `path` (see `resolve`)."""
        return self.host(self.resolve(path, cwd, follow=follow))

    def to_virtual(self, host: Path | str) -> str:
        for vpath, bound in self.binds.items():
            if Path(host) == bound:
                return vpath
        text = os.path.abspath(host)
        for point, mnt in sorted(self.mounts.items(), key=lambda pm: -len(str(pm[1].host))):
            top = os.path.abspath(mnt.host)
            if text == top or text.startswith(top.rstrip("/") + "/"):
                rest = text[len(top):].lstrip("/")
                return point if not rest else (point.rstrip("/") + "/" + rest)
        rel = os.path.relpath(host, self.root)
        return "/" if rel == "." else "/" + rel

    # ----- listing (a layered root fills a directory before it is listed)
    def _fill_children(self, host: Path | str) -> None:
        rel = self._filled_rel(host)
        if rel is not None and self.filler is not None:
            self.filler.ensure(rel)
            self.filler.ensure_children(rel)

    def _filled_rel(self, host: Path | str) -> str | None:
        """``host`` relative to a layered root (None: not a layered root, or a mount's path)."""
        if self.filler is None:
            return None
        rel = os.path.relpath(host, self.root)
        if rel == ".":
            return ""
        return None if rel == ".." or rel.startswith("../") else rel

    def before_rename(self, host: Path | str) -> None:
        """A directory of a layered root is renamed only whole: what its lower layers hold moves with it."""
        rel = self._filled_rel(host)
        if rel is not None and self.filler is not None and os.path.isdir(host) and not os.path.islink(host):
            self.filler.ensure_tree(rel)

    def listdir(self, host: Path | str) -> list[str]:
        """The names in a directory of the root (``os.listdir`` of its host path, whole in a layered root)."""
        self._fill_children(host)
        return os.listdir(host)

    def walk(self, host: Path | str) -> Iterator[tuple[str, list[str], list[str]]]:
        """``os.walk(host)`` (top-down, symlinks not followed; prune by editing the directory list) over the root."""
        try:
            names = self.listdir(host)
        except OSError:
            return
        dirs: list[str] = []
        files: list[str] = []
        for name in names:
            try:
                is_dir = stat.S_ISDIR(os.lstat(os.path.join(host, name)).st_mode)
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(name)
        yield os.fspath(host), dirs, files
        for name in dirs:
            yield from self.walk(os.path.join(host, name))

    # ----- metadata through the ownership overlay (minibuild.fs.ownership)
    def lstat(self, host: Path | str) -> os.stat_result:
        """lstat of a host path of the root, with the owner, mode and node type the image has."""
        st = os.lstat(host)
        if self.filler is not None and stat.S_ISDIR(st.st_mode):
            st = self._whole_dir(host, st)
        return self.meta.view(st)

    def stat(self, host: Path | str, *, follow_symlinks: bool = True) -> os.stat_result:
        """stat of a host path of the root (already resolved by ``resolve``), as the image has it."""
        st = os.stat(host, follow_symlinks=follow_symlinks)
        if self.filler is not None and stat.S_ISDIR(st.st_mode) and (not follow_symlinks or not os.path.islink(host)):
            st = self._whole_dir(host, st)
        return self.meta.view(st)

    def _whole_dir(self, host: Path | str, st: os.stat_result) -> os.stat_result:
        """A directory's stat as the image has it: its link count counts the subdirectories its lower layers hold
        and nothing filled yet (without filling them: a stat copies no file)."""
        rel = self._filled_rel(host)
        if rel is None or self.filler is None:
            return st
        extra = self.filler.pending_subdirs(rel)
        if not extra:
            return st
        return os.stat_result(
            (st.st_mode, st.st_ino, st.st_dev, st.st_nlink + extra, st.st_uid, st.st_gid, st.st_size,
             int(st.st_atime), int(st.st_mtime), int(st.st_ctime)),
            {"st_atime": st.st_atime, "st_mtime": st.st_mtime, "st_ctime": st.st_ctime, "st_atime_ns": st.st_atime_ns,
             "st_mtime_ns": st.st_mtime_ns, "st_ctime_ns": st.st_ctime_ns, "st_blksize": st.st_blksize,
             "st_blocks": st.st_blocks, "st_rdev": st.st_rdev})

    def chmod(self, host: Path | str, mode: int) -> None:
        self.check_write(host)
        self.meta.set_mode(host, mode)

    def chown(self, host: Path | str, uid: int, gid: int) -> None:
        self.check_write(host)
        self.meta.set_owner(host, uid, gid)

    # ----- creation with umask and ownership
    def own(self, host: Path | str, uid: int | None = None, gid: int | None = None) -> None:
        """Record a new file as the shell user's (or ``uid``:``gid``); in a setgid directory a new file's group is
        the directory's, as the kernel gives it (unless ``gid`` says otherwise)."""
        if gid is None:
            parent = self.stat(Path(host).parent)
            gid = parent.st_gid if parent.st_mode & stat.S_ISGID else self.gid
        self.meta.created(host, self.uid if uid is None else uid, gid)

    def mkdir(self, host: Path, mode: int = 0o777) -> None:
        """A new directory with the umask applied; inside a setgid directory it keeps the setgid bit (as mkdir(2))."""
        self.check_write(host)
        os.mkdir(host, 0o700)
        self.own(host)
        inherited = self.stat(host.parent).st_mode & stat.S_ISGID  # what the image says of the parent
        self.chmod(host, (mode & ~self.umask) | inherited)

    def _refuse_special(self, host: Path, st: os.stat_result) -> None:
        """EPERM for a device node, FIFO or socket (the root's nodes are never opened); EISDIR for a directory."""
        if stat.S_ISDIR(st.st_mode):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR), self.to_virtual(host))
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EPERM, os.strerror(errno.EPERM), self.to_virtual(host))

    def open_read(self, host: Path) -> BinaryIO:
        """A regular file of the root opened for reading; device nodes, FIFOs and sockets raise EPERM."""
        st = self.lstat(host)
        if not stat.S_ISLNK(st.st_mode):
            self._refuse_special(host, st)
        fd = os.open(host, os.O_RDONLY | _OPEN_FLAGS)  # O_NOFOLLOW: a symlink here is never followed on the host
        try:
            self._refuse_special(host, self.meta.view(os.fstat(fd)))
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def read_bytes(self, host: Path, limit: int | None = None) -> bytes:
        """Content of a regular file of the root (at most `limit` bytes when given); a file larger than the
        memory limit raises ShellError (it is never read whole)."""
        with self.open_read(host) as f:
            if limit is None and self.max_bytes is not None:
                data = f.read(self.max_bytes + 1)
                if len(data) > self.max_bytes:
                    from minibuild.errors import ShellError
                    from minibuild.limits import ENV_RUN_MAX_BYTES

                    raise ShellError(f"sh: {self.to_virtual(host)}: a file larger than {self.max_bytes} bytes is "
                                     f"read whole, past the emulated shell's memory limit set by "
                                     f"{ENV_RUN_MAX_BYTES} (raise it, or use --executor chroot)")
                return data
            return f.read() if limit is None else f.read(max(limit, 0))

    def open_write(self, host: Path, append: bool = False, mode: int = 0o666):  # type: ignore[no-untyped-def]
        """A regular file of the root opened for writing (created with umask and ownership when new); an
        existing device node, FIFO or socket raises EPERM and a directory EISDIR, without being opened."""
        try:
            st: os.stat_result | None = self.lstat(host)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISLNK(st.st_mode):
            self._refuse_special(host, st)
        self.check_write(host)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC) | _OPEN_FLAGS
        fd = os.open(host, flags, 0o666)
        try:
            self._refuse_special(host, self.meta.view(os.fstat(fd)))
            f = os.fdopen(fd, "ab" if append else "wb")
        except BaseException:
            os.close(fd)
            raise
        if st is None:
            self.own(host)
            self.chmod(host, mode & ~self.umask)
        return f

    def symlink(self, target: str, host: Path) -> None:
        self.check_write(host)
        os.symlink(target, host)
        self.own(host)
