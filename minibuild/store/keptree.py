"""The kept folded tree of a chain of layers: one file per chain, read by path without loading it whole.

A layered root (``minibuild.fs.layered``) looks up a few hundred paths of a base that may hold 100,000; loading
the whole fold per build would cost the size of the base. The file holds the rows sorted by (parent, name), so a
path and a directory's children are found by a binary search read with ``pread`` (nothing mapped: a store truncated
under a reader gives an error, never a signal), and a build's memory does not grow with the base::

    b"MBTREE\\x00\\x02"  u32 n  JSON header: {"layers": [...], "count": N, "groups": [[path, ...], ...]}
    u64 × N            each record's offset from the first record, in key order
    records            u32 k, key (parent NUL name, UTF-8 with surrogate escapes), u32 m, JSON of the row's
                       other twelve fields (``Row``)

The store on disk may be hostile: every row is checked when it is read, as when the tar itself is read, and a
file that is not well formed is never trusted (``LowerTable`` folds the layers again and keeps the new fold).
``prune`` removes the tree of a blob that is gone; ``fsck`` compares each with a fresh fold, byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, cast

from minibuild.digest import Digest
from minibuild.errors import ImageFormatError
from minibuild.store.layerindex import MemberReader
from minibuild.store.tarlayer import ENTRY_TYPES, Entry, EntryType

MAGIC = b"MBTREE\x00\x02"
SUFFIX = ".tree"
_ROW_LEN = 13
_MAX_HEADER = 64 * 1024 * 1024

Row = list[object]  # [rel, type, mode, uid, gid, size, mtime, link, hardlink_to, major, minor, xattrs, content]


class Malformed(Exception):
    """A kept tree that is not well formed (never leaves this module's readers: the tree is folded again)."""


def chain_key(digests: Sequence[Digest]) -> str:
    """The key of a chain of layers, bottom first."""
    return hashlib.sha256("\n".join(d.value for d in digests).encode()).hexdigest()


def tree_path(directory: Path, key: str) -> Path:
    return directory / f"tree-{key}{SUFFIX}"


def _key(rel: str) -> bytes:
    head, _, name = rel.rpartition("/")
    return head.encode("utf-8", "surrogateescape") + b"\0" + name.encode("utf-8", "surrogateescape")


def _groups(rows: Sequence[Row]) -> list[list[str]]:
    """The hard-link groups of a fold: each canonical path (when it is still the same file) with its links."""
    by_rel = {cast(str, r[0]): r for r in rows}
    members: dict[str, list[str]] = {}
    for r in rows:
        if isinstance(r[8], str):
            members.setdefault(r[8], []).append(cast(str, r[0]))
    out = []
    for canon, links in members.items():
        target = by_rel.get(canon)
        head = [canon] if target is not None and target[8] is None and target[12] == by_rel[links[0]][12] else []
        out.append(head + links)
    return out


def encode_tree(digests: Sequence[Digest], rows: Sequence[Row]) -> bytes:
    """The kept-tree file of a fold (deterministic: ``fsck`` compares bytes)."""
    keyed = sorted((_key(cast(str, r[0])), r) for r in rows if r[0])
    unique = [kr for i, kr in enumerate(keyed) if i == 0 or keyed[i - 1][0] != kr[0]]
    header = json.dumps({"layers": [d.value for d in digests], "count": len(unique),
                         "groups": _groups([r for _, r in unique])}, separators=(",", ":")).encode()
    records = bytearray()
    offsets = bytearray()
    for key, row in unique:
        payload = json.dumps(row[1:], separators=(",", ":")).encode()
        offsets += struct.pack("<Q", len(records))
        records += struct.pack("<I", len(key)) + key + struct.pack("<I", len(payload)) + payload
    return MAGIC + struct.pack("<I", len(header)) + header + bytes(offsets) + bytes(records)


def save_tree(directory: Path, digests: Sequence[Digest], rows: Sequence[Row]) -> bytes:
    """Keep the fold of a chain (best effort: a store that cannot be written is only slower); its bytes."""
    data = encode_tree(digests, rows)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, tree_path(directory, chain_key(digests)))
    except OSError:
        pass
    return data


def _rel_ok(rel: object) -> bool:
    if type(rel) is not str or not rel:
        return False
    framed = "/" + rel + "/"  # an empty, "." or ".." component, or a NUL: never a path of a root
    return "//" not in framed and "/./" not in framed and "/../" not in framed and "\0" not in rel


_KINDS = ENTRY_TYPES - {"hardlink"}  # a kept tree holds a hard link as its own row


def row_ok(row: object, layers: int) -> bool:
    """Whether one row is well formed (plain type checks, run on every row read)."""
    if type(row) is not list or len(row) != _ROW_LEN:
        return False
    rel, kind, mode, uid, gid, size, mtime, link, hard, major, minor, xattrs, content = row
    if not _rel_ok(rel) or type(kind) is not str or kind not in _KINDS:
        return False
    if type(mode) is not int or type(uid) is not int or type(gid) is not int or type(size) is not int \
            or type(major) is not int or type(minor) is not int or type(mtime) is not int:
        return False
    if mode < 0 or uid < 0 or gid < 0 or size < 0 or major < 0 or minor < 0:
        return False
    if type(link) is not str or not (hard is None or _rel_ok(hard)) or type(xattrs) is not list:
        return False
    if xattrs and not all(type(x) is list and len(x) == 2 and type(x[0]) is str and type(x[1]) is str
                          for x in xattrs):
        return False
    if content is not None:
        if type(content) is not list or len(content) != 4:
            return False
        layer, offset, csize, sparse = content
        if type(layer) is not int or not 0 <= layer < layers or type(offset) is not int or offset < 0 \
                or offset % 512 or csize != size or type(sparse) is not bool:
            return False
    return True


class TreeFile:
    """A kept tree, read by path: from a file (``pread``) or from its bytes; raises ``Malformed``."""

    def __init__(self, read: Callable[[int, int], bytes], size: int) -> None:
        self._read, self._size = read, size
        head = self._get(0, 12)
        if head[:8] != MAGIC:
            raise Malformed("not a kept tree")
        (n,) = struct.unpack("<I", head[8:])
        if n > _MAX_HEADER:
            raise Malformed("header too large")
        try:
            header = json.loads(self._get(12, n))
            layers, count, groups = header["layers"], header["count"], header["groups"]
            self.layers = [Digest(v) for v in layers]
        except (ValueError, TypeError, KeyError) as err:
            raise Malformed(f"bad header: {err}") from err
        if type(count) is not int or count < 0 or type(groups) is not list:
            raise Malformed("bad header")
        self.count = count
        self._offsets = 12 + n
        self._records = self._offsets + 8 * count
        if self._records > size:
            raise Malformed("truncated")
        self.groups: dict[str, list[str]] = {}
        for g in groups:
            if type(g) is not list or not g or not all(_rel_ok(p) for p in g):
                raise Malformed("bad hard-link group")
            for p in g:
                self.groups[p] = g

    @classmethod
    def of_file(cls, path: Path | str, *, dir_fd: int | None = None) -> "TreeFile":
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        fh = os.fdopen(fd, "rb")  # kept open by the reader (closed when the table goes)
        size = os.fstat(fd).st_size
        tree = cls(lambda off, n: os.pread(fh.fileno(), n, off), size)
        tree._fh = fh
        return tree

    @classmethod
    def of_bytes(cls, data: bytes) -> "TreeFile":
        return cls(lambda off, n: data[off:off + n], len(data))

    _fh: BinaryIO | None = None

    def _get(self, off: int, n: int) -> bytes:
        if off < 0 or off + n > self._size:
            raise Malformed("truncated")
        data = self._read(off, n)
        if len(data) != n:
            raise Malformed("truncated")
        return data

    def _record(self, i: int) -> tuple[bytes, int]:
        """Record ``i``'s key and the offset of its payload's length."""
        (off,) = struct.unpack("<Q", self._get(self._offsets + 8 * i, 8))
        at = self._records + off
        (k,) = struct.unpack("<I", self._get(at, 4))
        return self._get(at + 4, k), at + 4 + k

    def _row(self, key: bytes, at: int) -> Row:
        (m,) = struct.unpack("<I", self._get(at, 4))
        try:
            head, _, name = key.partition(b"\0")
            rel = name.decode("utf-8", "surrogateescape")
            if head:
                rel = head.decode("utf-8", "surrogateescape") + "/" + rel
            row = [rel, *json.loads(self._get(at + 4, m))]
        except (ValueError, TypeError) as err:
            raise Malformed(f"bad row: {err}") from err
        if not row_ok(row, len(self.layers)):
            raise Malformed(f"bad row for {rel!r}")
        return row

    def _lower_bound(self, key: bytes) -> int:
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) // 2
            if self._record(mid)[0] < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def row(self, rel: str) -> Row | None:
        key = _key(rel)
        i = self._lower_bound(key)
        if i >= self.count:
            return None
        found, at = self._record(i)
        return self._row(found, at) if found == key else None

    def names(self, rel: str) -> list[str]:
        prefix = rel.encode("utf-8", "surrogateescape") + b"\0"
        out = []
        i = self._lower_bound(prefix)
        while i < self.count:
            key, _ = self._record(i)
            if not key.startswith(prefix):
                break
            name = key[len(prefix):]
            if not name or b"\0" in name or b"/" in name:
                raise Malformed("bad name")
            out.append(name.decode("utf-8", "surrogateescape"))
            i += 1
        return out

    def rows(self) -> Iterator[Row]:
        for i in range(self.count):
            yield self._row(*self._record(i))


def open_tree(directory: Path, digests: Sequence[Digest]) -> TreeFile | None:
    """The kept tree of a chain, None when there is none (or its header is not this chain's or not well formed)."""
    try:
        tree = TreeFile.of_file(tree_path(directory, chain_key(digests)))
    except (OSError, Malformed):
        return None
    return tree if tree.layers == list(digests) else None


def tree_layers(name: str, dir_fd: int) -> list[Digest] | None:
    """The layers a kept-tree file says it folds (``prune``: only its header is read), None when it is not one."""
    if not name.endswith(SUFFIX):
        return None  # (a tree of an earlier version of minibuild)
    try:
        return TreeFile.of_file(name, dir_fd=dir_fd).layers
    except (OSError, Malformed):
        return None


class LowerTable:
    """A kept tree as a layered root's lower layers (``minibuild.fs.layered.LowerTree``): entries read by path,
    file bytes read at their offsets in the uncompressed layer blobs. A row found not well formed makes it fold
    the layers again (``refold``: the fold's bytes, kept anew) and read that instead."""

    def __init__(self, tree: TreeFile, open_blob: Callable[[Digest], BinaryIO],
                 refold: Callable[[], bytes] | None = None) -> None:
        self._tree = tree
        self._digests = tuple(tree.layers)
        self._open_blob = open_blob
        self._refold = refold

    def _ask(self, what: Callable[[TreeFile], object]) -> object:
        try:
            return what(self._tree)
        except Malformed:
            if self._refold is None:
                raise ImageFormatError("a kept folded tree in the store is damaged (minibuild fsck --repair)")
            self._tree, self._refold = TreeFile.of_bytes(self._refold()), None
            return what(self._tree)

    def __len__(self) -> int:
        return self._tree.count

    def _row(self, rel: str) -> Row | None:
        return cast("Row | None", self._ask(lambda t: t.row(rel)))

    def entry(self, rel: str) -> Entry | None:
        row = self._row(rel)
        if row is None:
            return None
        kind, link = cast(EntryType, row[1]), cast(str, row[7])
        mode, uid, gid, size, mtime, major, minor = (cast(int, row[i]) for i in (2, 3, 4, 5, 6, 9, 10))
        xattrs = cast(list[list[str]], row[11])
        try:
            attrs = tuple((str(n), base64.b64decode(v, validate=True)) for n, v in xattrs)
        except ValueError as err:
            raise ImageFormatError(f"a kept folded tree in the store is damaged at {rel!r}") from err
        return Entry(path=rel, type=kind, mode=mode & 0o7777, uid=uid, gid=gid, size=size if kind == "file" else 0,
                     linkname=link, mtime=mtime, xattrs=attrs, devmajor=major, devminor=minor)

    def names(self, rel: str) -> list[str]:
        return cast(list[str], self._ask(lambda t: t.names(rel)))

    def links(self, rel: str) -> list[str]:
        return self._tree.groups.get(rel, [rel])

    def open(self, rel: str) -> BinaryIO:
        row = self._row(rel)
        content = row[12] if row is not None else None
        if content is None:
            return io.BytesIO(b"")
        layer, offset, size, sparse = cast(tuple[int, int, int, bool], tuple(content))  # type: ignore[arg-type]
        digest = self._digests[layer]
        fh = self._open_blob(digest)
        if sparse:
            from minibuild.boundedtar import open_tar

            with fh, open_tar(fh, mode="r:", what=f"layer {digest.short}") as tf:
                for ti in tf:
                    if ti.offset_data == offset and ti.isfile():
                        stream = tf.extractfile(ti)
                        if stream is not None:
                            return io.BytesIO(stream.read())
            raise ImageFormatError(f"layer {digest.short}: a sparse member vanished while reading it")
        fh.seek(offset)
        return cast(BinaryIO, MemberReader(fh, size))
