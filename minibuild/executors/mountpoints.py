"""Mount points of a RUN's ``--mount`` targets: resolved in the root as runc resolves a mount destination, made
when missing, and removed again after the run when still empty, as BuildKit's stub cleaner does, so a target
made only for a mount never reaches the layer."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from typing import Protocol
from pathlib import Path

from minibuild.fs.confine import resolve_in_root
from minibuild.errors import ExecutorError, UnsafePathError
from minibuild.record import record


@record
class RunMount:
    """A path a RUN sees in place of the root's (``RUN --mount``): a host directory, file or socket bound there
    (``source``), or a fresh tmpfs (``source`` None, at most ``size`` bytes); ``file`` when the mount point is a
    file (a secret, an agent socket)."""

    target: str  # absolute path inside the root
    source: Path | None = None
    readonly: bool = False
    size: int | None = None
    file: bool = False


@record
class Stub:
    """A path made for a mount point (removed after the run while still empty)."""

    path: Path


def prepare(root: Path, mounts: Sequence[RunMount]) -> tuple[list[tuple[RunMount, Path]], list[Stub]]:
    """Each mount with its mount point's host path (inside ``root``; missing directories made 0755, a missing
    file mount point made empty), and the stubs made for them, to give to ``remove``. ExecutorError when a
    mount point cannot be made (a file where a directory is needed, a link loop)."""
    resolved: list[tuple[RunMount, Path]] = []
    stubs: list[Stub] = []
    real = os.path.realpath(root)
    try:
        for m in mounts:
            try:
                host = resolve_in_root(real, m.target)
            except UnsafePathError as exc:
                raise ExecutorError(f"cannot mount at {m.target}: {exc}") from None
            missing: list[Path] = []
            probe = host
            while not os.path.lexists(probe):
                missing.append(probe)
                probe = probe.parent
            if missing and not stat.S_ISDIR(os.lstat(probe).st_mode):
                raise ExecutorError(f"cannot mount at {m.target}: /{os.path.relpath(probe, real)} is not a directory")
            if not missing:
                is_dir = stat.S_ISDIR(os.lstat(host).st_mode)
                if is_dir == m.file:
                    what = "a directory" if is_dir else "not a directory"
                    raise ExecutorError(f"cannot mount {'a file' if m.file else 'a directory'} at {m.target}: "
                                        f"it is {what} in the image")
            stubs.extend(Stub(path=p) for p in make_point(host, m.file))
            resolved.append((m, host))
    except BaseException:
        remove(stubs)
        raise
    return resolved, stubs


def remove(stubs: Sequence[Stub]) -> None:
    """Remove the stubs made for a run, deepest first, while still empty (a directory the command wrote into
    beside a mount stays), keeping the times its directory had after the run, as BuildKit's
    ``MountStubsCleaner`` does (the removal itself changes nothing the layer sees)."""
    for s in reversed(stubs):
        try:
            st = os.lstat(s.path)
            if stat.S_ISDIR(st.st_mode) and os.listdir(s.path):
                continue
            if not stat.S_ISDIR(st.st_mode) and not (stat.S_ISREG(st.st_mode) and st.st_size == 0):
                continue
            parent = os.stat(s.path.parent)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(s.path)
            else:
                os.unlink(s.path)
            os.utime(s.path.parent, ns=(parent.st_atime_ns, parent.st_mtime_ns), follow_symlinks=False)
        except OSError:
            continue


def virtual(root: Path, host: Path) -> str:
    """The path inside ``root`` of a host path under it."""
    rel = os.path.relpath(host, os.path.realpath(root))
    return "/" if rel == "." else "/" + rel


class _Mounted(Protocol):
    @property
    def host(self) -> Path: ...


def make_inside(table: Mapping[str, _Mounted], vpath: str, is_file: bool) -> None:
    """Make the mount point ``vpath`` inside the deepest earlier mount holding it (the emulated shell's mount
    table; the chroot executor makes it in the mount namespace), as a kernel mount needs one there. The engine
    gives a bind holding later mounts as a private copy, so no source of the build is written."""
    best = max((p for p in table if vpath.startswith(p.rstrip("/") + "/")), key=len, default=None)
    if best is None:
        return
    base = os.path.realpath(table[best].host)
    try:
        make_point(resolve_in_root(base, vpath[len(best):]), is_file)
    except (OSError, UnsafePathError) as exc:
        raise ExecutorError(f"cannot mount at {vpath} inside the mount at {best}: {exc}") from None


def make_point(host: Path, is_file: bool) -> list[Path]:
    """Make a missing mount point at ``host`` (already resolved, so nothing missing is a link): its missing
    directories 0755, then the directory, or an empty file for a file mount; what was made, outermost first."""
    missing: list[Path] = []
    probe = host
    while not os.path.lexists(probe):
        missing.append(probe)
        probe = probe.parent
    made = []
    for i, p in enumerate(reversed(missing)):
        if is_file and i == len(missing) - 1:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
        else:
            os.mkdir(p, 0o755)
            os.chmod(p, 0o755)
        made.append(p)
    return made
