"""Whether the process that owns a temp file, scratch tree or lease still runs: the flock it holds, or its pid."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path


def is_locked_by_someone(path: Path | str, *, dir_fd: int | None = None) -> bool:
    """True when another open file description holds an flock on ``path`` (the owner is alive).

    ``path`` may be a directory (build scratch trees are flocked directories); a symlink is never followed
    (it holds no lock), nor is a FIFO opened in blocking mode."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    except OSError as exc:
        return exc.errno != errno.ELOOP  # a symlink holds no lock; an entry we may not open counts as held
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` runs in this pid namespace (a pid we may not signal counts as alive; None is unknown).

    Only a second guard next to a flock: a pid says nothing about processes of another pid namespace."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
