"""COPY and ADD into a materialised root directory with BuildKit's semantics, plus their source checksums.

What this module does, and where it follows BuildKit rather than Docker's classic builder:

* sources are context paths (leading ``/`` ignored); a context source that climbs out (``../x``) is refused like
  the classic builder does (BuildKit silently strips the ``..``); ``--from`` roots resolve ``..`` at ``/``;
* a top-level source that is a symlink is followed, confined to its root (both builders); symlinks inside copied
  directories are copied as symlinks; a directory source copies its contents;
* wildcards use Go's ``filepath.Match`` per BuildKit; a wildcard matching nothing is not an error (BuildKit; the
  classic builder fails with "no source files were specified" when nothing at all matched);
* several source arguments need a destination ending in ``/`` or an existing directory (the classic builder also
  counts wildcard matches; BuildKit checks neither and overwrites);
* missing destination parents are created 0755 root:root, or with the ``--chown`` owner and the octal ``--chmod``
  mode (BuildKit); files from the context are owned 0:0, files from ``--from`` keep their owner;
* ``--chmod`` applies to every copied file and directory: octal, or symbolic with minibuild.fsperm's
  ``rules="chmod1"`` (GNU chmod(1)'s ``X``, as BuildKit documents it) and umask 0;
* ``--chown`` names resolve in the DESTINATION root; a user alone takes the user's primary group (BuildKit; the
  classic builder looks up a group with the user's name), a numeric user alone gives gid = uid; an unknown name is
  an error (BuildKit's code silently maps it to 0, its documentation says it fails);
* ``--exclude`` patterns are matched below each source as in BuildKit and, as documented (BuildKit issue #5489
  leaves them out), also against the name of each top-level source;
* ``--parents`` keeps the source path below the ``/./`` pivot (or the whole path); ``**`` recurses there;
* ADD extracts local tar archives (plain, gzip, bzip2, xz; recognised by content) into the destination; remote
  URLs and git sources are refused (minibuild is offline).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat as st_mod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from minibuild.fs.confine import filler_of, resolve_components
from minibuild.engine.context import BuildContext, StatCache
from minibuild.fs.ownership import overlay_of
from minibuild.engine.dockerignore import IgnoreMatcher, clean_path, contains_wildcards
from minibuild.fs.userdb import parse_id, read_db
from minibuild.dockerfile.syntax import is_file_name
from minibuild.errors import ContextError, SourceNotFoundError, UnsafePathError
from minibuild.fsperm import ModeSpec, file_type, parse_mode_spec
from minibuild.record import record
from minibuild.store.tarlayer import EntryType, sane_mtime

if TYPE_CHECKING:  # tarfile and the decompressors are imported by ADD of an archive only (start-up)
    import tarfile

# ---------------------------------------------------------------------------------------------- --chown


def resolve_chown(spec: str, dest_root: Path) -> tuple[int, int]:
    """``user[:group]`` to (uid, gid), names looked up in ``dest_root``'s /etc/passwd and /etc/group."""
    user, sep, group = spec.partition(":")
    if not user or (sep and not group):
        raise ContextError(f"invalid --chown value {spec!r}: expected user[:group]")

    def bad(message: str) -> ContextError:
        return ContextError(f"--chown={spec}: {message}")

    uid = parse_id(user, what="user id", error=bad)
    if uid is not None:
        gid = uid
    else:
        for fields in read_db(dest_root, "/etc/passwd", error=bad):
            if len(fields) >= 4 and fields[0] == user:
                ids = parse_id(fields[2], what="user id", error=bad), parse_id(fields[3], what="group id", error=bad)
                if ids[0] is not None and ids[1] is not None:
                    uid, gid = ids[0], ids[1]
                    break
        else:
            raise bad(f"unable to find user {user}: no matching entries in passwd file")
    if sep:
        named = parse_id(group, what="group id", error=bad)
        if named is not None:
            gid = named
        else:
            for fields in read_db(dest_root, "/etc/group", error=bad):
                if len(fields) >= 3 and fields[0] == group:
                    found = parse_id(fields[2], what="group id", error=bad)
                    if found is not None:
                        gid = found
                        break
            else:
                raise bad(f"unable to find group {group}: no matching entries in group file")
    return uid, gid


# ---------------------------------------------------------------------------------------------- --chmod

ChmodSpec = ModeSpec  # the one mode implementation (minibuild.fsperm), applied with chmod(1)'s rules and umask 0


def parse_chmod(spec: str) -> ChmodSpec:
    """Parse ``--chmod``: octal up to 07777, or symbolic (``u+x``, ``go=rX``, ``g=u``); BuildKit's error text."""
    parsed = parse_mode_spec(spec)
    if spec[:1].isdigit():
        if parsed is None:
            raise ContextError(f"invalid chmod parameter: '{spec}'. it should be octal string and between 0 and 07777")
        return parsed
    if parsed is None or "" in spec.split(","):
        raise ContextError(f"invalid chmod parameter: '{spec}': not an octal or symbolic mode")
    return parsed


# ---------------------------------------------------------------------------------------------- sources


@record
class HeredocSource:
    """An inline ``COPY <<NAME`` document: a file called ``name`` (ONE file name) holding ``data`` (mode 0644)."""

    name: str
    data: bytes

    def __post_init__(self) -> None:
        if not is_file_name(self.name):
            raise ContextError(f"heredoc name {self.name!r} must be a single file name (no '/', '.', '..' or NUL)")


@record
class CopyResult:
    """What a COPY/ADD changed under the destination root (relative paths) and the sources it resolved (the
    sources' checksum is ``source_checksum``'s, computed once for the cache key, never again while copying)."""

    changed_paths: tuple[str, ...]
    sources: tuple[str, ...] = ()


@dataclass(slots=True, kw_only=True)
class _Item:
    """One entry to copy: its name in the destination and where its bytes come from."""

    name: str
    rel: str | None = None
    data: bytes | None = None
    include: IgnoreMatcher | None = None
    source: str = ""
    info: os.stat_result | None = field(default=None, repr=False)


def is_remote(source: str) -> bool:
    """A URL or git address (``http(s)://``, ``git@``, ``git://``, ``ssh://``), not a context path."""
    return source.startswith(("http://", "https://", "git@", "git://", "ssh://"))


def _not_found(instruction: str, source: str, *, from_context: bool = True) -> ContextError:
    if not from_context:  # the builder names the stage or image (it knows which)
        return SourceNotFoundError(f"{instruction} failed: {source} not found in the source stage or image",
                                   source=source)
    return ContextError(f"{instruction} failed: file not found in build context or excluded by .dockerignore: {source}")


def _source_path(source: str, *, from_context: bool, instruction: str) -> str:
    cleaned = clean_path(source.lstrip("/") or ".")
    if cleaned == ".." or cleaned.startswith("../"):
        if from_context:
            raise ContextError(f"{instruction} failed: forbidden path outside the build context: {source}")
        cleaned = clean_path("/" + cleaned).lstrip("/") or "."
    return "" if cleaned == "." else cleaned


def _resolve_items(
    tree: BuildContext, sources: Sequence[str], *, parents: bool, from_context: bool, instruction: str
) -> list[_Item]:
    items: list[_Item] = []
    for source in sources:
        if is_remote(source):
            raise ContextError(
                f"{instruction} failed: remote source {source} cannot be fetched: minibuild builds offline"
                + ("" if instruction == "ADD" else " (and COPY never accepts URLs)")
                + "; download it into the build context and copy it from there"
            )
        include: IgnoreMatcher | None = None
        pattern_src = source
        if parents:
            parent, sep, pattern = source.partition("/./")
            if not sep:
                parent, pattern = "/", source
            pattern = clean_path("/" + pattern).lstrip("/")
            if pattern:
                include = IgnoreMatcher((pattern,), origin="--parents")
            pattern_src = parent
            if not contains_wildcards(parent) and not contains_wildcards(pattern):
                required = _source_path(parent.rstrip("/") + "/" + pattern, from_context=from_context, instruction=instruction)
                if tree.lstat(tree.resolve(required)) is None and required:
                    raise _not_found(instruction, source, from_context=from_context)
        path = _source_path(pattern_src, from_context=from_context, instruction=instruction)
        if contains_wildcards(path):
            matches = tree.glob(path)
        else:
            matches = [path]
        for match in matches:
            rel = tree.resolve(match)
            info = tree.lstat(rel) if rel else tree.lstat("")
            if info is None:
                raise _not_found(instruction, match if match != path else source, from_context=from_context)
            items.append(_Item(name=match.rsplit("/", 1)[-1], rel=rel, include=include, source=source, info=info))
    return items


def _source_entries(
    tree: BuildContext, item: _Item, exclude: IgnoreMatcher | None
) -> Iterator[tuple[str, str, os.stat_result, bool]]:
    """(components below the item, tree path, lstat, as_parent) of what the copy writes, parents first."""
    assert item.rel is not None and item.info is not None
    if exclude is not None and item.name and exclude.match(item.name, None)[0]:
        return
    pending: list[list[object]] = []  # [comps, rel, info, emitted] of directories created only for a descendant

    def walk(rel: str, comps: str, inc: tuple[bool, ...] | None, exc: tuple[bool, ...] | None) -> Iterator[tuple[str, str, os.stat_result, bool, bool]]:
        prefix = rel + "/" if rel else ""
        for name in tree.listdir(rel):
            child, ccomps = prefix + name, (comps + "/" + name if comps else name)
            included, excluded = True, False
            cinc, cexc = inc, exc
            if item.include is not None:
                included, cinc = item.include.match(ccomps, inc)
            if exclude is not None:
                hit, cexc = exclude.match(ccomps, exc)
                if hit:
                    included, excluded = False, True
            if not included and item.include is None and not exclude_has_exceptions:
                continue
            info = tree.lstat(child)
            if info is None:
                continue
            is_dir = st_mod.S_ISDIR(info.st_mode)
            if not included and not is_dir:
                continue
            yield ccomps, child, info, included, is_dir
            if is_dir and not (excluded and not exclude_has_exceptions):
                yield from walk(child, ccomps, cinc, cexc)

    exclude_has_exceptions = exclude is not None and exclude.has_exclusions
    yield "", item.rel, item.info, False
    if not st_mod.S_ISDIR(item.info.st_mode):
        return
    for comps, rel, info, included, is_dir in walk(item.rel, "", None, None):
        while pending and not comps.startswith(str(pending[-1][0]) + "/"):
            pending.pop()
        if included:
            for p in pending:
                if not p[3]:
                    p[3] = True
                    yield str(p[0]), str(p[1]), p[2], True  # type: ignore[misc]
            yield comps, rel, info, False
        elif is_dir:
            pending.append([comps, rel, info, False])


@record
class SourceRecord:
    """One entry a COPY/ADD reads: its item (source match), its path below that source, whether it is only a
    parent kept for ``--parents``, and the tree's record of it (``path`` = the root-relative path)."""

    item: int
    comps: str
    as_parent: bool
    record: dict[str, object]
    mtime: int = 0  # seconds (tarlayer.sane_mtime); in a key only when older than SOURCE_DATE_EPOCH


def source_records(
    tree: BuildContext, sources: Sequence[str], *, exclude: Sequence[str] = (), parents: bool = False,
    from_context: bool = True, instruction: str = "COPY",
) -> tuple[list[_Item], list[SourceRecord]]:
    """The one walk over what a COPY/ADD reads, content hashes included (a LayerTree loads the hashes a first pass
    asked for, then the walk runs again): behind both the cache key (``source_checksum``) and the explain record
    (``minibuild.engine.explain.source_files``)."""
    excl = _exclude_matcher(exclude)

    def walk() -> tuple[list[_Item], list[SourceRecord]]:
        items = _resolve_items(tree, sources, parents=parents, from_context=from_context, instruction=instruction)
        out = [SourceRecord(item=n, comps=comps, as_parent=as_parent,
                            record=tree.record(rel, info, owner=not from_context), mtime=sane_mtime(info.st_mtime))
               for n, item in enumerate(items) for comps, rel, info, as_parent in _source_entries(tree, item, excl)]
        return items, out

    result = walk()
    if tree.load_hashes():
        result = walk()
    return result


def _records(items: Sequence[_Item], records: Sequence[SourceRecord], heredocs: Sequence[HeredocSource],
             epoch: int | None = None) -> Iterator[dict[str, object]]:
    by_item: dict[int, list[SourceRecord]] = {}
    for r in records:
        by_item.setdefault(r.item, []).append(r)
    for n, item in enumerate(items):
        yield {"item": n, "name": item.name, "source": item.source}
        for r in by_item.get(n, ()):
            rec = dict(r.record, path=r.comps)
            if r.as_parent:
                rec["parent"] = True
            if epoch is not None and r.mtime < epoch:
                rec["mtime"] = r.mtime  # kept below the epoch in the exported image (docs/file-times.md)
            yield rec
    for doc in heredocs:
        yield {"heredoc": doc.name, "sha256": hashlib.sha256(doc.data).hexdigest()}


def _digest(header: dict[str, object], records: Iterator[dict[str, object]]) -> str:
    h = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    for rec in records:
        h.update(json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return "sha256:" + h.hexdigest()


def _exclude_matcher(exclude: Sequence[str]) -> IgnoreMatcher | None:
    return IgnoreMatcher(tuple(exclude), origin="--exclude") if exclude else None


def source_checksum(
    src_root: Path | BuildContext,
    sources: Sequence[str],
    *,
    ignore: IgnoreMatcher | None = None,
    exclude: Sequence[str] = (),
    parents: bool = False,
    from_context: bool = True,
    heredocs: Sequence[HeredocSource] = (),
    stat_cache: StatCache | None = None,
    instruction: str = "COPY",
    source_date_epoch: int | None = None,
) -> str:
    """Checksum of what a COPY/ADD would read, without copying: the resolved sources (so the wildcard match set
    counts), and per copied entry its path below the source, type, permission bits, link target and content hash;
    owners only for ``--from`` sources (context files are always written 0:0). An mtime only when it is older
    than ``source_date_epoch``: the exported image keeps those (every newer one is the epoch, already in the key),
    so a hit never exports another mtime than a fresh store would (docs/file-times.md).

    ``src_root`` may be a ready tree instead of a directory: a ``minibuild.engine.layertree.LayerTree`` gives the
    checksum of a stage image without extracting it (its content hashes are loaded after a first pass names them).
    """
    tree = src_root if isinstance(src_root, BuildContext) else \
        BuildContext(src_root, ignore if from_context else None, stat_cache=stat_cache)
    header = {"v": 1, "parents": parents, "from_context": from_context, "exclude": list(exclude)}

    items, records = source_records(tree, sources, exclude=exclude, parents=parents, from_context=from_context,
                                    instruction=instruction)
    tree.stat_cache.save()
    return _digest(header, _records(items, records, heredocs, source_date_epoch))


# ---------------------------------------------------------------------------------------------- writing


class _Writer:
    """Creates entries under ``root``. Every host path it touches comes from ``full``, which resolves the entry's
    parents with the one confined resolver (``minibuild.fs.confine``) and never follows the last component:
    however a destination name was formed (argument, heredoc name, ``--parents`` path, archive member), it cannot
    lead outside the root."""

    def __init__(self, root: Path, *, mtime: int | None) -> None:
        self.root = root
        self._base = os.path.realpath(root)
        self.mtime = mtime
        self.changed: set[str] = set()
        self.links: dict[tuple[int, int], str] = {}
        self._parents: dict[str, str] = {}  # parent path -> resolved; dropped whenever a symlink appears or goes
        self.overlay = overlay_of(self._base)  # owners, modes and device nodes (minibuild.fs.ownership)
        self._filler = filler_of(self._base)

    def resolve(self, path: str, *, follow_final: bool = True) -> str:
        """``path`` resolved inside the root as a chroot would, relative to it ("" is the root)."""
        return "/".join(resolve_components(self._base, path, follow_final=follow_final))

    def full(self, rel: str) -> str:
        """The host path of entry ``rel``: its parents resolved inside the root, its last component as named."""
        if not rel:
            return self._base
        head, _, leaf = rel.rpartition("/")
        if leaf in ("", ".", ".."):
            raise UnsafePathError(f"invalid destination name /{rel}")
        parent = self._parents.get(head)
        if parent is None:
            parent = self._parents[head] = self.resolve(head)
        rel = parent + "/" + leaf if parent else leaf
        if self._filler is not None:
            self._filler.ensure(rel)  # a layered root: what the image has there, before it is looked at
        return self._base + "/" + rel

    def lstat(self, rel: str) -> os.stat_result | None:
        try:
            return self.overlay.lstat(self.full(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def symlink(self, target: str, rel: str) -> None:
        os.symlink(target, self.full(rel))
        self.overlay.created(self.full(rel))
        self._parents.clear()

    def mkdir(self, rel: str) -> None:
        """A new directory (0700 until ``finish`` gives it its mode), owned 0:0 until then."""
        os.mkdir(self.full(rel), 0o700)
        self.overlay.created(self.full(rel))

    def chmod(self, rel: str, perm: int) -> None:
        self.overlay.set_mode(self.full(rel), perm)

    def node(self, rel: str, kind: EntryType, perm: int, rdev: int) -> None:
        """A FIFO or device node (a placeholder file when not root: the overlay holds what it is)."""
        self.overlay.make_node(self.full(rel), kind, perm, rdev)

    def remove(self, rel: str) -> None:
        """Delete entry ``rel`` (a directory with its contents), never following it."""
        full = self.full(rel)
        if st_mod.S_ISDIR(os.lstat(full).st_mode):
            _rmtree(full)
        else:
            os.unlink(full)
        self._parents.clear()

    def mkdir_all(self, path: str, mode: int, owner: tuple[int, int]) -> str:
        """MkdirAll inside the root (symlinks on the way resolved inside it); returns the resolved path."""
        rel = self.resolve(path)
        done = ""
        for comp in rel.split("/") if rel else []:
            done = done + "/" + comp if done else comp
            info = self.lstat(done)
            if info is None:
                self.mkdir(done)
                self.overlay.set_owner(self.full(done), *owner)
                self.overlay.set_mode(self.full(done), mode)
                self._utime(done, None)
                self.changed.add(done)
            elif not st_mod.S_ISDIR(info.st_mode):
                raise ContextError(f"cannot create directory /{done}: a file of that name exists")
        return rel

    def _utime(self, rel: str, info: os.stat_result | None) -> None:
        if self.mtime is not None:
            ns = self.mtime * 1_000_000_000
        elif info is not None:
            ns = info.st_mtime_ns
        else:
            return
        os.utime(self.full(rel), ns=(ns, ns), follow_symlinks=False)

    def finish(self, rel: str, perm: int | None, owner: tuple[int, int], info: os.stat_result | None) -> None:
        full = self.full(rel)
        self.overlay.set_owner(full, *owner)
        if perm is not None:
            self.overlay.set_mode(full, perm)
        self._utime(rel, info)
        self.changed.add(rel)

    def prepare_nondir(self, rel: str) -> None:
        info = self.lstat(rel)
        if info is None:
            return
        if st_mod.S_ISDIR(info.st_mode):
            raise ContextError(f"cannot replace directory /{rel} with a file")
        self.remove(rel)

    def write_file(self, rel: str, src: str | Path | None, data: bytes | None, src_info: os.stat_result | None) -> None:
        self.prepare_nondir(rel)
        if src_info is not None and src_info.st_nlink > 1:
            first = self.links.get((src_info.st_dev, src_info.st_ino))
            if first is not None and self.lstat(first) is not None:
                os.link(self.full(first), self.full(rel), follow_symlinks=False)
                return
            self.links[(src_info.st_dev, src_info.st_ino)] = rel
        fd = os.open(self.full(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self.overlay.created(self.full(rel))
        with os.fdopen(fd, "wb") as out:
            if data is not None:
                out.write(data)
            else:
                assert src is not None
                sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
                with os.fdopen(sfd, "rb") as inp:
                    _copy_fd(inp, out)


def _copy_fd(inp: BinaryIO, out: BinaryIO) -> None:
    """Copy file to file in the kernel (sendfile) when it can, else through a 1 MiB buffer."""
    try:
        while os.sendfile(out.fileno(), inp.fileno(), None, 1 << 30):
            pass
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP):
            raise
        _copyfileobj(inp, out)


def _dest_path(dest: str, workdir: str) -> tuple[str, bool]:
    if dest in ("", "."):
        dest = "./"
    dir_syntax = dest.endswith("/") or dest.endswith("/.")
    full = dest if dest.startswith("/") else (workdir.rstrip("/") or "") + "/" + dest
    return clean_path("/" + full).lstrip("/"), dir_syntax


def copy_into(
    dest_root: Path,
    src_root: Path | None,
    sources: Sequence[str],
    dest: str,
    *,
    workdir: str = "/",
    chown: tuple[int, int] | str | None = None,
    chmod: ChmodSpec | str | None = None,
    parents: bool = False,
    exclude: Sequence[str] = (),
    ignore: IgnoreMatcher | None = None,
    from_context: bool = True,
    heredocs: Sequence[HeredocSource] = (),
    unpack: bool = False,
    mtime: int | None = None,
    instruction: str = "COPY",
) -> CopyResult:
    """Run one COPY/ADD: ``sources`` from ``src_root`` (the context, or a stage root with ``from_context=False``)
    and ``heredocs`` into ``dest`` (relative to ``workdir``) under ``dest_root``.

    ``chown`` is (uid, gid) or a ``user[:group]`` string resolved in ``dest_root``; ``chmod`` a ChmodSpec or its
    text; ``unpack`` makes local tar archives extract (ADD); ``mtime`` (seconds) stamps every written entry, else
    source mtimes are kept. Returns the changed paths (relative to ``dest_root``, parents included when created).
    """
    spec = parse_chmod(chmod) if isinstance(chmod, str) else chmod
    owner_override = resolve_chown(chown, dest_root) if isinstance(chown, str) else chown
    tree = BuildContext(src_root if src_root is not None else dest_root, ignore if from_context else None)
    items = (
        _resolve_items(tree, sources, parents=parents, from_context=from_context, instruction=instruction)
        if sources
        else []
    )
    excl = _exclude_matcher(exclude)

    dest_rel, dir_syntax = _dest_path(dest, workdir)
    writer = _Writer(dest_root, mtime=mtime)
    dir_mode = spec.octal if spec is not None and spec.octal is not None else 0o755
    dir_owner = owner_override if owner_override is not None else (0, 0)
    total = len(sources) + len(heredocs)  # arguments, not wildcard matches (BuildKit tests use "ADD dir* /6")
    if total > 1 and not dir_syntax:
        existing = writer.lstat(writer.resolve(dest_rel))
        if existing is None or not st_mod.S_ISDIR(existing.st_mode):
            raise ContextError(
                f"When using {instruction} with more than one source file, the destination must be a directory and end with a /"
            )
    ensure = dest_rel if dir_syntax else (dest_rel.rsplit("/", 1)[0] if "/" in dest_rel else "")
    writer.mkdir_all(ensure, dir_mode, dir_owner)
    dst = writer.resolve(dest_rel)

    def owner_of(info: os.stat_result | None) -> tuple[int, int]:
        if owner_override is not None:
            return owner_override
        if from_context or info is None:
            return (0, 0)
        return (info.st_uid, info.st_gid)

    def perm_of(info: os.stat_result) -> int:
        mode = st_mod.S_IMODE(info.st_mode)
        return spec.apply(mode, is_dir=st_mod.S_ISDIR(info.st_mode), rules="chmod1") if spec is not None else mode

    source = None
    for item in items:
        assert item.rel is not None and item.info is not None
        if item.source != source:
            # hard links are kept within one source argument (its wildcard matches, a directory's tree), never
            # across two: BuildKit copies each argument by itself
            source = item.source
            writer.links.clear()
        src_is_dir = st_mod.S_ISDIR(item.info.st_mode)
        if unpack and st_mod.S_ISREG(item.info.st_mode) and is_archive(tree.root / item.rel):
            writer.changed.update(
                extract_archive_into(dest_root, tree.root / item.rel, "/" + dst, chown=owner_override, mtime=mtime)
            )
            continue
        dinfo = writer.lstat(dst)
        target = dst
        if not src_is_dir and dinfo is not None and st_mod.S_ISDIR(dinfo.st_mode):
            target = dst + "/" + item.name if dst else item.name
        if src_is_dir and dinfo is None:
            writer.mkdir_all(target, dir_mode, dir_owner)
        else:
            writer.mkdir_all(target.rsplit("/", 1)[0] if "/" in target else "", dir_mode, dir_owner)
        _copy_entries(tree, item, excl, writer, target, owner_of, perm_of)

    for doc in heredocs:
        dinfo = writer.lstat(dst)
        target = dst
        if dinfo is not None and st_mod.S_ISDIR(dinfo.st_mode):
            target = dst + "/" + doc.name if dst else doc.name
        writer.mkdir_all(target.rsplit("/", 1)[0] if "/" in target else "", dir_mode, dir_owner)
        writer.write_file(target, None, doc.data, None)
        perm = spec.apply(0o644, is_dir=False, rules="chmod1") if spec is not None else 0o644
        writer.finish(target, perm, owner_override or (0, 0), None)
        if mtime is None:
            os.utime(writer.full(target), ns=(0, 0), follow_symlinks=False)

    return CopyResult(changed_paths=tuple(sorted(writer.changed)), sources=tuple(i.rel or "" for i in items))


def _copy_entries(tree, item, excl, writer: _Writer, target: str, owner_of, perm_of) -> None:  # type: ignore[no-untyped-def]
    root_s = os.fspath(tree.root)
    dirs: list[tuple[str, os.stat_result]] = []  # copied sub-directories: their mtimes are set after their children
    for comps, rel, info, as_parent in _source_entries(tree, item, excl):
        out = (target + "/" + comps if target else comps) if comps else target
        if out == "" and not st_mod.S_ISDIR(info.st_mode):
            raise ContextError("cannot replace the root directory with a file")
        src = root_s + "/" + rel if rel else root_s
        kind = file_type(info.st_mode)
        if kind == "dir":
            existing = writer.lstat(out)
            created = False
            if existing is None:
                writer.mkdir(out)
                created = True
            elif not st_mod.S_ISDIR(existing.st_mode):
                raise ContextError(f"cannot copy to non-directory: /{out}")
            elif comps:  # BuildKit: a merged sub-directory takes the source's mode
                writer.chmod(out, st_mod.S_IMODE(info.st_mode))
                writer.changed.add(out)
            if created or (comps and not as_parent):
                writer.finish(out, perm_of(info), owner_of(info), info)
                if comps:
                    dirs.append((out, info))
            continue
        if kind == "symlink":
            writer.prepare_nondir(out)
            writer.symlink(os.readlink(src), out)
            writer.finish(out, None, owner_of(info), info)
        elif kind == "file":
            writer.write_file(out, src, None, info)
            writer.finish(out, perm_of(info), owner_of(info), info)
        elif kind in ("fifo", "char", "block"):
            writer.prepare_nondir(out)
            writer.node(out, "fifo" if kind == "fifo" else "char" if kind == "char" else "block", 0o600, info.st_rdev)
            writer.finish(out, perm_of(info), owner_of(info), info)
        else:  # a socket becomes an empty regular file, as BuildKit's context transfer does
            writer.write_file(out, None, b"", None)
            writer.finish(out, perm_of(info), owner_of(info), info)
    # a copied sub-directory keeps its source's mtime, as the classic builder does (writing its children changed
    # it); the destination directory itself has the time of the copy
    for out, info in reversed(dirs):
        writer._utime(out, info)


# ---------------------------------------------------------------------------------------------- ADD archives

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))


def _open_decompressed(path: Path) -> BinaryIO:
    """The archive's tar bytes (compression sniffed), bounded by MINIBUILD_MAX_LAYER_BYTES (minibuild.limits)."""
    from minibuild.limits import open_decompressed

    fh = open(path, "rb")
    try:
        return open_decompressed(fh, what=f"ADD failed: archive {path.name}", error=ContextError)
    except BaseException:
        fh.close()
        raise


def _open_tar(raw: BinaryIO, path: Path) -> tarfile.TarFile:
    """The archive's members through the one bounded tar reader (headers capped, extracted bytes counted)."""
    from minibuild.boundedtar import open_tar

    return open_tar(raw, mode="r|", what=f"ADD failed: archive {path.name}", error=ContextError)


def is_archive(path: Path) -> bool:
    """Whether ADD would extract ``path``: a regular file whose (decompressed) content starts with a tar header."""
    import tarfile

    from minibuild.limits import DECOMPRESS_ERRORS

    errors: tuple[type[BaseException], ...] = (tarfile.TarError, *DECOMPRESS_ERRORS)
    try:
        if not st_mod.S_ISREG(os.lstat(path).st_mode):
            return False
        with _open_decompressed(path) as raw:
            with _open_tar(raw, path) as tar:
                return tar.next() is not None
    except ContextError:
        raise
    except errors:
        return False


def extract_archive_into(
    dest_root: Path, archive: Path, dest: str, *, chown: tuple[int, int] | None = None, mtime: int | None = None
) -> tuple[str, ...]:
    """Extract a local tar archive into directory ``dest`` (absolute in ``dest_root``) like ``tar -x``.

    Existing entries are replaced (directories merged); entries may not climb out of ``dest`` and symlinks inside
    it resolve as if ``dest`` were the root (BuildKit extracts in a chroot there). Owners come from the archive
    unless ``chown`` is given. Returns the changed paths relative to ``dest_root``.
    """
    import tarfile

    from minibuild.limits import DECOMPRESS_ERRORS

    writer = _Writer(dest_root, mtime=mtime)
    base = writer.mkdir_all(dest, 0o755, chown or (0, 0))
    errors: tuple[type[BaseException], ...] = (tarfile.TarError, *DECOMPRESS_ERRORS)
    try:
        return _extract(writer, base, archive, chown=chown, mtime=mtime)
    except errors as err:
        detail = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ContextError(f"ADD failed: cannot extract archive {archive.name}: {detail}") from err


def _extract(writer: _Writer, base: str, archive: Path, *, chown: tuple[int, int] | None, mtime: int | None
             ) -> tuple[str, ...]:
    import tarfile

    base_host = writer.full(base)  # the archive resolves as if the destination were its root (BuildKit's chroot)
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    with _open_decompressed(archive) as raw, _open_tar(raw, archive) as tar:
        for member in tar:
            name = clean_path(member.name)
            if name == ".." or name.startswith("../") or name.startswith("/.."):
                raise UnsafePathError(f"ADD failed: archive entry {member.name!r} would leave the destination")
            name = name.lstrip("/")
            if name in (".", ""):
                continue
            parent_rel, _, leaf = name.rpartition("/")
            parent = "/".join(resolve_components(base_host, parent_rel))
            parent_full = base + "/" + parent if (base and parent) else (base or parent)
            writer.mkdir_all(parent_full, 0o755, (0, 0)) if parent_full else None
            out = parent_full + "/" + leaf if parent_full else leaf
            owner = chown if chown is not None else (member.uid, member.gid)
            existing = writer.lstat(out)
            if existing is not None and not (st_mod.S_ISDIR(existing.st_mode) and member.isdir()):
                writer.remove(out)
            perm = member.mode & 0o7777
            if member.isdir():
                if existing is None or not st_mod.S_ISDIR(existing.st_mode):
                    writer.mkdir(out)
                writer.overlay.set_owner(writer.full(out), *owner)
                writer.chmod(out, perm)
                writer.changed.add(out)
                dirs.append((out, member))
                continue
            if member.issym():
                writer.symlink(member.linkname, out)
                perm_opt: int | None = None
            elif member.islnk():
                link = clean_path(member.linkname).lstrip("/")
                if link == ".." or link.startswith("../"):
                    raise UnsafePathError(f"ADD failed: hard link {member.name!r} points outside the destination")
                # resolve the target's parents inside the destination: a symlink on the way must not lead the
                # kernel to a host file (os.link follows every component but the last)
                link_rel = "/".join(resolve_components(base_host, link, follow_final=False))
                link_full = base + "/" + link_rel if (base and link_rel) else (base or link_rel)
                linfo = writer.lstat(link_full)
                if linfo is None or st_mod.S_ISDIR(linfo.st_mode):
                    raise ContextError(
                        f"ADD failed: hard link {member.name!r} -> {member.linkname!r}: target is missing or a directory")
                os.link(writer.full(link_full), writer.full(out), follow_symlinks=False)
                # the link's own header then sets owner, mode and time of the shared inode, as Docker's and
                # BuildKit's untar (moby pkg/archive) do: the last header of the inode wins
                perm_opt = None if st_mod.S_ISLNK(linfo.st_mode) else perm
            elif member.isfile():
                src = tar.extractfile(member)
                assert src is not None
                fd = os.open(writer.full(out), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                writer.overlay.created(writer.full(out))
                with os.fdopen(fd, "wb") as f:
                    _copyfileobj(src, f)
                perm_opt = perm
            elif member.isfifo() or member.ischr() or member.isblk():
                kind: EntryType = "fifo" if member.isfifo() else "char" if member.ischr() else "block"
                writer.node(out, kind, 0o600, os.makedev(member.devmajor, member.devminor))
                perm_opt = perm
            else:
                continue
            writer.overlay.set_owner(writer.full(out), *owner)
            if perm_opt is not None:
                writer.chmod(out, perm_opt)
            ns = (mtime if mtime is not None else sane_mtime(member.mtime)) * 1_000_000_000
            os.utime(writer.full(out), ns=(ns, ns), follow_symlinks=False)
            writer.changed.add(out)
    for out, member in reversed(dirs):
        ns = (mtime if mtime is not None else sane_mtime(member.mtime)) * 1_000_000_000
        os.utime(writer.full(out), ns=(ns, ns), follow_symlinks=False)
    return tuple(sorted(writer.changed))


def _copyfileobj(src: IO[bytes], dst: IO[bytes]) -> None:
    """Copy a stream in 1 MiB chunks (shutil is imported only by the builds that copy: not on a cached path)."""
    while chunk := src.read(1 << 20):
        dst.write(chunk)


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path)
