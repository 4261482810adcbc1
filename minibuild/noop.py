"""No-op builds: a repeated ``minibuild build`` whose inputs did not change replays the output of the cached build.

A ``minibuild build`` run from the command line leaves a *memo* in the store (``.minibuild/noop/<request>.json``)
holding the output of a fully cached build of the same request — its own output when every step hit the cache,
else that of a fully cached build it runs at once, silently, in the same process (the build the next identical
command would run) — and stamps of everything such a build reads: every entry of the context tree and the
Dockerfile (path, type, mode, size, mtime, ctime, inode, device), the store's ``index.json`` and its blob and
cache-record directories, and minibuild's own source files. The request is the command line, the working
directory, the whole environment and which streams are terminals.

The next identical command checks those stamps before anything else is imported (no click, no builder: this
module uses the standard library only) and, when all are unchanged, prints the recorded output and exits 0.
Anything unexpected — a changed stamp, an unreadable memo, another minibuild version — runs the build. No memo is
written when an input was touched within two seconds before the build (racy), changed while it ran, or the store
changed under the cached build; nor for builds that write or fetch anything besides tags (``--output``,
``--report``, ``--pull``, ``--cache-from``/``--cache-to``, a Dockerfile on stdin, ``ADD`` of a URL), ``--no-cache``
or json progress. ``MINIBUILD_NO_MEMO=1`` turns memos off. See docs/no-op-builds.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time

from minibuild.home import MEMO_DIR

TYPE_CHECKING = False
if TYPE_CHECKING:  # the entry point imports nothing it does not use: typing alone costs milliseconds
    from collections.abc import Mapping, Sequence
    from typing import IO, Any

FORMAT = 1
RACY_NS = 2_000_000_000  # a stamp this close to the memo's writing may miss a later change in the same tick
_entry_argv: list[str] | None = None


def entry_argv() -> list[str] | None:
    """The command line of this process when it came through ``main`` (memos are only for real processes)."""
    return _entry_argv


def main() -> None:
    """The ``minibuild`` command: replay a no-op build when possible, else run the click command line."""
    global _entry_argv
    argv = sys.argv[1:]
    code = replay(argv, os.environ)
    if code is not None:
        sys.exit(code)
    _entry_argv = argv
    from minibuild.cli import main as cli_main

    cli_main()


# ---------------------------------------------------------------------------------------------- stamps
def _stat_stamp(st: os.stat_result) -> list[int]:
    return [st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def path_stamp(path: str) -> list[int] | None:
    """The stamp of one path (not followed if a symlink), or None when it does not exist."""
    try:
        return _stat_stamp(os.lstat(path))
    except FileNotFoundError:
        return None


def tree_stamp(root: str) -> tuple[str, int]:
    """(digest over the stamp of every entry under ``root``, sorted by path; the newest mtime/ctime in it)."""
    h = hashlib.sha256()
    newest = 0
    st = os.lstat(root)
    h.update(json.dumps(["", *_stat_stamp(st)]).encode())
    newest = max(st.st_mtime_ns, st.st_ctime_ns)
    stack = [("", root)]
    while stack:
        rel, path = stack.pop()
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            st = e.stat(follow_symlinks=False)
            name = f"{rel}/{e.name}" if rel else e.name
            h.update(json.dumps([name, *_stat_stamp(st)]).encode())
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
            if stat.S_ISDIR(st.st_mode):
                stack.append((name, e.path))
    return h.hexdigest(), newest


def package_stamp() -> str:
    """A digest of minibuild's own source files (another version or an edited checkout replays nothing)."""
    here = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256(sys.version.encode())
    for folder, dirs, files in os.walk(here):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and d != "rootfs_fixtures")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                h.update(f"{os.path.relpath(folder, here)}/{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def store_stamp(store: str) -> dict[str, list[int] | None]:
    """The store paths a fully cached build reads: the tags, and the directories blobs and records live in."""
    paths = ("index.json", os.path.join("blobs", "sha256"), os.path.join(".minibuild", "cache"))
    return {p: path_stamp(os.path.join(store, p)) for p in paths}


def request_key(argv: Sequence[str], cwd: str, environ: Mapping[str, str], ttys: Sequence[bool]) -> str:
    """The identity of a command: its arguments, directory, environment and which of stdin/out/err are ttys."""
    doc = [FORMAT, list(argv), cwd, sorted(environ.items()), list(ttys)]
    return hashlib.sha256(json.dumps(doc).encode("utf-8", "surrogateescape")).hexdigest()


def store_of(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[str, list[str]] | None:
    """(store directory, the arguments after it) for ``[--store DIR] build ...``; None for anything else."""
    rest = list(argv)
    store = None
    if rest[:1] == ["--store"] and len(rest) >= 2:
        store, rest = rest[1], rest[2:]
    elif rest[:1] and rest[0].startswith("--store="):
        store, rest = rest[0][len("--store="):], rest[1:]
    if rest[:1] != ["build"]:
        return None
    if store is None:
        from minibuild.home import default_store_dir

        store = default_store_dir(environ)
    return os.path.abspath(store), rest


def _ttys() -> list[bool]:
    out = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            out.append(bool(stream is not None and stream.isatty()))
        except (ValueError, OSError):
            out.append(False)
    return out


def _memo_path(store: str, key: str) -> str:
    return os.path.join(store, MEMO_DIR, key + ".json")


# ---------------------------------------------------------------------------------------------- replay
def replay(argv: Sequence[str], environ: Mapping[str, str]) -> int | None:
    """Print a memoised no-op build's output and return 0, or None when the build must run."""
    if environ.get("MINIBUILD_NO_MEMO"):
        return None
    try:
        where = store_of(argv, environ)
        if where is None:
            return None
        store = where[0]
        from minibuild.home import store_problem

        if store_problem(store) is not None:
            return None  # an unsafe store (symlinked, another owner's, writable by others): the build refuses it
        key = request_key(argv, os.getcwd(), environ, _ttys())
        with open(_memo_path(store, key), "rb") as fh:
            memo = json.loads(fh.read())
        if not _still_valid(memo, key, store):
            return None
        output = [(int(fd), str(text)) for fd, text in memo["output"] if fd in (1, 2)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    streams = {1: sys.stdout, 2: sys.stderr}
    try:
        for fd, text in output:
            streams[fd].write(text)
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, UnicodeError):
        return 1  # as the command line does on a closed pipe; never fall back to printing the build a second time
    return 0


def _still_valid(memo: Any, key: str, store: str) -> bool:
    if not isinstance(memo, dict) or memo.get("format") != FORMAT or memo.get("key") != key:
        return False
    if memo.get("package") != package_stamp():
        return False
    if memo.get("store") != store_stamp(store):
        return False
    for path, stamp in memo["files"].items():
        if path_stamp(path) != stamp:
            return False
    for root, digest in memo["trees"].items():
        if tree_stamp(root)[0] != digest:
            return False
    return True


# ---------------------------------------------------------------------------------------------- recording
RECORD_LIMIT = 4 << 20  # characters a Recorder keeps; a command printing more (RUN output) leaves no memo


class Recorder:
    """Wraps stdout/stderr for one command: passes writes through and keeps them, in order, for a memo; past
    ``limit`` characters it keeps nothing more (``overflowed``): a fully cached build prints far less, and a
    build whose RUNs print megabytes must not hold them all."""

    def __init__(self, stdout: IO[str], stderr: IO[str], *, limit: int = RECORD_LIMIT) -> None:
        self.chunks: list[tuple[int, str]] = []
        self.size = 0
        self.limit = limit
        self.overflowed = False
        self.stdout = _Tee(stdout, 1, self)
        self.stderr = _Tee(stderr, 2, self)

    def keep(self, fd: int, text: str) -> None:
        if self.overflowed:
            return
        self.size += len(text)
        if self.size > self.limit:
            self.overflowed = True
            self.chunks.clear()
            return
        self.chunks.append((fd, text))


class _Tee:
    def __init__(self, stream: IO[str], fd: int, recorder: Recorder) -> None:
        self._stream = stream
        self._fd = fd
        self._recorder = recorder

    def write(self, text: str) -> int:
        self._recorder.keep(self._fd, text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Before:
    """Stamps of a build's inputs and store taken before it ran, to decide afterwards whether a memo is safe."""

    def __init__(self, *, store_dir: str, store: dict[str, list[int] | None], trees: dict[str, str],
                 files: dict[str, list[int] | None], newest: int, start_ns: int) -> None:
        self.store_dir = store_dir
        self.store = store
        self.trees = trees
        self.files = files
        self.newest = newest
        self.start_ns = start_ns

    @classmethod
    def take(cls, *, store: str, context: str, dockerfile: str) -> Before:
        """Stamp the context tree, the Dockerfile and its ignore file (when outside it) and the store, now."""
        start = time.time_ns()
        store_dir = os.path.abspath(store)
        trees, files, newest = _input_stamps(context, dockerfile)
        return cls(store_dir=store_dir, store=store_stamp(store_dir), trees=trees, files=files, newest=newest,
                   start_ns=start)

    def settled(self) -> bool:
        """No input was touched within the racy window before the build started (a later change in the same
        timestamp tick could otherwise leave every stamp as it was)."""
        return self.newest < self.start_ns - RACY_NS

    def unchanged(self) -> bool:
        """Every input still has the stamp it had before the build (nothing changed while it ran)."""
        context = next(iter(self.trees))
        dockerfile = next(iter(self.files), None)
        trees, files, _ = _input_stamps(context, dockerfile)
        return trees == self.trees and files == self.files


def _input_stamps(context: str, dockerfile: str | None) -> tuple[dict[str, str], dict[str, list[int] | None], int]:
    root = os.path.abspath(context)
    digest, newest = tree_stamp(root)
    files: dict[str, list[int] | None] = {}
    if dockerfile is not None:
        df = os.path.abspath(dockerfile)
        for path in (df, df + ".dockerignore"):
            stamp = files[path] = path_stamp(path)
            if stamp is not None:
                newest = max(newest, stamp[2], stamp[3])
    return {root: digest}, files, newest


def save(before: Before, chunks: list[tuple[int, str]], store: dict[str, list[int] | None] | None = None) -> bool:
    """Write the memo of this command (its output ``chunks``) with the stamps ``before`` holds, which the caller
    checked are still current; ``store`` is the store stamp the caller checked (default: the one before)."""
    argv = entry_argv()
    if argv is None or store_of(argv, os.environ) is None:
        return False
    key = request_key(argv, os.getcwd(), os.environ, _ttys())
    memo = {"format": FORMAT, "key": key, "package": package_stamp(), "store": store if store is not None else
            before.store, "files": before.files, "trees": before.trees, "output": chunks}
    folder = os.path.join(before.store_dir, MEMO_DIR)
    from minibuild.home import dir_mode

    os.makedirs(folder, mode=dir_mode(), exist_ok=True)
    path = _memo_path(before.store_dir, key)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)  # any umask
    with open(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
        json.dump(memo, fh)
    os.replace(tmp, path)
    _keep_newest(folder, KEEP)
    return True


KEEP = 64  # memos per store: one per distinct command line and environment; the oldest go first


def _keep_newest(folder: str, keep: int) -> None:
    from minibuild.store.dirs import opened, remove

    with opened(os.path.dirname(folder), os.path.basename(folder)) as fd:  # a symlinked memo folder: an error
        if fd is None:
            return
        with os.scandir(fd) as it:
            memos = sorted(((e.stat(follow_symlinks=False).st_mtime_ns, e.name) for e in it
                            if e.name.endswith(".json")), reverse=True)
        for _, name in memos[keep:]:
            remove(fd, name)
