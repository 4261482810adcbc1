"""The store's own directories: checked when a store is opened, walked and emptied without following symlinks.

``check_store`` refuses a store whose root, directories (``blobs/sha256``, ``.minibuild/tmp`` ...) or own files
(``index.json``, the lock files ...) are symlinks, belong to another user, or are writable by other users: one
line naming the path and the fix (the rules are ``minibuild.home.store_problem``, standard library only so the
no-op replay applies them too). Every walk or removal inside the store goes
through ``open_dir`` (each component opened with ``O_NOFOLLOW`` from the root) and ``remove`` (``unlink`` or the
fd-based ``shutil.rmtree`` relative to that directory fd), so a directory swapped for a symlink is an error, never
a way to delete files elsewhere.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from minibuild.errors import StoreError
from minibuild.home import DIRS, FILES, SHARED_ENV, dir_mode, shared_allowed, store_problem

__all__ = ["DIRS", "FILES", "SHARED_ENV", "check_store", "dir_mode", "shared_allowed", "open_dir", "opened",
           "opened_below", "names", "lstat_at", "tree_size", "entry_size", "remove"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def check_store(root: Path | str) -> None:
    """Refuse (StoreError, one line) a store that ``home.store_problem`` finds unsafe to use."""
    problem = store_problem(root)
    if problem is not None:
        raise StoreError(problem)


def open_dir(root: Path | str, *parts: str) -> int:
    """An fd of ``root/parts...``, each part opened with O_NOFOLLOW relative to the previous one (FileNotFoundError
    when missing; StoreError when one is a symlink or not a directory)."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for i, part in enumerate(parts):
            try:
                nfd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    where = os.path.join(os.fspath(root), *parts[:i + 1])
                    raise StoreError(f"store directory {where} is not a real directory (a symlink?): minibuild "
                                     f"never follows symlinks inside its store; replace it with a directory") from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def opened(root: Path | str, *parts: str) -> Iterator[int | None]:
    """``open_dir`` as a context manager; yields None when the directory does not exist."""
    try:
        fd = open_dir(root, *parts)
    except FileNotFoundError:
        yield None
        return
    try:
        yield fd
    finally:
        os.close(fd)


def opened_below(root: Path | str | None, path: Path | str) -> AbstractContextManager[int | None]:
    """``opened`` for a directory ``path`` inside the store ``root`` (each component below ``root`` opened
    without following symlinks; with no root, only the last one)."""
    p = Path(path)
    if root is None:
        return opened(p.parent, p.name)
    return opened(root, *p.relative_to(root).parts)


def names(fd: int) -> list[str]:
    """The sorted entry names of an open directory."""
    return sorted(os.listdir(fd))


def lstat_at(fd: int, name: str) -> os.stat_result | None:
    """The entry's own stat (a symlink is not followed), or None when it is gone."""
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def tree_size(fd: int, name: str) -> int:
    """Bytes of the regular files under the directory ``name`` (symlinks not followed)."""
    total = 0
    for _path, _dirs, files, dfd in os.fwalk(name, dir_fd=fd):
        for f in files:
            st = lstat_at(dfd, f)
            if st is not None and stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def entry_size(fd: int, name: str) -> int:
    """Bytes of the entry ``name``: a regular file's size, a directory's ``tree_size``, else 0."""
    st = lstat_at(fd, name)
    if st is None:
        return 0
    if stat.S_ISDIR(st.st_mode):
        return tree_size(fd, name)
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def remove(fd: int, name: str, *, measure: bool = False) -> int:
    """Remove the entry ``name`` of the directory ``fd`` without following any symlink (a directory with the
    fd-based ``shutil.rmtree``); returns its bytes when ``measure`` (0 when it was already gone)."""
    st = lstat_at(fd, name)
    if st is None:
        return 0
    if stat.S_ISDIR(st.st_mode):
        import shutil  # zlib, bz2, lzma and more: imported only when a tree is removed

        if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - Linux always has the fd-based rmtree
            raise StoreError(f"cannot safely remove the directory {name}: this platform's rmtree follows symlinks")
        size = tree_size(fd, name) if measure else 0
        shutil.rmtree(name, dir_fd=fd, ignore_errors=True)
        return size
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        return 0
    return st.st_size if measure and stat.S_ISREG(st.st_mode) else 0
