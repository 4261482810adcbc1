"""File locks (fcntl.flock) shared between processes, re-entrant within one process."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from pathlib import Path
from types import TracebackType

from minibuild.errors import StoreError
from minibuild.owner import is_locked_by_someone

__all__ = ["FileLock", "atomic_write", "fsync_dir", "is_locked_by_someone"]

_registry_guard = threading.RLock()
# path -> [fd, exclusive?, depth]
_held: dict[str, list[int]] = {}


class FileLock:
    """An flock on ``path`` (created if missing). Shared or exclusive; waits up to ``timeout`` seconds.

    Locks are per process: a nested acquire of a lock this process already holds just counts
    (an exclusive hold satisfies a nested shared request; shared -> exclusive upgrade is refused).
    """

    def __init__(self, path: Path, *, shared: bool = False, timeout: float | None = 300.0) -> None:
        self.path = Path(path)
        self.shared = shared
        self.timeout = timeout
        self._owned = False

    def acquire(self) -> None:
        key = os.path.abspath(self.path)
        with _registry_guard:
            held = _held.get(key)
            if held is not None:
                if not self.shared and not held[1]:
                    raise StoreError(f"cannot upgrade the shared lock {self.path} to exclusive")
                held[2] += 1
                self._owned = True
                return
            fd = _open_lock_file(key, shared=self.shared)
            if fd is None:  # a shared lock in a store we cannot write: nothing of ours to serialise
                _held[key] = [-1, 0, 1]
                self._owned = True
                return
            op = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
            deadline = None if self.timeout is None else time.monotonic() + self.timeout
            delay = 0.005
            while True:
                try:
                    fcntl.flock(fd, op | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        os.close(fd)
                        raise StoreError(
                            f"the store is busy: another minibuild process holds {self.path} "
                            f"(waited {self.timeout:.0f}s)") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.2)
            _held[key] = [fd, 0 if self.shared else 1, 1]
            self._owned = True

    def release(self) -> None:
        if not self._owned:
            return
        key = os.path.abspath(self.path)
        with _registry_guard:
            held = _held[key]
            held[2] -= 1
            if held[2] == 0:
                del _held[key]
                if held[0] >= 0:
                    fcntl.flock(held[0], fcntl.LOCK_UN)
                    os.close(held[0])
        self._owned = False

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _open_lock_file(path: str, *, shared: bool) -> int | None:
    """The lock file's fd: read-write (created if missing). A shared lock (readers, and blob commits) falls back
    to read-only when the file cannot be written (flock needs no write access, so a read-only store still
    shares the lock with writers), or to None when it is absent and cannot be created. An exclusive lock is
    only ever taken to write the store: one that cannot open its file for writing is refused (StoreError)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        if not shared:
            raise unwritable(path, exc) from None
        try:
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None


def unwritable(path: Path | str, exc: OSError) -> StoreError:
    """The one error of a write the store refuses by its permissions (or a read-only mount)."""
    return StoreError(f"cannot write {path}: {exc.strerror or exc} (the store is not writable by this user)")


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename in it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, tmp_dir: Path | None = None, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, rename, fsync the directory.

    ``durable=False`` skips both fsyncs: the rename is still atomic (readers see the old or the new file), but a
    crash may lose the write; for records that are only a cache (a lost or empty one is a miss)."""
    folder = tmp_dir or path.parent
    tmp = folder / f".tmp-{path.name}-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise unwritable(path, exc) from None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held until closed, after the rename: a reaper knows the writer lives
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)
