"""Deterministic layer tars: the Entry record and a streaming writer that hashes diff_id and digest in one pass.

Byte rules (image-format.md §3.2, §6.1-6.2), all enforced here whatever the caller passes:

* entries sorted by path components (bytes), per directory ``.wh..wh..opq`` first, then ``.wh.*``, then the rest;
  every parent directory precedes its children (missing parents are inserted as 0755 0:0 directories);
* duplicate paths: the last entry given wins; a path and its own whiteout in one layer is an error;
* headers are USTAR (GNU-tar compatible field layout: octal numbers NUL-terminated, ``devmajor``/``devminor``
  ``0000000``, ``prefix`` split for names up to 255 ASCII bytes), uname/gname empty, uid/gid numbers as given,
  mode ``& 0o7777``; a PAX extended header (named ``././@PaxHeader``, sorted records) only for what USTAR cannot
  hold: non-ASCII or too-long names/link names, ids >= 8**7, sizes >= 8 GiB, and xattrs (``SCHILY.xattr.*``);
* mtime is ``max(0, min(mtime, SOURCE_DATE_EPOCH))`` and SOURCE_DATE_EPOCH defaults to 0, so without it every
  mtime is 0; with ``clamp_mtimes=False`` (the store's own layers, docs/file-times.md) mtimes are kept, made sane
  by ``sane_mtime`` (whole seconds in ``0..MAX_MTIME``);
* hardlinks: the first path of a link group in layer order carries the data, the others link to it; a hardlink to
  a path outside the layer is an error (engines cannot extract it, §7.4);
* the archive ends with exactly 1024 zero bytes (no 10240-byte record padding);
* gzip: header ``1f8b 0800 00000000 XFL ff`` (mtime 0, no file name, OS 255), raw deflate at a fixed level,
  CRC32/ISIZE trailer.  Compressed bytes are reproducible only with the same zlib build; diff_id never depends on it.

Files are streamed from ``source_path`` in 1 MiB chunks, never loaded whole.

Default compression: ``"none"`` (byte-identical across hosts, what ``docker save`` >= 25 writes, and the fastest
by far).  When gzip is asked for, the default level is ``DEFAULT_GZIP_LEVEL`` = 6; measured with
``bench/layer_throughput.py`` on a 200 MB / 5,000-file mixed text+binary tree (2 shared cores, Python 3.11,
zlib 1.2.13): uncompressed 130.9 MB/s (2.08x GNU ``tar -c | sha256sum``), gzip -6 5.6 MB/s at 53.8% of the tar
size; see the comment at ``DEFAULT_GZIP_LEVEL`` for all levels.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterable
from dataclasses import field, replace
from typing import BinaryIO, Literal, Protocol

from minibuild.digest import Digest
from minibuild.errors import BuildError, ImageFormatError, UnsafePathError
from minibuild.record import record

EntryType = Literal["file", "dir", "symlink", "hardlink", "char", "block", "fifo"]
ENTRY_TYPES: frozenset[str] = frozenset({"file", "dir", "symlink", "hardlink", "char", "block", "fifo"})

WHITEOUT_PREFIX = ".wh."
OPAQUE_NAME = ".wh..wh..opq"
OVERLAY_OPAQUE = "trusted.overlay.opaque"  # overlayfs's mark of an opaque directory in a lower layer
OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")  # what overlayfs reads: never a layer's to set

MEDIA_TYPE_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# Measured by bench/layer_throughput.py in one run (200.9 MB, 5,000 files, 60% word-salad text / 40% random bytes;
# 2 cores shared with other jobs, so absolute numbers are pessimistic, ratios are what matter):
#   GNU tar -c | sha256sum   3.19 s   62.9 MB/s
#   none  (tar + sha256)     1.53 s  130.9 MB/s  205.1 MB  (2.08x GNU tar's speed)
#   gzip -1                 17.39 s   11.6 MB/s  119.8 MB  (58.4% of tar)
#   gzip -6                 35.88 s    5.6 MB/s  110.4 MB  (53.8%)
#   gzip -9                 49.51 s    4.1 MB/s  110.1 MB  (53.7%)
# Level 9 costs 38% more time than 6 for 0.3% less; level 1 is 2.1x faster than 6 for 8.5% more bytes.  Gzip is
# opt-in (for smaller pushes/archives), so the default level favours size at zlib's own default, 6, which is also
# what gzip(1), Docker and containerd use.  Pass level=1 when build time matters more than size.
DEFAULT_GZIP_LEVEL = 6
DEFAULT_COMPRESSION: Literal["none", "gzip"] = "none"

CHUNK = 1 << 20
BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
EMPTY_LAYER_DIFF_ID = Digest("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef")

MAX_MTIME = 8**11 - 1  # the largest mtime a USTAR header holds (2242-03-16): no PAX mtime record is ever needed

_TYPEFLAG: dict[str, bytes] = {
    "file": b"0", "hardlink": b"1", "symlink": b"2", "char": b"3", "block": b"4", "dir": b"5", "fifo": b"6",
}


@record
class Entry:
    """One member of a layer: metadata plus, for files, where the content comes from.

    ``path`` is relative POSIX ("usr/bin/x"); ``linkname`` is the symlink target as-is, or for hardlinks the
    layer path of the first link.  File content is ``data`` when given, else streamed from ``source_path`` (which
    must hold exactly ``size`` bytes when the layer is written).  ``xattrs`` are (name, value) pairs.
    """

    path: str
    type: EntryType
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    linkname: str = ""
    mtime: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()
    devmajor: int = 0
    devminor: int = 0
    source_path: str | None = field(default=None, compare=False)
    data: bytes | None = None

    @property
    def content_size(self) -> int:
        """Bytes of content this entry carries in the tar (0 except for files)."""
        if self.type != "file":
            return 0
        return len(self.data) if self.data is not None else self.size


@record
class LayerInfo:
    """What writing a layer produced: diff_id (uncompressed tar) and digest/size of the stored bytes."""

    diff_id: Digest
    digest: Digest
    size: int
    uncompressed_size: int
    media_type: str
    compression: Literal["none", "gzip"]


def normalize_path(path: str) -> str:
    """Return ``path`` as a layer path: relative, no ``.``/empty components; "" is the root.

    A leading "/" or "./" is dropped (absolute names are made relative); a ".." component raises UnsafePathError.
    """
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafePathError(f"path {path!r} contains '..'")
        parts.append(part)
    return "/".join(parts)


def whiteout(path: str) -> Entry:
    """The whiteout entry deleting ``path`` (from lower layers): an empty file ``<dir>/.wh.<name>``."""
    norm = normalize_path(path)
    if not norm:
        raise UnsafePathError("cannot white out the root directory")
    head, _, name = norm.rpartition("/")
    return Entry(path=(head + "/" if head else "") + WHITEOUT_PREFIX + name, type="file", mode=0o644, data=b"")


def opaque(dirpath: str) -> Entry:
    """The opaque marker hiding every lower-layer child of ``dirpath``: ``<dir>/.wh..wh..opq``."""
    norm = normalize_path(dirpath)
    return Entry(path=(norm + "/" if norm else "") + OPAQUE_NAME, type="file", mode=0o644, data=b"")


def sort_key(path: str) -> tuple[tuple[int, bytes], ...]:
    """Layer order: by components (bytes), parents first, ``.wh..wh..opq`` then ``.wh.*`` first in a directory."""
    key = []
    for part in path.split("/"):
        rank = 0 if part == OPAQUE_NAME else 1 if part.startswith(WHITEOUT_PREFIX) else 2
        key.append((rank, part.encode("utf-8", "surrogateescape")))
    return tuple(key)


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def sane_mtime(value: float) -> int:
    """An mtime from anywhere (a stat, a tar header, PAX text) as whole seconds in ``0..MAX_MTIME``: fractions are
    dropped, negative or NaN is 0, too large (or infinite) is ``MAX_MTIME``."""
    if value != value or value <= 0:
        return 0
    if value >= MAX_MTIME:
        return MAX_MTIME
    return int(value)


def clamp_mtime(value: float, source_date_epoch: int) -> int:
    """BuildKit's rewrite-timestamp rule for one mtime: ``min(mtime, SOURCE_DATE_EPOCH)``, made sane."""
    return min(sane_mtime(value), sane_mtime(source_date_epoch))


def prepare_entries(entries: Iterable[Entry], *, source_date_epoch: int | None = None,
                    clamp_mtimes: bool = True) -> list[Entry]:
    """Normalise, deduplicate, complete (parents) and order ``entries`` exactly as ``write_layer`` writes them."""
    sde = 0 if source_date_epoch is None else int(source_date_epoch)
    parent_mtime = sane_mtime(sde) if clamp_mtimes else 0
    by_path: dict[str, Entry] = {}
    for e in entries:
        if e.type not in ENTRY_TYPES:
            raise ImageFormatError(f"layer entry {e.path!r}: unknown type {e.type!r}")
        path = normalize_path(e.path)
        if not path:
            continue  # the root directory is never written (engine-defined, §7.18)
        linkname = e.linkname
        if e.type == "hardlink":
            linkname = normalize_path(linkname)
        elif e.type != "symlink":
            linkname = ""
        is_dev = e.type in ("char", "block")
        by_path[path] = replace(
            e,
            path=path,
            linkname=linkname,
            mode=e.mode & 0o7777,
            mtime=clamp_mtime(e.mtime, sde) if clamp_mtimes else sane_mtime(e.mtime),
            size=e.content_size,
            xattrs=tuple(sorted(e.xattrs)),
            devmajor=e.devmajor if is_dev else 0,
            devminor=e.devminor if is_dev else 0,
        )
    for path in list(by_path):
        name = path.rpartition("/")[2]
        if name.startswith(WHITEOUT_PREFIX):
            e = by_path[path]
            if e.type != "file" or e.content_size:
                raise ImageFormatError(f"layer entry {path!r}: whiteout names must be empty regular files")
            if name != OPAQUE_NAME:
                target = path[: len(path) - len(name)] + name[len(WHITEOUT_PREFIX):]
                if target in by_path:
                    raise ImageFormatError(f"layer has both {target!r} and its whiteout {path!r}")
        for parent in _parents(path):
            p = by_path.get(parent)
            if p is None:
                by_path[parent] = Entry(path=parent, type="dir", mode=0o755, mtime=parent_mtime)
            elif p.type != "dir":
                raise ImageFormatError(f"layer entry {path!r} is inside {parent!r}, which is not a directory")
    ordered = sorted(by_path.values(), key=lambda e: sort_key(e.path))
    return _fix_hardlinks(ordered)


def _fix_hardlinks(ordered: list[Entry]) -> list[Entry]:
    """Make the first path of every hardlink group (in layer order) carry the data; others link to it."""
    index = {e.path: i for i, e in enumerate(ordered)}
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(ordered):
        if e.type != "hardlink":
            continue
        seen = {e.path}
        target = e.linkname
        while target in index and ordered[index[target]].type == "hardlink":
            if target in seen:
                raise ImageFormatError(f"hardlink loop at {e.path!r}")
            seen.add(target)
            target = ordered[index[target]].linkname
        if target not in index:
            raise ImageFormatError(
                f"hardlink {e.path!r} -> {e.linkname!r}: the target is not in this layer "
                "(engines cannot extract cross-layer hardlinks; put the target in the same layer)"
            )
        if ordered[index[target]].type == "dir":
            raise ImageFormatError(f"hardlink {e.path!r} points to directory {target!r}")
        groups.setdefault(target, []).append(i)
    out = list(ordered)
    for target, links in groups.items():
        t = index[target]
        members = sorted([t, *links])
        first = members[0]
        carrier = replace(ordered[t], path=ordered[first].path)
        out[first] = carrier
        for m in members[1:]:
            out[m] = replace(
                carrier, path=ordered[m].path, type="hardlink", linkname=carrier.path, size=0, data=None,
                source_path=None,
            )
    return out


# ---------------------------------------------------------------------------------------------------------------
# header encoding


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _fits(value: int, width: int) -> bool:
    return 0 <= value < 1 << (3 * (width - 1))


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(b"%d" % n) + len(body) != n:
        n = len(b"%d" % n) + len(body)
    return b"%d" % n + body


def _split_ustar_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for an ASCII name that fits USTAR, else None (GNU tar's and Go's split: last "/" in 156)."""
    if len(name) <= 100:
        return b"", name
    length = len(name)
    if length > 156:
        length = 156
    elif name[length - 1 : length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    if i <= 0 or len(name) - i - 1 > 100 or len(name) - i - 1 == 0 or i > 155:
        return None
    return name[:i], name[i + 1 :]


def _ascii_clip(raw: bytes, width: int) -> bytes:
    return bytes(b if b < 0x80 else 0x3F for b in raw)[:width]


def _header(
    *, name: bytes, prefix: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typeflag: bytes,
    linkname: bytes, devmajor: int, devminor: int,
) -> bytes:
    parts = [
        name.ljust(100, b"\0"),
        _octal(mode, 8),
        _octal(uid, 8),
        _octal(gid, 8),
        _octal(size, 12),
        _octal(mtime, 12),
        b" " * 8,
        typeflag,
        linkname.ljust(100, b"\0"),
        b"ustar\x0000",
        b"\0" * 32,  # uname
        b"\0" * 32,  # gname
        _octal(devmajor, 8),
        _octal(devminor, 8),
        prefix.ljust(155, b"\0"),
        b"\0" * 12,
    ]
    buf = bytearray(b"".join(parts))
    assert len(buf) == BLOCK
    buf[148:156] = b"%06o\0 " % sum(buf)
    return bytes(buf)


def encode_header(e: Entry) -> bytes:
    """The header block(s) of a prepared entry: an optional PAX extended header, then the USTAR header."""
    raw_name = e.path.encode("utf-8", "surrogateescape") + (b"/" if e.type == "dir" else b"")
    raw_link = e.linkname.encode("utf-8", "surrogateescape")
    pax: dict[bytes, bytes] = {}
    prefix, name = b"", raw_name
    split = _split_ustar_name(raw_name) if raw_name.isascii() else None
    if split is None:
        pax[b"path"] = raw_name
        name = _ascii_clip(raw_name, 100)
    else:
        prefix, name = split
    link = raw_link
    if not raw_link.isascii() or len(raw_link) > 100:
        pax[b"linkpath"] = raw_link
        link = _ascii_clip(raw_link, 100)
    nums = {"uid": (e.uid, 8), "gid": (e.gid, 8), "size": (e.size, 12), "mtime": (e.mtime, 12)}
    vals: dict[str, int] = {}
    for key, (value, width) in nums.items():
        if value < 0:
            raise ImageFormatError(f"layer entry {e.path!r}: negative {key}")
        if _fits(value, width):
            vals[key] = value
        else:
            pax[key.encode()] = b"%d" % value
            vals[key] = 0
    for xname, xvalue in e.xattrs:
        pax[b"SCHILY.xattr." + xname.encode("utf-8", "surrogateescape")] = xvalue
    head = b""
    if pax:
        records = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
        head = _header(
            name=b"././@PaxHeader", prefix=b"", mode=0o644, uid=0, gid=0, size=len(records), mtime=0,
            typeflag=b"x", linkname=b"", devmajor=0, devminor=0,
        ) + records + b"\0" * (-len(records) % BLOCK)
    return head + _header(
        name=name, prefix=prefix, mode=e.mode, uid=vals["uid"], gid=vals["gid"], size=vals["size"],
        mtime=vals["mtime"], typeflag=_TYPEFLAG[e.type], linkname=link, devmajor=e.devmajor, devminor=e.devminor,
    )


# ---------------------------------------------------------------------------------------------------------------
# streaming output


class LayerOut(Protocol):
    """Where ``write_layer`` puts the stored bytes: anything with ``write(bytes)`` (a file, a BlobWriter)."""

    def write(self, data: bytes, /) -> object: ...


class _Sink:
    """Hashes the tar stream (diff_id), optionally gzips it, hashes and writes what is stored (digest)."""

    def __init__(self, out: LayerOut, compression: str, level: int) -> None:
        self._out = out
        self._tar_hash = hashlib.sha256()
        self._blob_hash = hashlib.sha256()
        self.tar_size = 0
        self.blob_size = 0
        self._deflate = None
        self._crc = 0
        if compression == "gzip":
            xfl = 2 if level == 9 else 4 if level == 1 else 0
            self._emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl]) + b"\xff")
            self._deflate = zlib.compressobj(level, zlib.DEFLATED, -15, 9)

    def _emit(self, data: bytes) -> None:
        if data:
            self._blob_hash.update(data)
            self.blob_size += len(data)
            self._out.write(data)

    def write(self, data: bytes | memoryview) -> None:
        self._tar_hash.update(data)
        self.tar_size += len(data)
        if self._deflate is None:
            self._emit(bytes(data) if isinstance(data, memoryview) else data)
        else:
            self._crc = zlib.crc32(data, self._crc)
            self._emit(self._deflate.compress(data))

    def close(self) -> tuple[Digest, Digest]:
        if self._deflate is not None:
            self._emit(self._deflate.flush())
            self._emit(self._crc.to_bytes(4, "little") + (self.tar_size & 0xFFFFFFFF).to_bytes(4, "little"))
        return Digest("sha256:" + self._tar_hash.hexdigest()), Digest("sha256:" + self._blob_hash.hexdigest())


def _copy_file(e: Entry, sink: _Sink) -> None:
    assert e.source_path is not None
    try:
        fd = os.open(e.source_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise BuildError(f"cannot read {e.source_path} for layer entry {e.path!r}: {err.strerror}") from err
    remaining = e.size
    buf = bytearray(min(CHUNK, max(remaining, 1)))
    view = memoryview(buf)
    try:
        with os.fdopen(fd, "rb", buffering=0) as f:
            while remaining > 0:
                n = f.readinto(view[: min(remaining, len(buf))])
                if not n:
                    break
                sink.write(view[:n])
                remaining -= n
            extra = f.read(1)
    finally:
        view.release()
    if remaining or extra:
        raise BuildError(f"{e.source_path} changed size while layer entry {e.path!r} was written")


def write_layer(
    entries: Iterable[Entry],
    out: LayerOut,
    *,
    compression: Literal["none", "gzip"] = DEFAULT_COMPRESSION,
    level: int = DEFAULT_GZIP_LEVEL,
    source_date_epoch: int | None = None,
    clamp_mtimes: bool = True,
) -> LayerInfo:
    """Write ``entries`` as a deterministic layer to ``out`` (tar, or gzip of it) and return its digests.
    ``clamp_mtimes=False`` keeps every (sane) mtime instead of clamping it to ``source_date_epoch``."""
    if compression not in ("none", "gzip"):
        raise ImageFormatError(f"unsupported layer compression {compression!r} (use 'none' or 'gzip')")
    if not 0 <= level <= 9:
        raise ImageFormatError(f"gzip level must be 0..9, got {level}")
    sink = _Sink(out, compression, level)
    for e in prepare_entries(entries, source_date_epoch=source_date_epoch, clamp_mtimes=clamp_mtimes):
        sink.write(encode_header(e))
        if e.type == "file" and e.size:
            if e.data is not None:
                sink.write(e.data)
            else:
                _copy_file(e, sink)
            pad = -e.size % BLOCK
            if pad:
                sink.write(b"\0" * pad)
    sink.write(END_OF_ARCHIVE)
    diff_id, digest = sink.close()
    return LayerInfo(
        diff_id=diff_id,
        digest=digest,
        size=sink.blob_size,
        uncompressed_size=sink.tar_size,
        media_type=MEDIA_TYPE_TAR_GZIP if compression == "gzip" else MEDIA_TYPE_TAR,
        compression=compression,
    )
