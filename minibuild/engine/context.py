"""The build context: a directory seen through .dockerignore, with COPY wildcards, confined symlinks and checksums."""

from __future__ import annotations

import hashlib
import json
import os
import stat as st_mod
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from minibuild.fs.confine import filler_of, resolve_components, resolve_relative
from minibuild.engine.dockerignore import IgnoreMatcher, clean_path, contains_wildcards, go_match, BadPatternError
from minibuild.fs.ownership import find_overlay
from minibuild.errors import ContextError
from minibuild.fsperm import file_type

MAX_SYMLINKS = 255
_CHUNK = 1 << 20


def resolve_in_root(
    root: Path, path: str, *, follow_last: bool = True, exists: Callable[[str], bool] | None = None
) -> str:
    """Resolve ``path`` inside ``root`` as a chroot would and return it relative to root ("" is the root).

    The one resolver (``minibuild.fs.confine.resolve_components``) with the context's options: ``exists(rel)``
    may hide paths (a component hidden by .dockerignore is a literal missing name, never a symlink to follow, as
    Docker's client sends the context), up to 255 links (Go's limit), and the result is the root-relative string
    COPY's cache records and wildcard matches use. Raises UnsafePathError on symlink loops.
    """
    return resolve_relative(root, path, follow_final=follow_last, exists=exists, max_links=MAX_SYMLINKS)


class StatCache:
    """sha256 of files keyed by (path, dev, inode, size, mtime_ns, ctime_ns), persisted in one JSON file.

    An entry is trusted only when the file's ctime is older than the moment it was hashed minus
    ``racy_margin_ns`` (git's "racy clean" rule: a change in the same clock tick could keep every stat field).
    ``hashed`` counts how many files were actually read.
    """

    VERSION = 1
    MAX_ENTRIES = 200_000  # about 30 MB of JSON; past it, entries of vanished files go first, then the oldest


    def __init__(self, path: Path | None = None, *, racy_margin_ns: int = 1_000_000_000) -> None:
        self.path = path
        self.racy_margin_ns = racy_margin_ns
        self.hashed = 0
        self._dirty: dict[str, list[object]] = {}
        self._entries: dict[str, list[object]] = self._load() if path is not None else {}

    def _load(self) -> dict[str, list[object]]:
        assert self.path is not None
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(doc, dict) or doc.get("version") != self.VERSION or not isinstance(doc.get("entries"), dict):
            return {}
        entries: dict[str, list[object]] = doc["entries"]
        return entries

    def sha256(self, path: str | Path, info: os.stat_result | None = None) -> str:
        """Hex sha256 of the regular file at ``path`` (reads it only when the cache cannot vouch for it)."""
        if info is None:
            info = os.lstat(path)
        key = os.fsdecode(os.path.abspath(path))
        sig = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
        hit = self._entries.get(key)
        if hit is not None and len(hit) == 7 and hit[:5] == sig:
            recorded = hit[5]
            if isinstance(recorded, int) and info.st_ctime_ns < recorded - self.racy_margin_ns:
                return str(hit[6])
        recorded_ns = time.time_ns()
        h = hashlib.sha256()
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        self.hashed += 1
        entry: list[object] = [*sig, recorded_ns, h.hexdigest()]
        self._entries[key] = entry
        self._dirty[key] = entry
        return h.hexdigest()

    def _trimmed(self, entries: dict[str, list[object]]) -> dict[str, list[object]]:
        """Keep the cache bounded: drop entries whose file is gone or changed, then the least recently hashed."""
        kept: dict[str, list[object]] = {}
        for key, entry in entries.items():
            try:
                info = os.lstat(key)
            except OSError:
                continue
            if entry[:5] == [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]:
                kept[key] = entry
        if len(kept) > self.MAX_ENTRIES:
            newest = sorted(kept.items(), key=lambda kv: kv[1][5] if isinstance(kv[1][5], int) else 0)
            kept = dict(newest[len(kept) - self.MAX_ENTRIES:])
        return kept

    def save(self) -> None:
        """Merge new entries into the cache file (atomic rename; concurrent writers may lose entries, never data)."""
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        merged = self._load()
        merged.update(self._dirty)
        if len(merged) > self.MAX_ENTRIES:
            merged = self._trimmed(merged)
        import tempfile  # only a build that hashed something writes the cache

        fd, tmp = tempfile.mkstemp(prefix=".statcache-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": self.VERSION, "entries": merged}, f, separators=(",", ":"))
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self._entries = merged
        self._dirty = {}


class BuildContext:
    """A source tree (the build context, or a stage's root) as COPY sees it.

    Paths are slash-separated and relative to ``root`` ("" is the root). With an ``ignore`` matcher the tree is
    what Docker would send: ignored entries are absent, an ignored directory with a re-included child is present
    holding only its visible children. Symlinks are never followed to outside ``root``.
    """

    def __init__(self, root: Path, ignore: IgnoreMatcher | None = None, *, stat_cache: StatCache | None = None) -> None:
        self.root = Path(root)
        self._root_s = os.fspath(self.root)  # string joins: pathlib's ``/`` costs more than the lstat it feeds
        self.ignore = ignore if ignore else None
        self.stat_cache = stat_cache if stat_cache is not None else StatCache(None)
        self._walkable: dict[str, bool] = {"": True}
        self._visible: dict[str, bool] = {}
        self._dirs: dict[str, bool] = {}
        self._stats: dict[str, os.stat_result] = {}  # lstat results seen by visible(), reused by lstat()
        self._real: str | None = None  # realpath of the root, for the resolver
        # a stage root's owners, modes and device nodes are the ownership overlay's; a build context has none
        self._overlay = find_overlay(self._root_s)
        self._filler = filler_of(self._root_s)  # a layered stage root fills what is looked at (minibuild.fs.layered)

    # ------------------------------------------------------------------------------------------ visibility
    def _lstat_raw(self, rel: str) -> os.stat_result | None:
        if self._filler is not None:
            self._filler.ensure(rel)
        try:
            info = os.lstat(self._root_s + "/" + rel) if rel else os.stat(self._root_s)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._overlay.view(info) if self._overlay is not None else info

    def _real_dir(self, d: str) -> bool:
        """Whether ``d`` and all its ancestors are real directories (not symlinks) under the root."""
        hit = self._dirs.get(d)
        if hit is None:
            parent = d.rsplit("/", 1)[0] if "/" in d else ""
            info = self._lstat_raw(d)
            hit = info is not None and st_mod.S_ISDIR(info.st_mode) and (not parent or self._real_dir(parent))
            self._dirs[d] = hit
        return hit

    def _is_walkable(self, d: str) -> bool:
        """Whether the context walker enters directory ``d``."""
        hit = self._walkable.get(d)
        if hit is None:
            assert self.ignore is not None
            parent = d.rsplit("/", 1)[0] if "/" in d else ""
            hit = self._is_walkable(parent) and (not self.ignore.ignored(d) or self.ignore.must_descend(d))
            self._walkable[d] = hit
        return hit

    def visible(self, rel: str) -> bool:
        """Whether ``rel`` exists in the context as sent (not ignored, or a directory holding visible entries)."""
        rel = clean_path(rel.strip("/")) if rel not in ("", ".") else ""
        if rel in (".", ""):
            return True
        if rel.startswith("../") or rel == "..":
            return False
        hit = self._visible.get(rel)
        if hit is not None:
            return hit
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
        if parent and not self._real_dir(parent):  # never lstat through a symlink (it could lead off the root)
            return False
        info = self._lstat_raw(rel)
        if info is None:
            return False
        self._stats[rel] = info
        if self.ignore is None:
            return True
        if not self._is_walkable(parent):
            result = False
        elif not self.ignore.ignored(rel):
            result = True
        elif st_mod.S_ISDIR(info.st_mode) and self._is_walkable(rel):
            result = any(True for _ in self.listdir(rel))
        else:
            result = False
        self._visible[rel] = result
        return result

    def lstat(self, rel: str) -> os.stat_result | None:
        """lstat of a visible path, else None (the tree is taken not to change while this object is in use)."""
        if not self.visible(rel):
            return None
        info = self._stats.get(rel)
        return info if info is not None else self._lstat_raw(rel)

    def listdir(self, rel: str) -> list[str]:
        """Names of the visible children of directory ``rel``, in Go's byte order."""
        if self._filler is not None:
            self._filler.ensure_children(rel)
        try:
            names = os.listdir(self._root_s + "/" + rel if rel else self._root_s)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names.sort(key=lambda n: os.fsencode(n))
        prefix = rel + "/" if rel else ""
        return [n for n in names if self.visible(prefix + n)]

    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        """Resolve ``path`` in the context, following symlinks confined to the root and hiding ignored entries."""
        if self._real is None:
            self._real = os.path.realpath(self._root_s)
        return "/".join(resolve_components(self._real, path, follow_final=follow_last,
                                           exists=self.visible if self.ignore else None, max_links=MAX_SYMLINKS))

    def walk(self, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
        """Visible entries strictly below directory ``rel`` in pre-order (parents first), never following links."""
        prefix = rel + "/" if rel else ""
        for name in self.listdir(rel):
            child = prefix + name
            info = self._lstat_raw(child)
            if info is None:
                continue
            yield child, info
            if st_mod.S_ISDIR(info.st_mode):
                yield from self.walk(child)

    # ------------------------------------------------------------------------------------------ COPY wildcards
    def glob(self, pattern: str) -> list[str]:
        """Context paths matching a COPY source with BuildKit's rules, in walk order.

        The part before the first component holding ``*``, ``?`` or ``[`` is a literal (symlinks followed inside
        the context); the rest is matched with Go's ``filepath.Match`` against paths below it (``*`` never crosses
        ``/``, so ``**`` acts like ``*`` here; only COPY --parents gives ``**`` its recursive meaning). A matched
        directory is not searched further. A literal pattern returns itself when it exists.
        """
        p = clean_path(pattern.lstrip("/"))
        p = "" if p == "." else p
        parts = p.split("/") if p else []
        idx = next((i for i, c in enumerate(parts) if contains_wildcards(c)), None)
        if idx is None:
            resolved = self.resolve(p)
            return [p] if (resolved == "" or self.lstat(resolved) is not None) else []
        base = self.resolve("/".join(parts[:idx]))
        rest = "/".join(parts[idx:])
        info = self.lstat(base) if base else self._lstat_raw("")
        if info is None or not st_mod.S_ISDIR(info.st_mode):
            return []
        try:
            go_match(rest, "")
        except BadPatternError:
            raise ContextError(f"invalid wildcard pattern: {pattern}") from None
        out: list[str] = []
        self._glob_walk(base, base, rest, out)
        return out

    def _glob_walk(self, base: str, d: str, pattern: str, out: list[str]) -> None:
        prefix = d + "/" if d else ""
        cut = len(base) + 1 if base else 0
        for name in self.listdir(d):
            child = prefix + name
            info = self._lstat_raw(child)
            if info is None:
                continue
            if go_match(pattern, child[cut:]):
                out.append(child)
                continue
            if st_mod.S_ISDIR(info.st_mode):
                self._glob_walk(base, child, pattern, out)

    # ------------------------------------------------------------------------------------------ checksums
    def record(self, rel: str, info: os.stat_result, *, owner: bool = False) -> dict[str, object]:
        """What a cache key knows of one entry: path, type, permission bits, link target, content; not mtime."""
        kind = file_type(info.st_mode)
        rec: dict[str, object] = {"path": rel, "type": kind, "mode": st_mod.S_IMODE(info.st_mode)}
        full = self._root_s + "/" + rel if rel else self._root_s
        if kind == "symlink":
            rec["link"] = os.readlink(full)
        elif kind == "file":
            rec["sha256"] = self.stat_cache.sha256(full, info)
        elif kind in ("char", "block"):
            rec["dev"] = [os.major(info.st_rdev), os.minor(info.st_rdev)]
        if owner:
            rec["uid"], rec["gid"] = info.st_uid, info.st_gid
        return rec

    def load_hashes(self) -> bool:
        """Fetch content hashes that ``record`` could not give yet (a directory hashes on the spot: never)."""
        return False

    def checksum(self, paths: Iterable[str]) -> str:
        """sha256 over the given context paths and everything visible below them (order-independent)."""
        records: dict[str, dict[str, object]] = {}
        for raw in paths:
            rel = clean_path(raw.strip("/"))
            rel = "" if rel == "." else rel
            info = self._lstat_raw("") if rel == "" else self.lstat(rel)
            if info is None:
                raise ContextError(f"file not found in build context or excluded by .dockerignore: {raw}")
            records[rel] = self.record(rel, info)
            if st_mod.S_ISDIR(info.st_mode):
                for child, cinfo in self.walk(rel):
                    records[child] = self.record(child, cinfo)
        h = hashlib.sha256()
        for rel in sorted(records):
            h.update(json.dumps(records[rel], sort_keys=True, separators=(",", ":")).encode() + b"\n")
        self.stat_cache.save()
        return "sha256:" + h.hexdigest()
