"""The one confined path resolver (a path inside a root resolved as a chroot would) and the one small-file reader.

``resolve_components`` is the algorithm; every reader and writer of a root (layer extraction, COPY/ADD
destinations and sources, WORKDIR, USER and ``--chown`` lookups, the build context) goes through it:

* absolute symlink targets start again at the root, ``..`` never climbs above it (``strict=True`` refuses such a
  ``..`` with UnsafePathError instead of clamping it);
* missing components are kept literally; a component hidden by ``exists`` (e.g. by .dockerignore) is a literal
  missing name, never a symlink to follow;
* with ``follow_final=False`` the last component is returned as named (never followed);
* more than ``max_links`` symlinks is an UnsafePathError (a loop).

A root may be *layered* (``minibuild.fs.layered``): its host directory holds only what was touched so far, and the
rest is filled in from the image's layers on first touch. Such a root registers a filler (``fill_on_touch``); the
resolver asks it for every component it walks, before looking at the host, so every reader and writer that goes
through this module sees the whole image.

``read_small_file`` reads a file such as /etc/passwd of an image, a Dockerfile or a .dockerignore: resolved
inside its root, a regular file only (a FIFO, device or socket is refused WITHOUT being opened, so nothing blocks
and no device driver runs), opened with ``O_NOFOLLOW|O_NONBLOCK`` and checked again with ``fstat``, and at most
``limit`` bytes. This module is imported at start-up: stdlib ``os``/``stat`` only.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from minibuild.errors import UnsafePathError

MAX_SYMLINKS = 40
SMALL_FILE_LIMIT = 16 << 20  # a Dockerfile, .dockerignore, /etc/passwd or /etc/group is never near 16 MiB
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class Filler(Protocol):
    """What fills a layered root's host directory from its lower layers (``minibuild.fs.layered.LayeredRoot``)."""

    def ensure(self, rel: str) -> None:
        """Make the physical path ``rel`` (and its parents) present on the host if the lower layers hold it."""

    def ensure_children(self, rel: str) -> None:
        """Make every child of directory ``rel`` present on the host (before it is listed)."""

    def ensure_tree(self, rel: str) -> None:
        """Make everything below directory ``rel`` present on the host (before it is moved or handed over)."""

    def pending_subdirs(self, rel: str) -> int:
        """How many subdirectories of directory ``rel`` the lower layers hold that are not on the host yet."""

    def drop(self, rel: str) -> None:
        """``rel`` (whose parent is present) is removed: never fill it, nor anything below it."""

    def drop_children(self, rel: str) -> None:
        """Directory ``rel`` is made opaque: none of its lower children not on the host yet is ever filled."""


_FILLERS: dict[str, Filler] = {}


def fill_on_touch(root: Path | str, filler: Filler | None) -> None:
    """Register (or with None forget) the filler of the layered root ``root``."""
    key = os.path.realpath(root)
    if filler is None:
        _FILLERS.pop(key, None)
    else:
        _FILLERS[key] = filler


def filler_of(root: Path | str) -> Filler | None:
    """The filler of ``root`` when it is a layered root still being filled, else None."""
    return _FILLERS.get(os.path.realpath(root)) if _FILLERS else None


def forget_fillers_under(top: Path | str) -> None:
    """Forget the fillers of every root under ``top`` (a build's scratch tree, removed)."""
    prefix = os.path.realpath(top).rstrip("/") + "/"
    for key in [k for k in _FILLERS if k.startswith(prefix)]:
        del _FILLERS[key]


def resolve_components(
    base: str,
    path: str,
    *,
    follow_final: bool = True,
    strict: bool = False,
    exists: Callable[[str], bool] | None = None,
    max_links: int = MAX_SYMLINKS,
) -> list[str]:
    """The components, below the real directory ``base``, that ``path`` resolves to inside it (see module doc)."""
    parts = deque(p for p in path.split("/") if p not in ("", "."))
    resolved: list[str] = []
    links = 0
    filler = _FILLERS.get(base) if _FILLERS else None
    while parts:
        comp = parts.popleft()
        if comp == "..":
            if resolved:
                resolved.pop()
            elif strict:
                raise UnsafePathError(f"{path!r} leads outside the root")
            continue
        if filler is not None:
            filler.ensure("/".join([*resolved, comp]))  # the last component too: a writer looks at what is there
        if parts or follow_final:
            rel = "/".join([*resolved, comp])
            if exists is None or exists(rel):
                candidate = base + "/" + rel
                try:
                    st = os.lstat(candidate)
                except OSError:
                    st = None
                if st is not None and stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > max_links:
                        raise UnsafePathError(f"{path!r}: too many levels of symbolic links")
                    target = os.readlink(candidate)
                    if target.startswith("/"):
                        resolved = []
                    parts.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
                    continue
        resolved.append(comp)
    return resolved


def resolve_in_root(root: Path | str, path: str, *, follow_final: bool = True, strict: bool = False) -> Path:
    """Resolve ``path`` (absolute or relative to ``root``) inside ``root`` as a chroot would; a host path.

    Never returns a path outside ``os.path.realpath(root)``.  Missing components are kept literally.  Raises
    UnsafePathError for symlink loops (more than 40 links) and, when ``strict``, for ``..`` escaping the root.
    """
    base = os.path.realpath(root)
    return Path(base, *resolve_components(base, path, follow_final=follow_final, strict=strict))


def resolve_relative(
    root: Path | str,
    path: str,
    *,
    follow_final: bool = True,
    strict: bool = False,
    exists: Callable[[str], bool] | None = None,
    max_links: int = MAX_SYMLINKS,
) -> str:
    """Like ``resolve_in_root`` but the result is relative to the root ("" is the root itself)."""
    return "/".join(resolve_components(os.path.realpath(root), path, follow_final=follow_final, strict=strict,
                                       exists=exists, max_links=max_links))


def safe_join(root: Path | str, path: str) -> Path:
    """Where an entry named ``path`` lives: parents resolved strictly inside ``root``, last component not followed."""
    return resolve_in_root(root, path, follow_final=False, strict=True)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device node"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_small_file(
    root: Path | str,
    path: str,
    *,
    what: str,
    error: Callable[[str], Exception],
    limit: int = SMALL_FILE_LIMIT,
) -> bytes | None:
    """Content of the regular file ``path`` inside ``root`` (symlinks resolved inside it); None when it is missing.

    Raises ``error`` with one line naming ``what`` when it is a FIFO, device, socket or directory (never opened),
    larger than ``limit`` bytes, or unreadable; symlink loops raise UnsafePathError.
    """
    from minibuild.fs.ownership import find_overlay

    host = os.fspath(resolve_in_root(root, path))
    overlay = find_overlay(root)  # a device node may be a placeholder file: its type is the overlay's
    try:
        info = os.lstat(host)
        info = overlay.view(info) if overlay is not None else info
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise error(f"cannot read {what}: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} is {_kind(info.st_mode)}: a regular file is required")
    if info.st_size > limit:
        raise error(f"{what} is larger than {limit} bytes: refusing to read it")
    try:
        fd = os.open(host, _OPEN_FLAGS)
    except OSError as err:
        raise error(f"cannot read {what}: {err.strerror or err}") from None
    with os.fdopen(fd, "rb") as fh:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            raise error(f"{what} changed while it was opened: a regular file is required")
        try:  # in small reads: one read(limit + 1) would allocate the whole cap up front
            parts: list[bytes] = []
            got = 0
            while got <= limit and (chunk := fh.read(min(1 << 16, limit + 1 - got))):
                parts.append(chunk)
                got += len(chunk)
            data = b"".join(parts)
        except OSError as err:
            raise error(f"cannot read {what}: {err.strerror or err}") from None
    if len(data) > limit:
        raise error(f"{what} is larger than {limit} bytes: refusing to read it")
    return data


def read_build_file(
    context: Path | str | None, path: Path | str, *, what: str, error: Callable[[str], Exception]
) -> bytes | None:
    """A Dockerfile or ignore file named by the user: resolved inside ``context`` when it lies in it (a symlink out
    of a possibly hostile context is never followed), else as named; a regular file of at most 16 MiB either way
    (``read_small_file``). None when it is missing."""
    full = os.path.abspath(path)
    if context is not None:
        top = os.path.abspath(context)
        rel = os.path.relpath(full, top)
        if rel != ".." and not rel.startswith("../"):
            return read_small_file(top, rel, what=what, error=error)
    return read_small_file("/", full, what=what, error=error)
