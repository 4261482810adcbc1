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
