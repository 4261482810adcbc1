"""Self-check of an image before it is written (image-format.md §6.9): digests, diff_ids, history, layer tars."""

from __future__ import annotations

import hashlib
import posixpath
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from minibuild.boundedtar import open_tar
from minibuild.digest import CHUNK, Digest
from minibuild.errors import ImageFormatError, MinibuildError
from minibuild.oci.image import BlobSource, Image
from minibuild.oci.model import (
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
    Index,
)
from minibuild.oci.reference import REF_NAME_RE

_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$")


class _Counted:
    """Reads a verified blob stream while counting and hashing (to check descriptor size and digest)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.size = 0
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.size += len(data)
        self.hash.update(data)
        return data


def iter_uncompressed(stream: BinaryIO, media_type: str) -> Iterator[bytes]:
    """The uncompressed tar bytes of a layer blob, in chunks (plain or gzip, multi-member safe)."""
    if media_type == MEDIA_OCI_LAYER:
        while chunk := stream.read(CHUNK):
            yield chunk
        return
    if media_type != MEDIA_OCI_LAYER_GZIP:
        raise ImageFormatError(f"unsupported layer media type {media_type!r} (only tar and tar+gzip)")
    dec = zlib.decompressobj(wbits=31)
    while chunk := stream.read(CHUNK):
        while chunk:
            out = dec.decompress(chunk)
            if out:
                yield out
            if dec.eof:
                chunk = dec.unused_data
                dec = zlib.decompressobj(wbits=31)
            else:
                chunk = b""
    tail = dec.flush()
    if tail:
        yield tail


class _ChunkStream:
    """A read() interface over an iterator of chunks that also hashes the bytes (for tarfile 'r|').

    Keeps an offset into the current chunk instead of re-slicing the remainder on every read: tarfile reads
    512 bytes to 10 kB at a time and a decompressed chunk can be megabytes, so slicing made a scan quadratic."""

    def __init__(self, chunks: Iterator[bytes], *, hashing: bool = True) -> None:
        self._chunks = chunks
        self._buf = b""
        self._pos = 0
        self.hash = hashlib.sha256()
        self._hashing = hashing

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = [self._buf[self._pos:], *self._chunks]
            self._buf, self._pos = b"", 0
            out = b"".join(parts)
        else:
            while len(self._buf) - self._pos < n:
                try:
                    nxt = next(self._chunks)
                except StopIteration:
                    break
                self._buf = self._buf[self._pos:] + nxt if self._pos < len(self._buf) else nxt
                self._pos = 0
            out = self._buf[self._pos:self._pos + n]
            self._pos += len(out)
        if self._hashing:
            self.hash.update(out)
        return out

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def check_layer_tar(names: list[tuple[str, str, str]], where: str) -> tuple[str, ...]:
    """Structural checks on (name, type, linkname) of one layer; errors raise, soft issues are returned."""
    warnings: list[str] = []
    seen: set[str] = set()
    dirs: set[str] = {""}
    for raw, kind, link in names:
        name = raw
        while name.startswith("./"):
            name = name[2:]
        name = name.rstrip("/")
        if name in ("", "."):
            continue
        if raw.startswith("/") or ".." in name.split("/"):
            raise ImageFormatError(f"{where}: unsafe entry name {raw!r}")
        if name in seen:
            raise ImageFormatError(f"{where}: duplicate entry {name!r}")
        parent, base = posixpath.split(name)
        if base.startswith(".wh.") and base != ".wh..wh..opq":
            target = posixpath.join(parent, base[4:])
            if target in seen:
                raise ImageFormatError(f"{where}: {target!r} and its whiteout are in the same layer")
        if not base.startswith(".wh.") and posixpath.join(parent, ".wh." + base) in seen:
            raise ImageFormatError(f"{where}: {name!r} and its whiteout are in the same layer")
        if parent not in dirs:
            warnings.append(f"{where}: parent directory of {name!r} is not in the layer")
        if kind == "hardlink":
            target = link
            while target.startswith("./"):
                target = target[2:]
            if target.lstrip("/") not in seen:
                raise ImageFormatError(f"{where}: hardlink {name!r} -> {link!r} whose target is not earlier in the layer")
        seen.add(name)
        if kind == "dir":
            dirs.add(name)
    return tuple(warnings)


class _Tee:
    """Passes every byte read from ``raw`` on to ``sink`` (an export copies a layer while it is checked)."""

    def __init__(self, raw: BinaryIO, sink: Callable[[bytes], object]) -> None:
        self.raw = raw
        self.sink = sink

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        if data:
            self.sink(data)
        return data


def scan_layer(source: BlobSource, image: Image, i: int, *, tee: Callable[[bytes], object] | None = None
               ) -> tuple[str, ...]:
    """Check layer ``i`` of ``image`` (size, digest, diff_id, tar structure) reading its blob once; with ``tee``
    every byte of the blob is also handed to it as it is read (the caller must discard what it wrote if this
    raises). Returns warnings."""
    layer = image.layers[i]
    where = f"layer {i} ({layer.digest.short})"
    with source.open(layer.digest) as raw_blob:
        raw: BinaryIO = _Tee(raw_blob, tee) if tee is not None else raw_blob  # type: ignore[assignment]
        counted = _Counted(raw)
        # an uncompressed layer's diff_id is its digest: hash its bytes once, not twice
        plain = layer.descriptor.media_type == MEDIA_OCI_LAYER
        stream = _ChunkStream(iter_uncompressed(counted, layer.descriptor.media_type),  # type: ignore[arg-type]
                              hashing=not plain)
        entries: list[tuple[str, str, str]] = []
        try:
            with open_tar(stream, mode="r|", what=where) as tf:  # type: ignore[arg-type]
                for ti in tf:
                    kind = "dir" if ti.isdir() else "hardlink" if ti.islnk() else "other"
                    entries.append((ti.name + ("/" if ti.isdir() else ""), kind, ti.linkname))
        except (tarfile.TarError, zlib.error, EOFError) as exc:
            raise ImageFormatError(f"{where}: not a readable tar ({exc})") from None
        stream.drain()
        while counted.read(CHUNK):
            pass
    if counted.size != layer.size:
        raise ImageFormatError(f"{where}: blob is {counted.size} bytes but its descriptor says {layer.size}")
    if "sha256:" + counted.hash.hexdigest() != layer.digest.value:
        raise ImageFormatError(f"{where}: blob does not hash to its digest")
    diff_id = layer.digest if plain else Digest("sha256:" + stream.hash.hexdigest())
    if diff_id != layer.diff_id:
        raise ImageFormatError(f"{where}: diff_id is {diff_id} but the config says {layer.diff_id}")
    return check_layer_tar(entries, where)


def check_config(image: Image) -> None:
    """Config-level rules Docker and the OCI schema enforce."""
    cfg = image.config
    if not cfg.architecture or not cfg.os:
        raise ImageFormatError("image config needs architecture and os")
    non_empty = sum(1 for h in cfg.history if not h.empty_layer)
    if non_empty > len(cfg.diff_ids):
        raise ImageFormatError(
            f"image history has {non_empty} entries that add a layer but there are only {len(cfg.diff_ids)} layers")
    for when in [cfg.created] + [h.created for h in cfg.history]:
        if when is not None and not _RFC3339_RE.match(when):
            raise ImageFormatError(f"image config has a 'created' that is not RFC 3339: {when!r}")
    if not image.layers:
        raise ImageFormatError("an OCI image needs at least one layer (use Image.with_empty_layer())")
    manifest = image.manifest
    if image.raw_manifest is None:
        if manifest.media_type != MEDIA_OCI_MANIFEST or manifest.config.media_type != MEDIA_OCI_CONFIG:
            raise ImageFormatError("manifest must use OCI media types")
    for layer in image.layers:
        if layer.descriptor.media_type not in (MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP):
            raise ImageFormatError(f"layer media type {layer.descriptor.media_type!r} is not loadable everywhere")


def validate_image(source: BlobSource, image: Image, *, layers: bool = True) -> tuple[str, ...]:
    """Run the §6.9 self-check; raise ImageFormatError on anything a consumer would reject, return warnings."""
    check_config(image)
    warnings: list[str] = []
    if layers:
        for i in range(len(image.layers)):
            try:
                warnings.extend(scan_layer(source, image, i))
            except ImageFormatError:
                raise
            except MinibuildError as exc:
                raise ImageFormatError(f"layer {i}: {exc}") from None
    return tuple(warnings)


def check_index(index: Index) -> None:
    """index.json rules: ref names follow the OCI grammar, entries have platform."""
    for desc in index.manifests:
        ref = desc.annotation("org.opencontainers.image.ref.name")
        if ref is not None and not REF_NAME_RE.match(ref):
            raise ImageFormatError(f"index.json ref.name {ref!r} does not follow the OCI ref grammar")
