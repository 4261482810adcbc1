"""Images for the registry tests, made with the store/oci API (no registry, no docker needed)."""

from __future__ import annotations

import os
from pathlib import Path

from minibuild.digest import Digest
from minibuild.oci.image import Image
from minibuild.oci.model import History
from minibuild.store import Store
from minibuild.store.tarlayer import Entry, write_layer


def add_layer(store: Store, image: Image, files: dict[str, bytes], *, created_by: str = "test layer",
              compression: str = "gzip") -> Image:
    """``image`` with one more layer holding ``files`` (path -> bytes)."""
    entries = [Entry(path=p, type="file", mode=0o644, uid=0, gid=0, size=len(d), mtime=0, data=d)
               for p, d in sorted(files.items())]
    with store.blobs.writer() as w:
        info = write_layer(entries, w, compression=compression, source_date_epoch=0)  # type: ignore[arg-type]
        w.commit()
    return image.append_layer(info, history=History(created_by=created_by))


def random_image(store: Store, name: str, *, layers: int = 2, size: int = 64 << 10, seed: str = "") -> Image:
    """A scratch image of ``layers`` layers of incompressible bytes (``size`` each), tagged ``name``."""
    image = Image.scratch().with_config(cmd=["/bin/sh"])
    for i in range(layers):
        image = add_layer(store, image, {f"data/{seed}{i}.bin": os.urandom(size)}, created_by=f"layer {i}",
                          compression="none")
    store.tag(name, store.put_image(image))
    return image


def blob_digests(image: Image) -> tuple[Digest, ...]:
    return (image.config_digest, *(layer.digest for layer in image.layers))


def registry_blob_path(root: Path, digest: Digest) -> Path:
    """Where the filesystem driver of docker-registry keeps a blob's bytes."""
    return root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / digest.hex[:2] / digest.hex / "data"
