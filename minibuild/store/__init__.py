"""The content store: one directory that is an OCI image layout, plus cache records, locks and leases.

Layout of ``$MINIBUILD_HOME``::

    oci-layout, index.json, blobs/sha256/<hex>     a valid OCI image layout (skopeo oci:DIR:NAME, umoci)
    .minibuild/lock                                 store lock: shared for blob commits, exclusive for prune
    .minibuild/refs.lock                            serialises index.json rewrites
    .minibuild/tmp/                                 temp files of blobs being written (flock'ed while alive)
    .minibuild/tmp/build-<pid>-<id>/                a build's scratch roots (the directory is flock'ed while alive)
    .minibuild/cache/<sha256(key)>.json             cache records, sealed with the sha256 of their body
    .minibuild/diffids/<blob hex>                   verified diff_id of each layer blob (minibuild.store.diffids)
    .minibuild/leases/<pid>-<id>.lease              blobs pinned by in-flight builds (flock'ed while alive)
    .minibuild/stat-cache.json                      sha256 of context files by path + stat (builds skip unchanged files)
    .minibuild/program-heads.json                   --executor auto: the first bytes of a program per layer chain
    .minibuild/unpacked/<blob hex>/                 as root: a layer unpacked in overlayfs format (minibuild.store.unpacked)

``Store.open`` refuses a store whose own directories are symlinks, belong to another user or are writable by
others (``minibuild.home.store_problem``); every walk and removal inside it goes through ``store.dirs``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from minibuild.digest import Digest
from minibuild.errors import ConfigError, ImageFormatError, StoreError
from minibuild.oci.image import EMPTY_LAYER_BYTES, EMPTY_LAYER_DIGEST, Image, Layer
from minibuild.oci.model import Descriptor
from minibuild.oci.reference import parse_reference
from minibuild.record import record
from minibuild.store.blobs import BlobStore, BlobWriter, Pin
from minibuild.store.cache import CacheStore
from minibuild.store.dirs import DIRS, check_store, dir_mode
from minibuild.store.diffids import DiffIds, verify_layers
from minibuild.store.gc import Lease, PruneReport, prune
from minibuild.store.lock import FileLock, atomic_write
from minibuild.store.refs import LAYOUT_BYTES, RefEntry, RefStore
from minibuild.units import image_size

__all__ = ["Store", "ImageRecord", "BlobStore", "BlobWriter", "CacheStore", "RefStore", "RefEntry", "Lease",
           "PruneReport", "FileLock"]


@record
class ImageRecord:
    """A named image in the store, for listings."""

    name: str
    familiar: str
    digest: Digest
    config_digest: Digest
    size: int
    layers: int
    created: str | None


class Store:
    """A minibuild store rooted at ``root``; create or open it with ``Store.open(path)``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta_dir = root / ".minibuild"
        self.tmp_dir = self.meta_dir / "tmp"
        self.leases_dir = self.meta_dir / "leases"
        self.lock_path = self.meta_dir / "lock"
        self.blobs = BlobStore(root, tmp_dir=self.tmp_dir, lock_path=self.lock_path)
        self.refs = RefStore(root, lock_path=self.meta_dir / "refs.lock", tmp_dir=self.tmp_dir)
        self.cache = CacheStore(self.meta_dir / "cache", tmp_dir=self.tmp_dir, has_blob=self.blobs.available,
                                root=root)
        self.diff_ids = DiffIds(self.meta_dir / "diffids", tmp_dir=self.tmp_dir, root=root)

    @classmethod
    def open(cls, path: Path | str) -> Store:
        """Open the store at ``path``, creating the OCI layout and metadata directories if missing; refuses a store
        whose own directories are symlinks, belong to another user or are writable by others (store.dirs)."""
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise StoreError(f"store path {root} exists and is not a directory")
        store = cls(root)
        try:
            check_store(root)  # before anything is created or read: a symlinked .minibuild would be followed
        except OSError as exc:
            raise StoreError(f"cannot open store {root}: {exc.strerror or exc}") from None
        dirs = (root / "blobs" / "sha256", store.tmp_dir, store.leases_dir, store.meta_dir / "cache")
        if all(d.is_dir() for d in dirs) and (root / "oci-layout").exists() and (root / "index.json").exists():
            return store  # complete: opening writes nothing (a read-only store still serves read-only commands)
        try:
            if not os.path.lexists(root):
                root.mkdir(parents=True, mode=dir_mode())
            for rel in DIRS:
                if not os.path.lexists(root / rel):
                    try:
                        os.mkdir(root / rel, dir_mode())
                    except FileExistsError:
                        pass
            with FileLock(store.meta_dir / "refs.lock"):
                layout = root / "oci-layout"
                if not layout.exists():
                    atomic_write(layout, LAYOUT_BYTES, tmp_dir=store.tmp_dir)
                if not (root / "index.json").exists():
                    atomic_write(root / "index.json", b'{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}', tmp_dir=store.tmp_dir)
        except OSError as exc:
            raise StoreError(f"cannot open store {root}: {exc.strerror or exc}") from None
        return store

    # ------------------------------------------------------------ locking and leases
    def lock(self, *, shared: bool = False, timeout: float | None = 300.0) -> FileLock:
        """The store-wide lock (exclusive blocks blob commits and prune; shared is what commits take)."""
        return FileLock(self.lock_path, shared=shared, timeout=timeout)

    @property
    def remote_sources(self) -> list:  # type: ignore[type-arg]
        """Remote blob sources (build caches) consulted for absent blobs: the same list as ``blobs.remote``."""
        return self.blobs.remote

    def lease(self) -> Lease:
        """A lease pinning blobs for an in-flight build: pass it as ``pin=`` to blob writes; release when done."""
        with self.blobs.shared_lock():  # created and flocked before a reaper (exclusive) can see it unlocked
            return Lease(self.leases_dir)

    # ------------------------------------------------------------ images
    def verify_layers(self, layers: Sequence[Layer], *, where: str, pin: Pin | None = None) -> None:
        """Refuse (ImageFormatError) layers whose claimed diff_id is not what their blob uncompresses to."""
        verify_layers(self, layers, where=where, pin=pin)

    def record_diff_id(self, digest: Digest, diff_id: Digest) -> None:
        """Record the diff_id of a layer blob the caller has just written or hashed itself."""
        self.diff_ids.put(digest, diff_id)

    def put_image(self, image: Image, *, pin: Pin | None = None) -> Digest:
        """Store the config and manifest blobs of ``image`` (its layer blobs must already be here, and their
        verified diff_ids must be the config's: ``verify_layers``)."""
        for layer in image.layers:
            if not self.blobs.has(layer.digest) and self.blobs.remote:
                self.blobs.ensure(layer.digest, pin=pin)  # a layer a remote build cache provides: fetch it now
            if not self.blobs.has(layer.digest):
                if layer.digest == EMPTY_LAYER_DIGEST:
                    self.blobs.put_bytes(EMPTY_LAYER_BYTES, pin=pin)
                    continue
                raise StoreError(f"cannot store image: layer blob {layer.digest} is not in the store")
            if pin is not None:
                pin.add(layer.digest)
        self.verify_layers(image.layers, where=f"image {image.digest.short}", pin=pin)
        self.blobs.put_bytes(image.config_bytes, pin=pin)
        return self.blobs.put_bytes(image.manifest_bytes, pin=pin)

    def get_image(self, manifest_digest: Digest) -> Image:
        """The image whose manifest has this digest."""
        if not self.blobs.has(manifest_digest):
            raise StoreError(f"no image manifest {manifest_digest} in the store")
        return Image.from_blobs(self.blobs, manifest_digest)

    def tag(self, name: str, manifest_digest: Digest) -> str:
        """Name an image (stored manifest digest); returns the normalised name."""
        image = self.get_image(manifest_digest)
        data = image.manifest_bytes
        desc = Descriptor(media_type=image.manifest_descriptor.media_type, digest=manifest_digest, size=len(data),
                          platform=image.config.platform)
        # the blobs directory is durable before a name can point into it: a build commits blobs with
        # BlobStore.defer_dir_sync, and another process may tag what this one renamed and not yet synced
        self.blobs.sync_dir(force=True)
        return self.refs.set(name, desc)

    def untag(self, name: str) -> RefEntry:
        """Remove a name (``rmi``); blobs go at the next prune."""
        return self.refs.remove(name)

    def resolve_digest(self, name: str) -> Digest:
        """The manifest digest for a name, a manifest digest, or an ID prefix (config or manifest digest)."""
        entries = self.refs.entries()
        raw = name.strip()
        if raw.startswith("sha256:") and len(raw) == 71:
            digest = Digest(raw)
            if self.blobs.has(digest):
                for e in entries:
                    if e.descriptor.digest == digest:
                        return digest
                try:
                    Image.from_blobs(self.blobs, digest)
                    return digest
                except (ImageFormatError, StoreError):
                    pass
        hexpart = raw[7:] if raw.startswith("sha256:") else raw
        if len(hexpart) >= 4 and all(c in "0123456789abcdef" for c in hexpart):
            hits = set()
            for e in entries:
                if e.descriptor.digest.hex.startswith(hexpart):
                    hits.add(e.descriptor.digest)
                else:
                    try:
                        if self.get_image(e.descriptor.digest).config_digest.hex.startswith(hexpart):
                            hits.add(e.descriptor.digest)
                    except (ImageFormatError, StoreError):
                        continue
            if len(hits) == 1:
                return hits.pop()
            if len(hits) > 1:
                raise StoreError(f"{name!r} is ambiguous: it matches {len(hits)} images")
        try:
            full = str(parse_reference(raw))
        except ConfigError:
            full = None
        for e in entries:
            if e.name == full:
                return e.descriptor.digest
        known = ", ".join(e.familiar for e in entries) or "none"
        raise StoreError(f"no image {name!r} in the store {self.root} (images: {known})")

    def resolve(self, name: str) -> Image:
        """The image a name (or digest / ID prefix) refers to; StoreError listing what exists otherwise."""
        return self.get_image(self.resolve_digest(name))

    def images(self) -> list[ImageRecord]:
        """Every named image, sorted by name."""
        out = []
        for e in self.refs.entries():
            try:
                image = self.get_image(e.descriptor.digest)
            except (StoreError, ImageFormatError):
                continue
            size = image_size(image)
            out.append(ImageRecord(name=e.name, familiar=e.familiar, digest=e.descriptor.digest,
                                   config_digest=image.config_digest, size=size, layers=len(image.layers),
                                   created=image.config.created))
        return sorted(out, key=lambda r: r.name)

    def prune(self, *, clear_cache: bool = False, dry_run: bool = False) -> PruneReport:
        """Remove blobs no image, cache record or live lease references (see minibuild.store.gc)."""
        return prune(self, clear_cache=clear_cache, dry_run=dry_run)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"


def default_store_path() -> Path:
    """$MINIBUILD_HOME, else $XDG_CACHE_HOME/minibuild, else ~/.cache/minibuild."""
    from minibuild.home import default_store_dir

    return Path(default_store_dir())
