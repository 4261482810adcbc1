"""Read layer blobs (tar, or gzip/bzip2/xz of it; sniffed) as a stream of normalised Entries."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import BinaryIO, cast

from minibuild.boundedtar import open_tar
from minibuild.errors import ImageFormatError, UnsafePathError
from minibuild.limits import DECOMPRESS_ERRORS, open_decompressed
from minibuild.store.tarlayer import CHUNK, OPAQUE_NAME, WHITEOUT_PREFIX, Entry, EntryType, normalize_path, sane_mtime

_TYPES: dict[bytes, EntryType] = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file", tarfile.GNUTYPE_SPARSE: "file",
    tarfile.LNKTYPE: "hardlink", tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
    tarfile.DIRTYPE: "dir", tarfile.FIFOTYPE: "fifo",
}
_XATTR = "SCHILY.xattr."
_READ_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, *DECOMPRESS_ERRORS)


def entry_from_tarinfo(ti: tarfile.TarInfo) -> Entry:
    """The Entry a tar member describes (path normalised: leading "/" or "./" dropped; ".." rejected)."""
    kind = _TYPES.get(ti.type)
    if kind is None:
        raise ImageFormatError(f"layer member {ti.name!r} has unsupported tar type {ti.type!r}")
    try:
        path = normalize_path(ti.name)
    except UnsafePathError as err:
        raise UnsafePathError(f"layer entry {ti.name!r} escapes the root: it contains '..'") from err
    linkname = ti.linkname
    if kind == "hardlink":
        try:
            linkname = normalize_path(linkname)
        except UnsafePathError as err:
            raise UnsafePathError(f"hardlink {ti.name!r} -> {ti.linkname!r} escapes the root") from err
    xattrs = tuple(
        sorted(
            (k[len(_XATTR):], v.encode("utf-8", "surrogateescape"))
            for k, v in ti.pax_headers.items()
            if k.startswith(_XATTR)
        )
    )
    return Entry(
        path=path,
        type=kind,
        mode=ti.mode & 0o7777,
        uid=ti.uid,
        gid=ti.gid,
        size=ti.size if kind == "file" else 0,
        linkname=linkname if kind in ("symlink", "hardlink") else "",
        mtime=sane_mtime(ti.mtime),  # hostile values (negative, fractional, huge, NaN) made sane
        xattrs=xattrs,
        devmajor=ti.devmajor if kind in ("char", "block") else 0,
        devminor=ti.devminor if kind in ("char", "block") else 0,
    )


def iter_layer(blob: BinaryIO) -> Iterator[tuple[Entry, BinaryIO | None]]:
    """Yield (entry, content stream or None) for each member of a layer blob, in archive order, in one pass.

    The content stream of a file is valid only until the next item is requested.  Compression is sniffed; the
    uncompressed size, and what its files extract to, are bounded by ``MINIBUILD_MAX_LAYER_BYTES`` and its
    headers by ``minibuild.boundedtar``.  After the last member the
    blob is read to its end, so a verifying reader (``store.blobs.open``) always checks the digest: trailing bytes
    after the end-of-archive marker must not let a corrupt blob pass.
    """
    try:
        data = open_decompressed(blob, what="layer")
        with open_tar(data, mode="r|", what="layer") as tf:
            for ti in tf:
                entry = entry_from_tarinfo(ti)
                stream = cast("BinaryIO | None", tf.extractfile(ti)) if entry.type == "file" else None
                yield entry, stream
        while data.read(CHUNK):
            pass
        while blob.read(CHUNK):
            pass
    except _READ_ERRORS as err:
        raise ImageFormatError(f"cannot read layer: {err}") from err


def read_entries(blob: BinaryIO) -> list[Entry]:
    """All entries of a layer blob (metadata only; content is skipped)."""
    return [entry for entry, _ in iter_layer(blob)]


def is_whiteout(path: str) -> bool:
    """True for ``.wh.<name>`` whiteouts and the ``.wh..wh..opq`` marker."""
    return path.rpartition("/")[2].startswith(WHITEOUT_PREFIX)


def check_layer(blob: BinaryIO) -> list[Entry]:
    """Validate the structural rules of image-format.md §6.9 and return the entries.

    No duplicate paths, no ``X`` with ``.wh.X`` in the same layer, hardlink targets before their links, every
    parent directory before its children; raises ImageFormatError naming the first violation.
    """
    seen: dict[str, Entry] = {}
    for e in read_entries(blob):
        if not e.path:
            continue
        if e.path in seen:
            raise ImageFormatError(f"layer has {e.path!r} twice")
        head, _, name = e.path.rpartition("/")
        if head and (head not in seen or seen[head].type != "dir"):
            raise ImageFormatError(f"layer entry {e.path!r} comes before (or without) its parent directory")
        if name.startswith(WHITEOUT_PREFIX) and name != OPAQUE_NAME:
            target = (head + "/" if head else "") + name[len(WHITEOUT_PREFIX):]
            if target in seen:
                raise ImageFormatError(f"layer has both {target!r} and its whiteout {e.path!r}")
        elif (head + "/" if head else "") + WHITEOUT_PREFIX + name in seen:
            raise ImageFormatError(f"layer has both {e.path!r} and its whiteout")
        if e.type == "hardlink" and (e.linkname not in seen or seen[e.linkname].type in ("dir", "hardlink")):
            raise ImageFormatError(f"hardlink {e.path!r} -> {e.linkname!r}: target is not earlier in the layer")
        seen[e.path] = e
    return list(seen.values())
