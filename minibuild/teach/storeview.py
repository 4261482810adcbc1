"""Read-only views of the store for people: an image's history with layers and cache keys, and disk usage.

Cache keys of layers are found (in this order) in the layer descriptor's ``CACHE_KEY_ANNOTATION`` annotation,
in a history entry's comment of the form ``minibuild cache key: <key>``, or in any cache record of the store that
keeps the layer blob alive (its ``refs``). An exported layer (mtimes clamped, minibuild.engine.export) has the keys of
the store layer it was clamped from.
"""

from __future__ import annotations

from minibuild.digest import Digest
from minibuild.errors import ImageFormatError, StoreError
from minibuild.oci.image import Image
from minibuild.record import record
from minibuild.store import Store
from minibuild.store.gc import live_lease_digests
from minibuild.store.tarlayer import Entry
from minibuild.store.tarread import read_entries
from minibuild.units import image_size

CACHE_KEY_ANNOTATION = "dev.minibuild.cache-key"
CACHE_KEY_COMMENT = "minibuild cache key: "


@record
class HistoryRow:
    """One history entry of an image, with the layer it made (None for an empty layer)."""

    created: str | None
    created_by: str
    comment: str
    empty_layer: bool
    layer: Digest | None
    size: int  # stored bytes of the layer (0 when empty)
    cache_keys: tuple[str, ...] = ()


def layer_cache_keys(store: Store) -> dict[Digest, tuple[str, ...]]:
    """blob digest -> the keys of the cache records that keep it alive (sorted); an exported layer's are those of
    the layer it was clamped from (its ``exported-layer:EPOCH:SOURCE`` record names the source)."""
    from minibuild.engine.export import exported_source

    out: dict[Digest, list[str]] = {}
    exported: list[tuple[Digest, Digest]] = []  # (exported blob, the store layer it came from)
    for key, refs in store.cache.records():
        source = exported_source(key)
        if source is not None:
            exported.extend((ref, source) for ref in refs if ref != source)
            continue
        for ref in refs:
            out.setdefault(ref, []).append(key)
    for ref, source in exported:
        out.setdefault(ref, []).extend(out.get(source, ()))
    return {d: tuple(sorted(set(keys))) for d, keys in out.items()}


def history_rows(store: Store, image: Image) -> tuple[HistoryRow, ...]:
    """The image's history, oldest first, each non-empty entry paired with its layer (extra layers appended)."""
    keys = layer_cache_keys(store)
    layers = list(image.layers)
    rows: list[HistoryRow] = []
    n = 0

    def cache_keys_for(index: int, comment: str) -> tuple[str, ...]:
        desc = layers[index].descriptor
        found = [v for k, v in desc.annotations if k == CACHE_KEY_ANNOTATION]
        if comment.startswith(CACHE_KEY_COMMENT):
            found.append(comment[len(CACHE_KEY_COMMENT):].strip())
        found.extend(keys.get(desc.digest, ()))
        return tuple(dict.fromkeys(found))

    for h in image.history:
        comment = h.comment or ""
        if h.empty_layer or n >= len(layers):
            rows.append(HistoryRow(created=h.created, created_by=h.created_by or "", comment=comment,
                                   empty_layer=True, layer=None, size=0))
            continue
        rows.append(HistoryRow(created=h.created, created_by=h.created_by or "", comment=comment, empty_layer=False,
                               layer=layers[n].digest, size=layers[n].size, cache_keys=cache_keys_for(n, comment)))
        n += 1
    while n < len(layers):
        rows.append(HistoryRow(created=None, created_by="", comment="(no history entry)", empty_layer=False,
                               layer=layers[n].digest, size=layers[n].size, cache_keys=cache_keys_for(n, "")))
        n += 1
    return tuple(rows)


def layer_entries(store: Store, digest: Digest) -> list[Entry]:
    """The entries of one stored layer blob (metadata only), in archive order."""
    with store.blobs.open(digest) as fh:
        return read_entries(fh)


@record
class ImageUsage:
    """One stored image (all its names): bytes in total, unique to it, and shared with other images."""

    names: tuple[str, ...]
    digest: Digest
    layers: int
    size: int  # units.image_size: its layer blobs, as `images`, `history` and the build summary count it
    unique: int  # bytes of its layer blobs no other image uses
    shared: int  # bytes of its layer blobs some other image also uses (unique + shared == size)
    metadata: int = 0  # its manifest and config blobs (not in size)


@record
class SharedLayer:
    """A layer blob that several images use."""

    digest: Digest
    size: int
    images: tuple[str, ...]


@record
class DiskUsage:
    """Where the store's bytes go, and what prune would free."""

    blobs: int
    blob_bytes: int
    images: tuple[ImageUsage, ...]
    image_bytes: int  # distinct blobs of all images
    cache_records: int
    cache_bytes: int  # distinct blobs cache records keep alive
    cache_only_bytes: int  # ... of which no image uses
    shared_layers: tuple[SharedLayer, ...]
    prune_blobs: int  # `minibuild prune` would delete this many blobs
    prune_bytes: int  # ... freeing this many bytes
    prune_all_bytes: int  # `minibuild prune --all` (cache records dropped too) would free this many bytes


def _image_blobs(image: Image, manifest: Digest) -> set[Digest]:
    return {manifest, image.config_digest, *(layer.digest for layer in image.layers)}


def disk_usage(store: Store) -> DiskUsage:
    """Usage by image (unique vs shared), by cache records, shared layers, and prune's dry-run numbers."""
    sizes: dict[Digest, int] = {}
    for digest in store.blobs:
        try:
            sizes[digest] = store.blobs.size(digest)
        except (StoreError, OSError):
            continue
    by_manifest: dict[Digest, list[str]] = {}
    for e in store.refs.entries():
        by_manifest.setdefault(e.descriptor.digest, []).append(e.familiar)
    image_sets: dict[Digest, set[Digest]] = {}
    images: dict[Digest, Image] = {}
    for manifest in by_manifest:
        try:
            images[manifest] = store.get_image(manifest)
        except (StoreError, ImageFormatError):
            image_sets[manifest] = {manifest}
            continue
        image_sets[manifest] = _image_blobs(images[manifest], manifest)
    users: dict[Digest, list[Digest]] = {}
    for manifest, blobs in image_sets.items():
        for b in blobs:
            users.setdefault(b, []).append(manifest)
    usages = []
    for manifest, blobs in sorted(image_sets.items(), key=lambda kv: sorted(by_manifest[kv[0]])):
        image = images.get(manifest)
        layer_sizes = dict((layer.digest, layer.size) for layer in image.layers) if image is not None else {}
        unique = sum(n for b, n in layer_sizes.items() if len(users[b]) == 1)
        shared = sum(n for b, n in layer_sizes.items() if len(users[b]) > 1)
        metadata = sum(sizes.get(b, 0) for b in blobs if b not in layer_sizes)
        usages.append(ImageUsage(names=tuple(sorted(by_manifest[manifest])), digest=manifest,
                                 layers=len(image.layers) if image is not None else 0,
                                 size=image_size(image) if image is not None else 0, unique=unique,
                                 shared=shared, metadata=metadata))
    all_image_blobs = set(users)
    cache_blobs: set[Digest] = set()
    records = 0
    for _key, refs in store.cache.records():
        records += 1
        for ref in refs:
            cache_blobs.add(ref)
            if ref in sizes and ref not in images:
                try:  # a record may keep a whole image (manifest) alive
                    cache_blobs |= _image_blobs(store.get_image(ref), ref)
                except (StoreError, ImageFormatError):
                    pass
    shared_layers: list[SharedLayer] = []
    for manifest, image in images.items():
        for layer in image.layers:
            if len(users.get(layer.digest, ())) > 1 and all(s.digest != layer.digest for s in shared_layers):
                names = tuple(sorted(n for m in users[layer.digest] for n in by_manifest[m]))
                shared_layers.append(SharedLayer(digest=layer.digest, size=sizes.get(layer.digest, layer.size),
                                                 images=names))
    report = store.prune(dry_run=True)
    leased = live_lease_digests(store.leases_dir, remove_dead=False)
    kept_without_cache = all_image_blobs | leased
    prune_all = sum(size for d, size in sizes.items() if d not in kept_without_cache)
    return DiskUsage(
        blobs=len(sizes), blob_bytes=sum(sizes.values()), images=tuple(usages),
        image_bytes=sum(sizes.get(b, 0) for b in all_image_blobs), cache_records=records,
        cache_bytes=sum(sizes.get(b, 0) for b in cache_blobs),
        cache_only_bytes=sum(sizes.get(b, 0) for b in cache_blobs - all_image_blobs),
        shared_layers=tuple(sorted(shared_layers, key=lambda s: (-s.size, s.digest.value))),
        prune_blobs=len(report.removed), prune_bytes=report.freed_bytes, prune_all_bytes=prune_all,
    )
