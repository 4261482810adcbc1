"""Prune: delete blobs that no image, cache record or live build lease references; leases pin blobs."""

from __future__ import annotations

import fcntl
import os
import stat
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from minibuild.digest import Digest
from minibuild.errors import ImageFormatError, StoreError
from minibuild.oci.model import parse_json
from minibuild.record import record
from minibuild.store.dirs import entry_size, lstat_at, names, opened, opened_below, remove
from minibuild.owner import is_locked_by_someone, pid_alive
from minibuild.store.lock import FileLock, unwritable

if TYPE_CHECKING:
    from minibuild.store import Store

_MAX_JSON = 4 << 20  # walk blobs up to this size when they look like manifests/indexes


class Lease:
    """Pins blobs for an in-flight build: an append-only file flock'ed for as long as the lease lives.

    Prune treats the digests of every lease whose file is still locked as live; a lease whose owner died
    (lock free) is removed. Blob commits add to the lease under the store's shared lock, so prune (holding
    it exclusively) sees either neither or both the blob and its pin.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{os.getpid()}-{os.urandom(6).hex()}.lease"
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except PermissionError as exc:
            raise unwritable(directory, exc) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd: int | None = fd
        self.digests: set[Digest] = set()

    def add(self, *digests: Digest) -> None:
        if self._fd is None:
            raise StoreError("lease already released")
        new = [d for d in digests if d not in self.digests]
        if new:
            os.write(self._fd, "".join(d.value + "\n" for d in new).encode())
            self.digests.update(new)

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class Scratch:
    """A build's scratch directory ``.minibuild/tmp/build-<pid>-<hex>`` (mode 0700), flocked for as long as it
    lives: made and locked under the store's shared lock, so a reaper (exclusive) never sees it unlocked while
    its build runs, in any pid namespace. ``remove`` deletes it without following symlinks."""

    def __init__(self, store: Store) -> None:
        self._root = store.root
        self.name = f"build-{os.getpid()}-{os.urandom(6).hex()}"
        with FileLock(store.lock_path, shared=True), opened(store.root, ".minibuild", "tmp") as tmp:
            if tmp is None:
                raise StoreError(f"the store's temp directory {store.tmp_dir} is missing")
            os.mkdir(self.name, 0o700, dir_fd=tmp)
            fd = os.open(self.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=tmp)
            fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd: int | None = fd
        self.path = store.tmp_dir / self.name

    def remove(self) -> None:
        """Delete the tree and drop its lock (idempotent)."""
        if self._fd is None:
            return
        try:
            with opened(self._root, ".minibuild", "tmp") as tmp:
                if tmp is not None:
                    remove(tmp, self.name)
        finally:
            os.close(self._fd)
            self._fd = None


YOUNG = 60.0  # seconds: an unknown entry (no pid in its name) younger than this may belong to a live writer


def _pid_in(name: str) -> int | None:
    """The pid a temp or lease name embeds: ``build-<pid>-<hex>``, ``blob-<pid>-<hex>``, ``<pid>-<hex>.lease``,
    ``.tmp-<file>-<pid>-<hex>`` (atomic_write)."""
    if name.endswith(".lease"):
        text = name.split("-", 1)[0]
    elif name.startswith((".tmp-", ".")):
        parts = name.rsplit("-", 2)
        text = parts[1] if len(parts) == 3 else ""
    else:
        parts = name.split("-")
        text = parts[1] if len(parts) >= 3 else ""
    return int(text) if text.isdigit() and len(text) < 10 else None


def debris(fd: int, name: str, *, lease: bool = False, now: float | None = None) -> str | None:
    """Why the entry ``name`` of ``.minibuild/tmp`` (or, with ``lease``, of ``.minibuild/leases``) is debris of a
    process that died, or None when its owner may be alive.

    Liveness is the flock its owner holds: blob writers, leases, build scratch trees and ``atomic_write`` temp
    files are flocked from creation until they are gone, so this is exact across pid namespaces. As a second
    guard an entry whose embedded pid runs here is never debris (that covers the instant between creating a temp
    file and locking it); an entry with no pid in its name only once it is older than ``YOUNG`` seconds."""
    if lease and not name.endswith(".lease"):
        return None
    pid = _pid_in(name)
    if is_locked_by_someone(name, dir_fd=fd) or pid_alive(pid):
        return None
    if lease:
        return "lease of a build that died; it pins nothing any more"
    if name.startswith("blob-"):
        return "partial blob of a writer that was killed"
    if name.startswith("build-"):
        return "scratch directory of a build that was killed"
    if pid is not None and name.startswith(".tmp-"):
        return "temp file of a write that was interrupted"
    st = lstat_at(fd, name)
    if st is None or (now if now is not None else time.time()) - st.st_mtime < YOUNG:
        return None  # not minibuild's naming: only once it is clearly abandoned
    return "left behind by an interrupted writer"


@record
class Reaped:
    """What ``reap`` removed (or, dry, would remove): debris of dead processes."""

    leases: tuple[str, ...] = ()
    temps: tuple[str, ...] = ()
    freed_bytes: int = 0


def reap(store: Store, *, dry_run: bool = False) -> Reaped:
    """Remove dead leases and the temp files and scratch trees of dead processes (the caller holds the store lock
    exclusively); nothing is followed through a symlink."""
    now = time.time()
    leases: list[str] = []
    temps: list[str] = []
    freed = 0
    with opened(store.root, ".minibuild", "leases") as fd:
        for name in names(fd) if fd is not None else ():
            assert fd is not None
            if debris(fd, name, lease=True, now=now) is not None:
                if not dry_run:
                    remove(fd, name)
                leases.append(name)
    with opened(store.root, ".minibuild", "tmp") as fd:
        for name in names(fd) if fd is not None else ():
            assert fd is not None
            if debris(fd, name, now=now) is not None:
                freed += entry_size(fd, name) if dry_run else remove(fd, name, measure=True)
                temps.append(name)
    return Reaped(leases=tuple(leases), temps=tuple(temps), freed_bytes=freed)


def reap_if_idle(store: Store) -> Reaped | None:
    """``reap`` when the store lock is free right now (a build start: never waits, never slows a warm build)."""
    lock = FileLock(store.lock_path, timeout=0)
    try:
        lock.acquire()
    except StoreError:
        return None  # a commit, a prune or another reaper is running: the next build or prune reaps
    try:
        return reap(store)
    except (OSError, StoreError):
        return None  # reaping is housekeeping: a build never fails because of it
    finally:
        lock.release()


def live_lease_digests(directory: Path, *, remove_dead: bool = False, root: Path | None = None) -> set[Digest]:
    """Digests pinned by leases whose owners are alive (their files read without following symlinks)."""
    out: set[Digest] = set()
    with opened_below(root, directory) as fd:
        for name in names(fd) if fd is not None else ():
            assert fd is not None
            if not name.endswith(".lease"):
                continue
            if debris(fd, name, lease=True) is not None:
                if remove_dead:
                    remove(fd, name)
                continue
            try:
                lfd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                continue
            with os.fdopen(lfd, "rb") as fh:
                text = fh.read().decode(errors="replace")
            for line in text.splitlines():
                try:
                    out.add(Digest(line.strip()))
                except ImageFormatError:
                    continue
    return out


@record
class PruneReport:
    """What prune removed."""

    removed: tuple[Digest, ...]
    freed_bytes: int
    kept: int
    temp_files_removed: int = 0
    cache_records_removed: int = 0


def _children(store: Store, digest: Digest) -> list[Digest]:
    """Blobs a manifest or index blob points to (none for other blobs)."""
    try:
        fd = os.open(store.blobs.path(digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []  # absent, or a symlink (a corrupt blob: never followed)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_JSON:
            return []
        data = fh.read()
    if not data.lstrip()[:1] == b"{":
        return []
    try:
        doc = parse_json(data, "blob")
    except ImageFormatError:
        return []
    out: list[Digest] = []
    descs = []
    if isinstance(doc.get("config"), dict):
        descs.append(doc["config"])
    for key in ("layers", "manifests"):
        if isinstance(doc.get(key), list):
            descs.extend(doc[key])
    if isinstance(doc.get("subject"), dict):
        descs.append(doc["subject"])
    for d in descs:
        if isinstance(d, dict) and isinstance(d.get("digest"), str):
            try:
                out.append(Digest(d["digest"]))
            except ImageFormatError:
                continue
    return out


def reachable(store: Store, *, remove_dead_leases: bool = False) -> set[Digest]:
    """Every blob kept alive by index.json, verified cache records and live leases (closed over manifests)."""
    roots: list[Digest] = [d.digest for d in store.refs.descriptors()]
    for _key, refs in store.cache.records():
        roots.extend(refs)
    roots.extend(live_lease_digests(store.leases_dir, remove_dead=remove_dead_leases, root=store.root))
    seen: set[Digest] = set()
    stack = list(roots)
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        stack.extend(_children(store, d))
    return seen


def prune(store: Store, *, clear_cache: bool = False, dry_run: bool = False) -> PruneReport:
    """Remove unreferenced blobs and the debris of dead processes (``reap``); with ``clear_cache`` drop every cache
    record first. Every walk and removal goes through directory fds (store.dirs): a store directory swapped for a
    symlink is an error, never a way to delete files elsewhere."""
    # a dry run (and `du`) only reads: the shared lock, which a read-only store grants (minibuild.store.lock)
    with FileLock(store.lock_path, shared=dry_run):
        cache_removed = store.cache.clear() if clear_cache and not dry_run else 0
        reaped = reap(store, dry_run=dry_run)
        keep = reachable(store)
        removed: list[Digest] = []
        freed = reaped.freed_bytes
        kept = 0
        with opened(store.root, "blobs", "sha256") as fd:
            for digest in store.blobs.digests(fd) if fd is not None else ():
                assert fd is not None
                if digest in keep:
                    kept += 1
                    continue
                removed.append(digest)
                freed += entry_size(fd, digest.hex) if dry_run else remove(fd, digest.hex, measure=True)
                if not dry_run:
                    store.diff_ids.forget(digest)
        if not dry_run:
            _forget_indexes(store)  # the kept headers and folded trees of layers that are gone
            from minibuild.store.unpacked import forget_unpacked

            forget_unpacked(store, store.blobs.has)  # and their unpacked folders (caches, like the indexes)
    return PruneReport(removed=tuple(removed), freed_bytes=freed, kept=kept, temp_files_removed=len(reaped.temps),
                       cache_records_removed=cache_removed)


def _forget_indexes(store: Store) -> int:
    """Remove the kept layer headers and folded trees (``minibuild.store.layerindex``, ``minibuild.store.keptree``)
    of blobs no longer stored; how many files were removed. Opened through directory fds, never following symlinks (store.dirs)."""
    from minibuild.store.dirs import names, opened, remove
    from minibuild.store.keptree import tree_layers
    from minibuild.store.layerindex import INDEX_DIR

    removed = 0
    with opened(store.root, store.meta_dir.name, INDEX_DIR) as fd:
        if fd is None:
            return 0
        for name in names(fd):
            stem = name.removesuffix(".json")
            try:
                if name.startswith(".tmp-"):
                    gone = True
                elif stem.startswith("tree-"):
                    layers = tree_layers(name, fd)
                    gone = layers is None or not all(store.blobs.has(d) for d in layers)
                else:
                    algo, _, hexpart = stem.partition("-")
                    gone = not store.blobs.has(Digest(f"{algo}:{hexpart}"))
            except (OSError, ValueError, AttributeError, TypeError):
                gone = True  # unreadable: only a cache, made again when needed
            if gone:
                remove(fd, name)
                removed += 1
    return removed
