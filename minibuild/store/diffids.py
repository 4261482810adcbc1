"""Verified diff_ids: for each layer blob, the sha256 of its uncompressed tar, computed once and recorded.

``.minibuild/diffids/<blob hex>`` holds ``sha256:<diff_id hex>`` of the blob with that digest, written atomically
only after minibuild computed it from the blob's own bytes (or wrote the layer itself).  The record is a fact
about content (same digest, same bytes), so it never goes stale.  ``verify_layers`` is the one check every
path that accepts an image or a cached layer calls: an image config (or cache record) claiming another diff_id
for a blob is refused, so cache keys (which are built from diff_ids) cannot be poisoned.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from minibuild.digest import CHUNK, Digest
from minibuild.errors import ImageFormatError, StoreError
from minibuild.limits import open_decompressed, sniff
from minibuild.oci.image import Layer
from minibuild.store.blobs import BlobStore, Pin
from minibuild.store.lock import atomic_write


class DiffIds:
    """The verified diff_id records of one store (``<dir>/<blob hex>``)."""

    def __init__(self, directory: Path, *, tmp_dir: Path, root: Path | None = None) -> None:
        self.dir = directory
        self._tmp_dir = tmp_dir
        self._root = root

    def get(self, digest: Digest) -> Digest | None:
        """The recorded diff_id of blob ``digest``, or None (also for an unreadable record: it is recomputed)."""
        try:
            fd = os.open(self.dir / digest.hex, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as fh:
                raw = fh.read(128).decode("ascii").strip()
            return Digest(raw)
        except (OSError, UnicodeDecodeError, ImageFormatError):
            return None

    def put(self, digest: Digest, diff_id: Digest) -> None:
        """Record that blob ``digest`` uncompresses to a tar hashing to ``diff_id`` (callers computed it)."""
        if self.get(digest) == diff_id:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.dir / digest.hex, diff_id.value.encode() + b"\n", tmp_dir=self._tmp_dir,
                         durable=False)  # a lost record is only recomputed
        except OSError as exc:
            raise StoreError(f"cannot record the diff_id of blob {digest.short}: {exc.strerror or exc}") from None

    def forget(self, digest: Digest) -> None:
        """Drop the record of a blob that prune removed (harmless if absent)."""
        from minibuild.store.dirs import opened_below

        try:
            with opened_below(self._root, self.dir) as fd:  # never through a symlinked store directory
                if fd is not None:
                    os.unlink(digest.hex, dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot remove the diff_id record of blob {digest.short}: {exc.strerror or exc}") from None


def compute_diff_id(blobs: BlobStore, digest: Digest) -> Digest:
    """The sha256 of the uncompressed tar of blob ``digest`` (compression sniffed; an uncompressed blob's diff_id
    is its digest), bounded by ``MINIBUILD_MAX_LAYER_BYTES``."""
    with blobs.open(digest) as fh:
        head = fh.peek(6)[:6] if isinstance(fh, io.BufferedReader) else b""
        if len(head) >= 6 and sniff(head) == "tar":
            return digest
        h = hashlib.sha256()
        data = open_decompressed(fh, what=f"layer {digest.short}")
        while chunk := data.read(CHUNK):
            h.update(chunk)
        while fh.read(CHUNK):  # to the end: the verifying reader checks the blob's digest
            pass
    return Digest("sha256:" + h.hexdigest())


class _HasDiffIds(Protocol):
    blobs: BlobStore
    diff_ids: DiffIds


def verified_diff_id(store: _HasDiffIds, digest: Digest, *, pin: Pin | None = None) -> Digest:
    """The verified diff_id of blob ``digest``: the record, else computed from the blob (fetched from a remote
    source if need be) and recorded."""
    known = store.diff_ids.get(digest)
    if known is not None:
        return known
    if not store.blobs.ensure(digest, pin=pin):
        raise StoreError(f"cannot verify layer {digest.short}: its blob is not in the store")
    diff_id = compute_diff_id(store.blobs, digest)
    store.diff_ids.put(digest, diff_id)
    return diff_id


def verify_layers(store: _HasDiffIds, layers: Sequence[Layer], *, where: str, pin: Pin | None = None) -> None:
    """Refuse (ImageFormatError) any layer whose claimed diff_id is not its blob's verified diff_id."""
    for i, layer in enumerate(layers):
        actual = verified_diff_id(store, layer.digest, pin=pin)
        if actual != layer.diff_id:
            raise ImageFormatError(
                f"{where}: layer {i} ({layer.digest.short}) uncompresses to diff_id {actual} but is claimed as "
                f"{layer.diff_id} (a poisoned or corrupt image or cache; refused)")
