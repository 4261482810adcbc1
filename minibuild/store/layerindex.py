"""The kept headers of uncompressed layer blobs: each layer's entries and where its files' bytes lie, read once.

A layered root (``minibuild.fs.layered``) and a ``COPY --from`` checksum read a base image's layers in place; on a
20,000-file base, parsing the tar headers is most of that work. The first reader of a layer keeps what it parsed
here, keyed by the blob's digest (a blob never changes), one JSON file per layer, written atomically. A file that
is unreadable, of another version or not self-consistent is ignored (the headers are parsed again) — the store
on disk may be hostile: every path is normalised again on load, as when the tar itself is read. ``prune`` removes
the index of a blob that is gone (``minibuild.store.gc``).
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, cast

from minibuild.digest import Digest
from minibuild.errors import ImageFormatError, MinibuildError, UnsafePathError
from minibuild.store.tarlayer import ENTRY_TYPES, Entry, EntryType, normalize_path

VERSION = 1
INDEX_DIR = "layer-index"


@dataclass(frozen=True, slots=True)
class Member:
    """Where a file member's bytes are in its uncompressed layer blob."""

    offset: int
    size: int
    sparse: bool = False


@dataclass(frozen=True, slots=True)
class LayerIndex:
    """One layer's entries (in blob order) and its file members by path."""

    entries: tuple[Entry, ...]
    members: dict[str, Member]


def parse_index(blobs: "Opener", digest: Digest) -> LayerIndex | None:
    """A layer's headers parsed from its blob when it is an uncompressed tar that can be read in place (ustar
    magic, seekable), else None (a compressed layer is streamed by its readers)."""
    import tarfile

    from minibuild.boundedtar import open_tar
    from minibuild.store.tarread import entry_from_tarinfo

    try:
        fh = blobs.open(digest, verify=False)
    except (OSError, MinibuildError):
        return None
    with fh:
        try:
            head = fh.read(512)
            if len(head) < 512 or head[257:262] != b"ustar" or not fh.seekable():
                return None
            fh.seek(0)
        except OSError:
            return None
        entries: list[Entry] = []
        members: dict[str, Member] = {}
        try:
            with open_tar(fh, mode="r:", what=f"layer {digest.short}") as tf:
                for ti in tf:
                    entry = entry_from_tarinfo(ti)
                    entries.append(entry)
                    if entry.type == "file":
                        members[entry.path] = Member(offset=ti.offset_data, size=ti.size, sparse=ti.issparse())
        except tarfile.TarError as err:
            raise ImageFormatError(f"cannot read layer {digest.short}: {err}") from err
    return LayerIndex(entries=tuple(entries), members=members)


class Opener(Protocol):
    """A blob store's ``open`` (``minibuild.store.blobs.BlobStore``)."""

    def open(self, digest: Digest, *, verify: bool = True) -> BinaryIO: ...


def index_path(directory: Path, digest: Digest) -> Path:
    """The index file of the layer blob ``digest``."""
    return directory / f"{digest.algorithm}-{digest.hex}.json"


def save_index(directory: Path, digest: Digest, entries: Sequence[Entry], members: dict[str, Member]) -> None:
    """Keep a layer's parsed headers (best effort: a store that cannot be written is only slower)."""
    rows = []
    for e in entries:
        m = members.get(e.path) if e.type == "file" else None
        rows.append([e.path, e.type, e.mode, e.uid, e.gid, e.size, e.linkname, e.mtime, e.devmajor, e.devminor,
                     [[n, base64.b64encode(v).decode()] for n, v in e.xattrs],
                     None if m is None else [m.offset, m.size, m.sparse]])
    data = json.dumps({"version": VERSION, "digest": digest.value, "entries": rows}, separators=(",", ":"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
        os.replace(tmp, index_path(directory, digest))
    except OSError:
        return


def _int(v: object) -> int:
    if type(v) is not int or v < 0:
        raise ValueError(v)
    return v


def load_index(directory: Path, digest: Digest) -> LayerIndex | None:
    """The kept headers of ``digest``, or None when there are none that can be trusted to be well formed."""
    try:
        raw = json.loads(index_path(directory, digest).read_bytes())
        if raw.get("version") != VERSION or raw.get("digest") != digest.value:
            return None
        entries: list[Entry] = []
        members: dict[str, Member] = {}
        for row in raw["entries"]:
            path, kind, mode, uid, gid, size, linkname, mtime, major, minor, xattrs, member = row
            if not isinstance(path, str) or kind not in ENTRY_TYPES or not isinstance(linkname, str) \
                    or normalize_path(path) != path or type(mtime) is not int:
                return None
            if kind == "hardlink" and normalize_path(linkname) != linkname:
                return None
            attrs = tuple((str(n), base64.b64decode(v, validate=True)) for n, v in xattrs)
            entry = Entry(path=path, type=kind, mode=_int(mode) & 0o7777, uid=_int(uid), gid=_int(gid),
                          size=_int(size), linkname=linkname, mtime=mtime, xattrs=attrs, devmajor=_int(major),
                          devminor=_int(minor))
            entries.append(entry)
            if kind == "file":
                if member is None:
                    return None
                offset, msize, sparse = member
                if _int(offset) % 512 or _int(msize) != entry.size or type(sparse) is not bool:
                    return None
                members[path] = Member(offset=offset, size=msize, sparse=sparse)
        return LayerIndex(entries=tuple(entries), members=members)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, UnsafePathError):
        return None


# ---------------------------------------------------------------------------------------------- folded chains
TREE_VERSION = 1
_ROW_LEN = 13


def chain_key(digests: Sequence[Digest]) -> str:
    """The key of a chain of layers, bottom first."""
    import hashlib

    return hashlib.sha256("\n".join(d.value for d in digests).encode()).hexdigest()


def tree_path(directory: Path, key: str) -> Path:
    return directory / f"tree-{key}.json"


Row = list[object]  # [rel, type, mode, uid, gid, size, mtime, link, hardlink_to, major, minor, xattrs, content]


def save_tree(directory: Path, digests: Sequence[Digest], rows: Sequence[Row]) -> None:
    """Keep the folded tree of a chain of layers (``rows`` as ``LowerTable`` reads them; best effort)."""
    data = json.dumps({"version": TREE_VERSION, "layers": [d.value for d in digests], "rows": rows},
                      separators=(",", ":"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
        os.replace(tmp, tree_path(directory, chain_key(digests)))
    except OSError:
        return


_KINDS = ENTRY_TYPES - {"hardlink"}  # a kept tree holds a hard link as its own row


def _row_ok(row: object, layers: int) -> bool:
    """Whether one kept row is well formed (run on every row of a base's tree: kept to plain type checks)."""
    if type(row) is not list or len(row) != _ROW_LEN:
        return False
    rel, kind, mode, uid, gid, size, mtime, link, hard, major, minor, xattrs, content = row
    if type(rel) is not str or not rel or type(kind) is not str or kind not in _KINDS:
        return False
    framed = "/" + rel + "/"  # an empty, "." or ".." component, or a NUL: never a path of a root
    if "//" in framed or "/./" in framed or "/../" in framed or "\0" in rel:
        return False
    if type(mode) is not int or type(uid) is not int or type(gid) is not int or type(size) is not int \
            or type(major) is not int or type(minor) is not int or type(mtime) is not int:
        return False
    if mode < 0 or uid < 0 or gid < 0 or size < 0 or major < 0 or minor < 0:
        return False
    if type(link) is not str or not (hard is None or type(hard) is str) or type(xattrs) is not list:
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


def load_tree(directory: Path, digests: Sequence[Digest]) -> list[Row] | None:
    """The kept folded tree of a chain, or None when there is none that is well formed."""
    try:
        raw = json.loads(tree_path(directory, chain_key(digests)).read_bytes())
        if raw.get("version") != TREE_VERSION or raw.get("layers") != [d.value for d in digests]:
            return None
        rows = raw["rows"]
        n = len(digests)
        if not isinstance(rows, list) or not all(_row_ok(r, n) for r in rows):
            return None
        return rows
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


class LowerTable:
    """A folded chain of layers as a layered root's lower layers (``minibuild.fs.layered.LowerTree``): entries
    made on demand from kept rows, file bytes read at their offsets in the uncompressed layer blobs."""

    def __init__(self, rows: Sequence[Row], digests: Sequence[Digest], open_blob: Callable[[Digest], BinaryIO]) -> None:
        self._rows: dict[str, Row] = {}
        self._children: dict[str, list[str]] = {}
        self._groups: dict[str, list[str]] = {}
        self._digests = tuple(digests)
        self._open_blob = open_blob
        for row in rows:
            rel = row[0]
            assert isinstance(rel, str)
            if rel in self._rows:
                continue
            self._rows[rel] = row
            head, _, name = rel.rpartition("/")
            self._children.setdefault(head, []).append(name)
            hard = row[8]
            if isinstance(hard, str):
                self._groups.setdefault(hard, []).append(rel)
        for canon, members in list(self._groups.items()):
            target = self._rows.get(canon)
            group = ([canon] if target is not None and target[8] is None and target[12] == self._rows[members[0]][12]
                     else []) + members
            for m in group:
                self._groups[m] = group

    def __len__(self) -> int:
        return len(self._rows)

    def entry(self, rel: str) -> Entry | None:
        row = self._rows.get(rel)
        if row is None:
            return None
        kind, link = cast(EntryType, row[1]), cast(str, row[7])
        mode, uid, gid, size, mtime, major, minor = (cast(int, row[i]) for i in (2, 3, 4, 5, 6, 9, 10))
        xattrs = cast(list[list[str]], row[11])
        return Entry(path=rel, type=kind, mode=mode & 0o7777, uid=uid, gid=gid, size=size if kind == "file" else 0,
                     linkname=link, mtime=mtime, xattrs=tuple((str(n), base64.b64decode(v)) for n, v in xattrs),
                     devmajor=major, devminor=minor)

    def names(self, rel: str) -> list[str]:
        return self._children.get(rel, [])

    def links(self, rel: str) -> list[str]:
        return self._groups.get(rel, [rel])

    def open(self, rel: str) -> BinaryIO:
        import io

        content = self._rows[rel][12]
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


class MemberReader:
    """``size`` bytes of an open file from its current offset; closing it closes the file."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh, self._left = fh, size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._fh.read(n) if n else b""
        self._left -= len(data)
        if n and not data:
            raise ImageFormatError("a layer blob ended inside a file's content")
        return data

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "MemberReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
