"""Check a store end to end (every blob's digest, every reference) and optionally repair what can be repaired.

What is checked, in order (a repair in one step is seen by the next):

1. every file in ``blobs/sha256``: named by 64 hex digits, a regular file, and hashing to its name;
   repair deletes corrupt or stray files (a corrupt blob is never trusted again: loads and builds re-fetch it);
2. ``index.json``: readable, and every entry's manifest (or nested index), config and layers present and
   verified; repair drops entries whose image is incomplete ("refs that point nowhere");
3. cache records: readable, and every blob they keep alive present (manifests closed over their config and
   layers); repair deletes unreadable and dangling records;
4. debris of killed processes: temp files and scratch trees in ``.minibuild/tmp`` and lease files whose owner
   died (``gc.debris``: by flock). Debris is a note, not a problem (it pins nothing and is never read; the next
   build or prune removes it): a plain check never writes, and exits 0 when debris is all it finds; repair
   removes it.

A symlink anywhere in the store's own directories is never followed (store.dirs); a cache record that does not
match its digest is a problem (``bad-cache-record``) and repair deletes it.

Repair holds the store lock exclusively (no blob commit or prune runs meanwhile); a plain check holds it shared
(prune waits, writers go on).
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from minibuild.digest import CHUNK, Digest
from minibuild.errors import ImageFormatError, MinibuildError, StoreError
from minibuild.oci.model import INDEX_TYPES, MANIFEST_TYPES, Descriptor, Index, Manifest
from minibuild.record import record
from minibuild.store import Store
from minibuild.store.dirs import lstat_at, names, opened, remove
from minibuild.store.gc import debris
from minibuild.store.lock import FileLock, atomic_write
from minibuild.oci.reference import entry_name

ProblemKind = Literal["corrupt-blob", "stray-file", "damaged-index", "broken-ref", "bad-cache-record",
                      "dangling-cache-record", "stale-temp", "dead-lease", "bad-layer-index", "stale-index",
                      "bad-unpacked-layer"]
# Whether a kept folded tree's bytes (minibuild.store.keptree) are what folding its layers again gives: supplied by
# the engine, which owns the fold (the store knows only the files)
TreeCheck = Callable[[Store, Sequence[Digest], bytes], bool]
DEBRIS: tuple[ProblemKind, ...] = ("stale-temp", "dead-lease", "stale-index")  # notes: removed by the next build or prune


@record
class Problem:
    """One thing wrong with the store; ``repaired`` tells whether --repair removed it (and how)."""

    kind: ProblemKind
    subject: str
    message: str
    repaired: str | None = None

    @property
    def is_debris(self) -> bool:
        """Leftovers of a killed process: reported, but no reason to fail (the next build or prune reaps them)."""
        return self.kind in DEBRIS

    def __str__(self) -> str:
        text = ("note: " if self.is_debris else "") + f"{self.kind}: {self.subject}: {self.message}"
        return text + (f" [repaired: {self.repaired}]" if self.repaired else "")


@record
class FsckReport:
    """Everything fsck found; ``remaining`` are the problems still there afterwards."""

    problems: tuple[Problem, ...]
    blobs_checked: int
    refs_checked: int
    cache_records_checked: int

    @property
    def remaining(self) -> tuple[Problem, ...]:
        """Problems still there (debris notes are not problems)."""
        return tuple(p for p in self.problems if p.repaired is None and not p.is_debris)

    @property
    def debris(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.is_debris)

    @property
    def ok(self) -> bool:
        return not self.remaining

    def of_kind(self, *kinds: str) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.kind in kinds)


def _verify_file(path: str, digest: Digest) -> str | None:
    """None when the file at ``path`` hashes to ``digest``; else what is wrong."""
    import hashlib

    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return "vanished while checking"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    with os.fdopen(fd, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    actual = "sha256:" + h.hexdigest()
    return None if actual == digest.value else f"content hashes to {actual}"


class _Checker:
    def __init__(self, store: Store, repair: bool) -> None:
        self.store = store
        self.repair = repair
        self.problems: list[Problem] = []
        self.good: set[Digest] = set()  # blobs present and verified
        self.bad: set[Digest] = set()  # blobs found corrupt (deleted when repairing)
        self.blobs_checked = 0
        self.refs_checked = 0
        self.records_checked = 0
        self._closure: dict[Digest, str | None] = {}

    def add(self, kind: ProblemKind, subject: str, message: str, repaired: str | None = None) -> None:
        self.problems.append(Problem(kind=kind, subject=subject, message=message,
                                     repaired=repaired if self.repair else None))

    # ------------------------------------------------------------------ 1. blobs
    def check_blobs(self) -> None:
        with opened(self.store.root, "blobs", "sha256") as fd:
            if fd is None:
                self.add("damaged-index", str(self.store.blobs.dir), "the blobs directory is missing")
                return
            found = [(name, lstat_at(fd, name)) for name in names(fd)]
        for name, st in found:
            if st is None:
                continue
            path = os.path.join(self.store.blobs.dir, name)
            if len(name) != 64 or any(c not in "0123456789abcdef" for c in name) or not stat.S_ISREG(st.st_mode):
                what = "not a regular file" if not stat.S_ISREG(st.st_mode) else "not named by a sha256 digest"
                if stat.S_ISLNK(st.st_mode):
                    what = "a symlink (never followed)"
                self.add("stray-file", f"blobs/sha256/{name}", f"{what}; minibuild never writes such a file",
                         repaired="removed" if self._remove(("blobs", "sha256"), name) else None)
                continue
            digest = Digest("sha256:" + name)
            self.blobs_checked += 1
            wrong = _verify_file(path, digest)
            if wrong == "vanished while checking":
                continue
            if wrong is None:
                self.good.add(digest)
                continue
            self.bad.add(digest)
            self.add("corrupt-blob", digest.value, f"{wrong}; it will not be used",
                     repaired="deleted the blob" if self._remove(("blobs", "sha256"), name) else None)

    def _remove(self, where: tuple[str, ...], name: str) -> bool:
        """With --repair, remove ``name`` from the store directory ``where`` (nothing followed); True if so."""
        if not self.repair:
            return False
        with opened(self.store.root, *where) as fd:
            if fd is not None:
                remove(fd, name)
        return True

    def is_good(self, digest: Digest) -> bool:
        """Present and verified; a blob committed after the scan (by a concurrent writer) is verified now."""
        if digest in self.good:
            return True
        if digest in self.bad:
            return False
        path = str(self.store.blobs.path(digest))
        if not self.store.blobs.has(digest) or _verify_file(path, digest) is not None:
            return False
        self.good.add(digest)
        return True

    # ------------------------------------------------------------------ closure of a root blob
    def missing_under(self, digest: Digest, media_type: str | None = None, depth: int = 0) -> str | None:
        """None when ``digest`` and everything it points to is present and verified; else the first gap."""
        if digest in self._closure:
            return self._closure[digest]
        result = self._missing_under(digest, media_type, depth)
        self._closure[digest] = result
        return result

    def _missing_under(self, digest: Digest, media_type: str | None, depth: int) -> str | None:
        if not self.is_good(digest):
            return f"blob {digest} is missing or corrupt"
        if depth > 8:
            return f"blob {digest}: indexes nested too deeply"
        path = self.store.blobs.path(digest)
        try:
            if os.lstat(path).st_size > 4 << 20:
                return None  # a layer (or other large blob): present and verified is all it needs
            data = self.store.blobs.read_bytes(digest)
        except (FileNotFoundError, StoreError):
            return f"blob {digest} vanished"
        if not data.lstrip()[:1] == b"{":
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            return None if media_type is None else f"{digest} is not JSON"
        if not isinstance(doc, dict):
            return None
        kind = doc.get("mediaType") or media_type
        try:
            if kind in INDEX_TYPES or (kind is None and "manifests" in doc):
                index = Index.from_bytes(data, f"index {digest.short}")
                for child in index.manifests:
                    gap = self.missing_under(child.digest, child.media_type, depth + 1)
                    if gap:
                        return gap
                return None
            if kind in MANIFEST_TYPES or (kind is None and "layers" in doc and "config" in doc):
                manifest = Manifest.from_bytes(data, f"manifest {digest.short}")
                for child in (manifest.config, *manifest.layers):
                    if not self.is_good(child.digest):
                        return f"manifest {digest.short} needs blob {child.digest}, which is missing or corrupt"
                return None
        except ImageFormatError as exc:
            return f"{digest.short} is not a valid image document ({exc})"
        return None

    # ------------------------------------------------------------------ 2. index.json
    def check_refs(self) -> None:
        refs = self.store.refs
        try:
            entries = refs.descriptors()
        except StoreError as exc:
            self.add("damaged-index", "index.json", f"{exc}; fix or remove it by hand (names are lost)")
            return
        bad: list[tuple[Descriptor, str]] = []
        for desc in entries:
            self.refs_checked += 1
            gap = self.missing_under(desc.digest, desc.media_type)
            if gap is None and os.lstat(self.store.blobs.path(desc.digest)).st_size != desc.size:
                gap = f"index.json says {desc.size} bytes but the manifest blob has another size"
            if gap is not None:
                bad.append((desc, gap))
        if not bad:
            return
        removed = self._drop_refs([d for d, _ in bad]) if self.repair else set()
        for desc, gap in bad:
            name = entry_name(desc) or f"(unnamed {desc.digest})"
            self.add("broken-ref", name, f"points at an incomplete image: {gap}; reload or rebuild it",
                     repaired="removed the name from index.json" if (desc.digest, name) in removed else None)

    def _drop_refs(self, descs: Iterable[Descriptor]) -> set[tuple[Digest, str]]:
        doomed = {(d.digest, entry_name(d) or f"(unnamed {d.digest})") for d in descs}
        refs = self.store.refs
        with refs.lock():
            index = refs._read()
            kept = []
            removed: set[tuple[Digest, str]] = set()
            for d in index.manifests:
                key = (d.digest, entry_name(d) or f"(unnamed {d.digest})")
                # re-check under the lock: a concurrent tag may have repaired the entry meanwhile
                if key in doomed and self.missing_under(d.digest, d.media_type) is not None:
                    removed.add(key)
                else:
                    kept.append(d)
            if removed:
                atomic_write(refs.index_path, dataclasses.replace(index, manifests=tuple(kept)).to_bytes(),
                             tmp_dir=self.store.tmp_dir)
        return removed

    # ------------------------------------------------------------------ 3. cache records
    def check_cache(self) -> None:
        cache = self.store.cache
        with opened(self.store.root, ".minibuild", "cache") as fd:
            found = names(fd) if fd is not None else []
        for name in found:
            if not name.endswith(".json"):
                continue
            self.records_checked += 1
            doc, why = cache.read(cache.dir / name)
            if doc is None:
                if why is None:
                    continue  # removed meanwhile
                self.add("bad-cache-record", f"cache record {name}", f"{why}; it is never used",
                         repaired="deleted the record" if self._remove((".minibuild", "cache"), name) else None)
                continue
            gap = None
            for ref in doc["refs"]:
                try:
                    digest = Digest(ref)
                except (ImageFormatError, TypeError):
                    gap = f"invalid blob reference {ref!r}"
                    break
                gap = self.missing_under(digest)
                if gap:
                    break
            if gap is not None:
                self.add("dangling-cache-record", f"cache/{name} (key {doc['key'][:60]!r})",
                         f"{gap}; the step will be rebuilt",
                         repaired="deleted the record" if self._remove((".minibuild", "cache"), name) else None)

    # ------------------------------------------------------------------ 4. debris of killed processes
    def check_unpacked(self) -> None:
        """The unpacked layers (minibuild.store.unpacked): each must be what its blob says, path by path (else
        removed when repairing: unpacked again by the next build that mounts it); one of a blob no longer stored
        is debris the next prune removes."""
        from minibuild.store.unpacked import UNPACKED_DIR, unpacked_problem

        where = (self.store.meta_dir.name, UNPACKED_DIR)
        with opened(self.store.root, *where) as fd:
            if fd is None:
                return
            for name in names(fd):
                subject = "/".join((*where, name))
                st = lstat_at(fd, name)
                try:
                    digest: Digest | None = Digest(f"sha256:{name}")
                except ImageFormatError:
                    digest = None
                if st is None:
                    continue
                if digest is None or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                    problem: str | None = "not a folder minibuild unpacks a layer into"
                elif digest in self.bad:
                    problem = "its layer's blob is corrupt"
                elif not self.store.blobs.has(digest):
                    if self.repair:
                        remove(fd, name)
                    self.add("stale-index", subject, "the unpacked folder of a layer no longer stored; the next "
                             "prune removes it", repaired="removed")
                    continue
                else:
                    try:
                        problem = unpacked_problem(self.store, digest)
                    except (OSError, MinibuildError) as exc:
                        problem = f"cannot be compared with its layer ({exc})"
                if problem is not None:
                    if self.repair:
                        remove(fd, name)
                    self.add("bad-unpacked-layer", subject, problem, repaired="removed")

    def check_indexes(self, tree_check: TreeCheck | None) -> None:
        """The kept layer headers and folded trees: each must say what its blobs say (else removed when
        repairing: they are a cache, made again by the next build that needs them)."""
        from minibuild.store.keptree import SUFFIX, Malformed, TreeFile
        from minibuild.store.layerindex import INDEX_DIR, load_index, parse_index

        where = (self.store.meta_dir.name, INDEX_DIR)
        with opened(self.store.root, *where) as fd:
            if fd is None:
                return
            found = names(fd)
            directory = self.store.meta_dir / INDEX_DIR
            for name in found:
                if name.startswith(".tmp-"):  # a writer killed before its rename (or one writing right now)
                    st = lstat_at(fd, name)
                    if st is not None and st.st_mtime < time.time() - 3600:
                        if self.repair:
                            remove(fd, name)
                        self.add("stale-temp", "/".join((*where, name)), "a layer index half written by a killed "
                                 "process; the next prune removes it", repaired="removed")
                    continue
                stem = name.removesuffix(".json").removesuffix(SUFFIX)
                problem: str | None = None
                stale = False  # a cache entry of blobs prune removed (or was killed removing): debris, not damage
                try:
                    if stem.startswith("tree-") and not name.endswith(SUFFIX):
                        problem, stale = "a folded tree of an earlier minibuild; the next prune removes it", True
                    elif stem.startswith("tree-"):
                        with os.fdopen(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd),
                                       "rb") as fh:
                            data = fh.read()
                        try:
                            read = TreeFile.of_bytes(data)
                            layers = read.layers
                            for _ in read.rows():  # every row well formed
                                pass
                            ok = True
                        except Malformed:
                            ok = False
                        if not ok:
                            problem = "not a well-formed folded tree of its layers"
                        elif any(d in self.bad for d in layers):
                            problem = "a layer it folds is corrupt"
                        elif not all(self.store.blobs.has(d) for d in layers):
                            problem, stale = "a layer it folds is no longer stored; the next prune removes it", True
                        elif tree_check is not None and not tree_check(self.store, layers, data):
                            problem = "differs from the fold of its layers"
                    else:
                        algo, _, hexpart = stem.partition("-")
                        digest = Digest(f"{algo}:{hexpart}")
                        kept = load_index(directory, digest)
                        fresh = parse_index(self.store.blobs, digest) if digest not in self.bad else None
                        if not self.store.blobs.has(digest) and digest not in self.bad:
                            problem, stale = "its layer blob is no longer stored; the next prune removes it", True
                        elif kept is None:
                            problem = "not a well-formed header index"
                        elif fresh is None or fresh != kept:
                            problem = "differs from the headers of its layer blob"
                except (OSError, ValueError, AttributeError, TypeError, MinibuildError) as err:
                    problem = f"unreadable ({err})"
                if problem is not None:
                    if self.repair:
                        remove(fd, name)
                    self.add("stale-index" if stale else "bad-layer-index", "/".join((*where, name)), problem,
                             repaired="removed")

    def check_leftovers(self) -> None:
        for where, lease in (((".minibuild", "tmp"), False), ((".minibuild", "leases"), True)):
            with opened(self.store.root, *where) as fd:
                if fd is None:
                    continue
                for name in names(fd):
                    what = debris(fd, name, lease=lease)
                    if what is None:
                        continue
                    if self.repair:
                        remove(fd, name)
                    kind: ProblemKind = "dead-lease" if lease else "stale-temp"
                    self.add(kind, "/".join((*where, name)), what + "; the next build or prune removes it",
                             repaired="removed")


def fsck(store: Store, *, repair: bool = False, tree_check: TreeCheck | None = None) -> FsckReport:
    """Check ``store``; with ``repair`` remove corrupt blobs, broken refs, dangling cache records, bad layer
    indexes and leftovers. ``tree_check`` verifies a kept folded tree against its layers (the engine's fold)."""
    checker = _Checker(store, repair)
    with FileLock(store.lock_path, shared=not repair):
        checker.check_blobs()
        checker.check_refs()
        checker.check_cache()
        checker.check_indexes(tree_check)
        checker.check_unpacked()
        checker.check_leftovers()
    return FsckReport(problems=tuple(checker.problems), blobs_checked=checker.blobs_checked,
                      refs_checked=checker.refs_checked, cache_records_checked=checker.records_checked)


__all__ = ["Problem", "FsckReport", "fsck"]
