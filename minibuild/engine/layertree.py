"""A stage image seen as a COPY --from source without extracting it: the folded layer metadata, content hashed
on demand from the layer blobs.

``LayerTree`` is a ``BuildContext`` whose primitives (lstat, listdir, symlink resolution, per-entry records) answer
from ``minibuild.view``'s merged tree, the same fold ``rootfs.apply_layer`` performs on disk (whiteouts, opaque
directories, parents resolved through symlinks, hardlinks sharing their target's content). So the COPY source
logic of ``minibuild.engine.copy`` (wildcards, ``--exclude``, ``--parents``, confined symlinks) runs unchanged and
gives the checksum it gives on an extracted root. File content hashes are not known while folding: a record asks
for them, ``load_hashes`` then reads only the members asked for, only from the layers that hold them, and the
caller computes the records again (``copy.source_records``, the one walk behind the key and the explain record).

An uncompressed layer blob in the local store is read by seeking: its headers are read and its file contents
skipped (a 350 MB base layer costs a few hundred header reads, not 350 MB), and a wanted member is read at its
offset. Those reads do not re-verify the blob's digest (the store verified it when it was written; ``fsck`` checks
it again); a blob corrupted on disk since then can only make a checksum differ, i.e. a cache miss, and the COPY
itself then extracts through the verifying reader. Compressed layers are streamed (verified) as before.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minibuild.boundedtar import open_tar
from minibuild.engine.context import BuildContext
from minibuild.digest import Digest
from minibuild.errors import ImageFormatError, MinibuildError
from minibuild.oci.image import BlobSource, Image
from minibuild.store.tarlayer import CHUNK
from minibuild.store.tarread import entry_from_tarinfo, iter_layer
from minibuild.store.tarlayer import Entry
from minibuild.view import FileInfo, MergedTree, layer_entries, merge_image

_PENDING = "pending"


class LayerTree(BuildContext):
    """The filesystem of ``image`` (layers in ``blobs``) as a COPY --from source; nothing is written to disk."""

    def __init__(self, blobs: BlobSource, image: Image, *, merged: MergedTree | None = None) -> None:
        super().__init__(Path("/nonexistent-layer-tree"))
        self.blobs = blobs
        self.image = image
        self._members: dict[Digest, dict[str, tarfile.TarInfo]] = {}  # seekable layers: member -> header
        self.merged = merged if merged is not None else merge_image(blobs, image, read=self._entries)
        self.hashes: dict[tuple[Digest, str], str] = {}
        self.wanted: set[tuple[Digest, str]] = set()
        self.members_read = 0

    # ------------------------------------------------------------------ BuildContext primitives
    def _lstat_raw(self, rel: str) -> Any:
        return self.merged.nodes.get(rel)

    def visible(self, rel: str) -> bool:
        return rel in ("", ".") or rel.strip("/") in self.merged.nodes

    def lstat(self, rel: str) -> Any:
        return self.merged.nodes.get(rel.strip("/") if rel not in ("", ".") else "")

    def listdir(self, rel: str) -> list[str]:
        names = [c.rpartition("/")[2] for c in self.merged.children.get(rel, ())]
        names.sort(key=os.fsencode)
        return names

    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        return self.merged.resolve(path, follow_final=follow_last)

    def walk(self, rel: str = "") -> Iterator[tuple[str, Any]]:
        prefix = rel + "/" if rel else ""
        for name in self.listdir(rel):
            child = prefix + name
            info = self.merged.nodes[child]
            yield child, info
            if info.type == "dir":
                yield from self.walk(child)

    def record(self, rel: str, info: Any, *, owner: bool = False) -> dict[str, object]:
        """The record ``BuildContext.record`` makes of the same entry on an extracted root."""
        fi: FileInfo = info
        rec: dict[str, object] = {"path": rel, "type": fi.type, "mode": fi.mode & 0o7777}
        if fi.type == "symlink":
            rec["link"] = fi.link_target or ""
        elif fi.type == "file":
            rec["sha256"] = self._sha256(fi)
        elif fi.type in ("char", "block"):
            rec["dev"] = [fi.devmajor, fi.devminor]
        if owner:
            rec["uid"], rec["gid"] = fi.uid, fi.gid
        return rec

    # ------------------------------------------------------------------ reading layers
    def _open_seekable(self, digest: Digest) -> Any:
        """The local blob file when it is an uncompressed tar (ustar/gnu magic), else None."""
        try:
            fh = self.blobs.open(digest, verify=False)  # type: ignore[call-arg]
        except (TypeError, OSError, MinibuildError):
            return None
        try:
            head = fh.read(512)
            if len(head) == 512 and head[257:262] == b"ustar" and fh.seekable():
                fh.seek(0)
                return fh
        except OSError:
            pass
        fh.close()
        return None

    def _entries(self, digest: Digest) -> list[Entry]:
        fh = self._open_seekable(digest)
        if fh is None:
            return layer_entries(self.blobs, digest)
        out: list[Entry] = []
        members: dict[str, tarfile.TarInfo] = {}
        try:
            with fh, open_tar(fh, mode="r:", what=f"layer {digest.short}") as tf:
                for ti in tf:
                    entry = entry_from_tarinfo(ti)
                    out.append(entry)
                    if entry.type == "file":
                        members[entry.path] = ti
        except tarfile.TarError as err:
            raise ImageFormatError(f"cannot read layer {digest.short}: {err}") from err
        self._members[digest] = members
        return out

    # ------------------------------------------------------------------ content
    def head(self, fi: FileInfo, n: int) -> bytes:
        """The first ``n`` bytes of a file: a seek to the member in an uncompressed layer, else a read of the layer
        up to it (``FileInfo.head``)."""
        c = fi._content
        if c is None:
            return b""
        ti = self._members.get(c.digest, {}).get(c.member)
        fh = self._open_seekable(c.digest) if ti is not None else None
        if fh is None or ti is None:
            return fi.head(n)
        with fh, open_tar(fh, mode="r:", what=f"layer {c.digest.short}") as tf:
            stream = tf.extractfile(ti)
            return stream.read(n) if stream is not None else b""

    def _sha256(self, fi: FileInfo) -> str:
        c = fi._content
        if c is None:  # an empty file
            return hashlib.sha256(b"").hexdigest()
        key = (c.digest, c.member)
        hit = self.hashes.get(key)
        if hit is None:
            self.wanted.add(key)
            return _PENDING
        return hit

    def load_hashes(self) -> bool:
        """Hash the file members records asked for (one pass over each layer holding any); True if there were any."""
        wanted = self.wanted - self.hashes.keys()
        self.wanted = set()
        if not wanted:
            return False
        by_layer: dict[Digest, set[str]] = {}
        for digest, member in wanted:
            by_layer.setdefault(digest, set()).add(member)
        for digest, members in by_layer.items():
            self._hash_members(digest, members)
            missing = [m for m in members if (digest, m) not in self.hashes]
            if missing:
                raise ImageFormatError(f"layer {digest.short}: member {missing[0]!r} vanished while hashing it")
        return True

    def _hash_members(self, digest: Digest, members: set[str]) -> None:
        index = self._members.get(digest)
        fh = self._open_seekable(digest) if index is not None else None
        if fh is not None and index is not None:
            with fh, open_tar(fh, mode="r:", what=f"layer {digest.short}") as tf:
                for member in sorted(members, key=lambda m: index[m].offset_data if m in index else 0):
                    ti = index.get(member)
                    stream = tf.extractfile(ti) if ti is not None else None
                    if stream is not None:
                        self.hashes[(digest, member)] = _sha256_of(stream)
                        self.members_read += 1
            return
        with self.blobs.open(digest) as blob:
            for entry, stream in iter_layer(blob):
                if entry.path in members and stream is not None:
                    self.hashes[(digest, entry.path)] = _sha256_of(stream)
                    self.members_read += 1


def _sha256_of(stream: Any) -> str:
    h = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()
