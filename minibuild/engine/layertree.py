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

import base64
import hashlib
import io
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from minibuild.boundedtar import open_tar
from minibuild.engine.context import BuildContext
from minibuild.digest import Digest
from minibuild.errors import ImageFormatError
from minibuild.oci.image import BlobSource, Image, Layer
from minibuild.store.tarlayer import CHUNK
from minibuild.store.tarread import iter_layer
from minibuild.store.tarlayer import Entry
from minibuild.store.keptree import (Row, TreeFile, chain_key, encode_tree, open_tree, save_tree,
                                     tree_path)
from minibuild.store.layerindex import INDEX_DIR, Member, MemberReader
from minibuild.view import FileInfo, MergedTree, layer_entries, merge_image

if TYPE_CHECKING:
    from minibuild.store import Store

_PENDING = "pending"


class LayerTree(BuildContext):
    """The filesystem of ``image`` (layers in ``blobs``) as a COPY --from source; nothing is written to disk."""

    def __init__(self, blobs: BlobSource, image: Image, *, merged: MergedTree | None = None,
                 index_dir: Path | None = None) -> None:
        super().__init__(Path("/nonexistent-layer-tree"))
        self.blobs = blobs
        self.image = image
        self.index_dir = index_dir  # where the headers of seekable layers are kept (minibuild.store.layerindex)
        self._members: dict[Digest, dict[str, Member]] = {}  # seekable layers: file member -> where its bytes are
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
    def _entries(self, digest: Digest) -> list[Entry]:
        from minibuild.store.layerindex import load_index, parse_index, save_index

        kept = load_index(self.index_dir, digest) if self.index_dir is not None else None
        if kept is None:
            kept = parse_index(self.blobs, digest)  # type: ignore[arg-type]
            if kept is None:
                return layer_entries(self.blobs, digest)  # compressed: streamed through the verifying reader
            if self.index_dir is not None:
                save_index(self.index_dir, digest, kept.entries, kept.members)
        self._members[digest] = kept.members
        return list(kept.entries)

    def _read_member(self, digest: Digest, m: Member) -> BinaryIO:
        """The bytes of one file member of a seekable layer blob (a sparse member through tar's reader)."""
        fh = self.blobs.open(digest, verify=False)  # type: ignore[call-arg]
        if m.sparse:
            with open_tar(fh, mode="r:", what=f"layer {digest.short}") as tf:
                for ti in tf:
                    if ti.offset_data == m.offset and ti.isfile():
                        stream = tf.extractfile(ti)
                        if stream is not None:
                            return cast(BinaryIO, io.BytesIO(stream.read()))
            fh.close()
            raise ImageFormatError(f"layer {digest.short}: a sparse member vanished while reading it")
        fh.seek(m.offset)
        return cast(BinaryIO, MemberReader(fh, m.size))

    # ------------------------------------------------------------------ content
    def head(self, fi: FileInfo, n: int) -> bytes:
        """The first ``n`` bytes of a file: a seek to the member in an uncompressed layer, else a read of the layer
        up to it (``FileInfo.head``)."""
        c = fi._content
        if c is None:
            return b""
        m = self._members.get(c.digest, {}).get(c.member)
        if m is None:
            return fi.head(n)
        with self._read_member(c.digest, m) as stream:
            return stream.read(n)

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
        if index is not None and not any(index[m].sparse for m in members if m in index):
            for member in sorted(members, key=lambda m: index[m].offset if m in index else 0):
                if member in index:
                    with self._read_member(digest, index[member]) as content:
                        self.hashes[(digest, member)] = _sha256_of(content)
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


def lower_rows(tree: LayerTree) -> list[Row] | None:
    """The tree's merged layers as the rows of a ``minibuild.store.keptree.LowerTable`` (a layered root's lower
    layers), or None when a layer cannot be read in place (a compressed blob: such a root is extracted)."""
    digests = [layer.digest for layer in tree.image.layers]
    if not all(d in tree._members for d in digests):
        return None
    where = {d: i for i, d in enumerate(digests)}
    rows: list[Row] = []
    for rel, fi in tree.merged.nodes.items():
        if not rel:
            continue
        content: list[object] | None = None
        c = fi._content
        if c is not None and fi.type == "file":
            m = tree._members[c.digest][c.member]
            content = [where[c.digest], m.offset, m.size, m.sparse]
        src = fi._entry
        rows.append([rel, fi.type, fi.mode, fi.uid, fi.gid, fi.size if fi.type == "file" else 0, fi.mtime,
                     fi.link_target or "", None if fi.hardlink_to is None else fi.hardlink_to.lstrip("/"),
                     fi.devmajor, fi.devminor,
                     [[n, base64.b64encode(v).decode()] for n, v in (src.xattrs if src is not None else ())],
                     content])
    return rows


def folded_tree(store: "Store", image: Image, tree: Callable[[], BuildContext] | None = None) -> TreeFile | None:
    """The folded tree of ``image``'s layers (``minibuild.store.keptree``): the kept one, else folded from the layer
    headers (``tree``: the LayerTree to fold, when the caller has one) and kept; None when a layer cannot be read
    in place (compressed: such a root is extracted)."""
    directory = store.meta_dir / INDEX_DIR
    digests = [layer.digest for layer in image.layers]
    kept = open_tree(directory, digests)
    if kept is not None:
        return kept
    source = tree() if tree is not None else LayerTree(store.blobs, image, index_dir=directory)
    rows = lower_rows(source) if isinstance(source, LayerTree) else None
    return None if rows is None else TreeFile.of_bytes(save_tree(directory, digests, rows))


def refold(store: "Store", digests: Sequence[Digest]) -> bytes:
    """Fold a chain again from its layers' headers (a kept tree found damaged) and keep the fold; its bytes."""
    rows = lower_rows(LayerTree(store.blobs, cast(Image, _Chain(digests))))
    if rows is None:
        raise ImageFormatError("a layer of a kept folded tree can no longer be read in place")
    return save_tree(store.meta_dir / INDEX_DIR, digests, rows)


def kept_tree(store: "Store", layers: Sequence[Layer]) -> TreeFile | None:
    """The kept folded tree of a chain of layers, None when there is none (nothing is folded here)."""
    return open_tree(store.meta_dir / INDEX_DIR, [la.digest for la in layers])


# Above a kept tree, at most this many layers holding at most this much are applied onto the layered root (a
# build's own small steps: a COPY of sources, a RUN's few files). A chain with more above its kept part, such as
# a stage FROM a stage that installed packages, is folded once and kept: every later build FROM the same chain
# (each edit of the sources after it) finds its tree, where applying would write those bytes again every time.
STACK_LAYERS = 16
STACK_BYTES = 16 * 1024 * 1024


def kept_base(store: "Store", layers: Sequence[Layer], floor: int) -> tuple[int, TreeFile] | None:
    """The longest proper prefix of a chain of layers, at least ``floor`` long (the base image's own layers), whose
    folded tree is kept, as (its length, its tree), when the layers above it are few and small enough to be
    applied onto a layered root over it (a build's own steps on its base: the base is never folded again); None
    otherwise."""
    directory = store.meta_dir / INDEX_DIR
    digests = [la.digest for la in layers]
    for k in range(len(digests) - 1, max(floor, len(digests) - STACK_LAYERS, 1) - 1, -1):
        if sum(la.size for la in layers[k:]) > STACK_BYTES:
            return None
        if tree_path(directory, chain_key(digests[:k])).is_file():
            tree = open_tree(directory, digests[:k])
            return None if tree is None else (k, tree)
    return None


def index_image(store: "Store", image: Image) -> bool:
    """Fold an image's layers once and keep the result in the store, so that the first build FROM it starts from
    the kept tree, as Docker unpacks an image when it is loaded; False when a layer cannot be read in place."""
    return not image.layers or folded_tree(store, image) is not None


class _Chain:
    """Just the layers of an image (what folding needs), for a chain known by its digests."""

    def __init__(self, digests: Sequence[Digest]) -> None:
        self.layers = tuple(_Digested(d) for d in digests)


class _Digested:
    def __init__(self, digest: Digest) -> None:
        self.digest = digest


def tree_matches(store: "Store", digests: Sequence[Digest], data: bytes) -> bool:
    """Whether a kept folded tree's bytes are what folding its layers from their blobs again gives (``fsck``)."""
    tree = LayerTree(store.blobs, cast(Image, _Chain(digests)))  # headers parsed again: no kept index read
    rows = lower_rows(tree)
    return rows is not None and encode_tree(digests, rows) == data
