"""Prune: delete blobs that no image, cache record or live build lease references; leases pin blobs."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from minibuild.digest import Digest
from minibuild.errors import ImageFormatError, StoreError
from minibuild.oci.model import parse_json
from minibuild.record import record
from minibuild.store.lock import FileLock, is_locked_by_someone, unwritable

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


def live_lease_digests(directory: Path, *, remove_dead: bool) -> set[Digest]:
    """Digests pinned by leases whose owners are alive; dead lease files are removed if asked."""
    out: set[Digest] = set()
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return out
    for name in names:
        path = directory / name
        if not name.endswith(".lease"):
            continue
        if not is_locked_by_someone(path):
            if remove_dead:
                path.unlink(missing_ok=True)
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                out.add(Digest(line.strip()))
            except ImageFormatError:
                continue
    return out


def owner_alive(name: str) -> bool:
    """Whether the process whose pid is embedded in a temp name (``build-<pid>-<hex>``) still runs.

    Conservative: a name without a pid, or a pid we may not signal, counts as alive.
    """
    parts = name.split("-")
    if len(parts) < 3 or not parts[1].isdigit():
        return True
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                continue
    return total


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
    path = store.blobs.path(digest)
    try:
        if path.stat().st_size > _MAX_JSON:
            return []
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return []
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
    """Every blob kept alive by index.json, cache records and live leases (closed over manifests)."""
    roots: list[Digest] = [d.digest for d in store.refs.descriptors()]
    for _key, refs in store.cache.records():
        roots.extend(refs)
    roots.extend(live_lease_digests(store.leases_dir, remove_dead=remove_dead_leases))
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
    """Remove unreferenced blobs (and dead temp files); with ``clear_cache`` drop every cache record first."""
    # a dry run (and `du`) only reads: the shared lock, which a read-only store grants (minibuild.store.lock)
    with FileLock(store.lock_path, shared=dry_run):
        cache_removed = store.cache.clear() if clear_cache and not dry_run else 0
        keep = reachable(store, remove_dead_leases=not dry_run)
        removed: list[Digest] = []
        freed = 0
        kept = 0
        for digest in list(store.blobs):
            if digest in keep:
                kept += 1
                continue
            removed.append(digest)
            freed += store.blobs.size(digest) if dry_run else store.blobs.delete(digest)
        temps = 0
        if not dry_run:
            from minibuild.noop import forget

            forget(str(store.root))  # no-op build memos: removing blobs invalidates them anyway
        for name in sorted(os.listdir(store.tmp_dir)):
            path = store.tmp_dir / name
            if not is_locked_by_someone(path) and name.startswith("blob-"):
                if not dry_run:
                    try:
                        freed += path.stat().st_size
                        path.unlink()
                    except FileNotFoundError:
                        continue
                temps += 1
            elif name.startswith("build-") and path.is_dir() and not owner_alive(name):
                # the scratch roots of a build that was killed (its own cleanup never ran)
                if not dry_run:
                    freed += _tree_size(path)
                    import shutil  # prune only: not on the build path that imports this module

                    shutil.rmtree(path, ignore_errors=True)
                temps += 1
    return PruneReport(removed=tuple(removed), freed_bytes=freed, kept=kept, temp_files_removed=temps,
                       cache_records_removed=cache_removed)
