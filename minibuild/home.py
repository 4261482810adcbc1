"""Where the store lives when no ``--store`` is given, and whether it is safe to use (standard library only)."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping


def default_store_dir(environ: Mapping[str, str] | None = None) -> str:
    """$MINIBUILD_HOME, else $XDG_CACHE_HOME/minibuild, else ~/.cache/minibuild."""
    env = os.environ if environ is None else environ
    home = env.get("MINIBUILD_HOME")
    if home:
        return home
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "minibuild")


SHARED_ENV = "MINIBUILD_ALLOW_SHARED_STORE"
DIRS = ("blobs", "blobs/sha256", ".minibuild", ".minibuild/tmp", ".minibuild/leases", ".minibuild/cache",
        ".minibuild/diffids")
FILES = ("oci-layout", "index.json", ".minibuild/lock", ".minibuild/refs.lock", ".minibuild/stat-cache.json",
         ".minibuild/program-heads.json")


def shared_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """True when the user opted in to a store other users may own or write (MINIBUILD_ALLOW_SHARED_STORE=1)."""
    return (os.environ if environ is None else environ).get(SHARED_ENV) == "1"


def dir_mode() -> int:
    """The mode minibuild creates store directories with (before the umask): group-writable only when shared."""
    return 0o775 if shared_allowed() else 0o755


def _user(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


def _entry_problem(path: str, st: os.stat_result, *, want_dir: bool, shared: bool) -> str | None:
    """What is unsafe about one store path, by its lstat: a symlink, the wrong type, another owner, write by others."""
    what = "directory" if want_dir else "file"
    if stat.S_ISLNK(st.st_mode):
        return (f"store {what} {path} is a symlink: minibuild never follows symlinks inside its store; "
                f"replace it with a real {what} (or remove the store)")
    if not (stat.S_ISDIR(st.st_mode) if want_dir else stat.S_ISREG(st.st_mode)):
        return f"store {what} {path} is not a {'directory' if want_dir else 'regular file'}; remove it (or the store)"
    euid = os.geteuid()
    if st.st_uid not in (euid, 0) and not shared:
        return (f"store {what} {path} belongs to {_user(st.st_uid)}, not to you ({_user(euid)}): its owner can "
                f"change what minibuild builds and deletes; use a store of your own (--store, MINIBUILD_HOME), "
                f"`chown` it, or set {SHARED_ENV}=1 to trust it")
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH:
        return (f"store {what} {path} is writable by every user (mode {mode:04o}): anyone could change what "
                f"minibuild builds and deletes; run `chmod go-w {path}`")
    if mode & stat.S_IWGRP and not shared:
        return (f"store {what} {path} is writable by its group (mode {mode:04o}): the group could change what "
                f"minibuild builds and deletes; run `chmod go-w {path}`, or set {SHARED_ENV}=1 for a store a "
                f"trusted group shares")
    return None


def _ancestor_problem(real: str) -> str | None:
    """A store below a directory every user may write without the sticky bit: anyone could replace the store."""
    parent = os.path.dirname(real)
    while True:
        try:
            st = os.stat(parent)
        except OSError:
            return None
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            return (f"store {real} is inside {parent}, which every user may write (mode "
                    f"{stat.S_IMODE(st.st_mode):04o}, no sticky bit): anyone could replace the store; run "
                    f"`chmod o-w {parent}` (or `chmod +t {parent}`), or use a store elsewhere")
        up = os.path.dirname(parent)
        if up == parent:
            return None
        parent = up


def store_problem(root: str | os.PathLike[str]) -> str | None:
    """Why the store at ``root`` is unsafe to use (one line naming the path and the fix), or None when its root and
    every store directory and file that exists are real (no symlinks), owned by you or root, and not writable by
    others. MINIBUILD_ALLOW_SHARED_STORE=1 accepts other owners and group write (a store a trusted group shares);
    nothing accepts a symlink inside the store or a store directory every user may write."""
    shared = shared_allowed()
    top = os.fspath(root)
    try:
        st = os.lstat(top)
    except FileNotFoundError:
        return _ancestor_problem(os.path.realpath(top))  # before it is created
    if stat.S_ISLNK(st.st_mode):  # the root may be the user's own symlink (a store moved to a bigger disk) ...
        if st.st_uid not in (os.geteuid(), 0) and not shared:  # ... but not somebody else's
            return (f"store path {top} is a symlink that belongs to {_user(st.st_uid)}, not to you: its owner "
                    f"decides where minibuild writes and deletes; remove it or use another store")
        try:
            st = os.stat(top)
        except OSError:
            return f"store path {top} is a dangling symlink"
    if not stat.S_ISDIR(st.st_mode):
        return f"store path {top} exists and is not a directory"
    problem = _entry_problem(top, st, want_dir=True, shared=shared) or _ancestor_problem(os.path.realpath(top))
    if problem is not None:
        return problem
    for rel in DIRS + FILES:
        path = os.path.join(top, rel)
        try:
            sub = os.lstat(path)
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            return f"store directory {os.path.dirname(path)} is not a directory; remove it (or the store)"
        problem = _entry_problem(path, sub, want_dir=rel in DIRS, shared=shared)
        if problem is not None:
            return problem
    return None
