"""Build small images for tests with the store/oci API: layers of Entries, config changes, history lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from minibuild.oci.image import Image
from minibuild.oci.model import History
from minibuild.store import Store
from minibuild.store.tarlayer import Entry, write_layer


def f(path: str, data: bytes | str = b"", mode: int = 0o644, uid: int = 0, gid: int = 0) -> Entry:
    """A regular file entry."""
    raw = data.encode() if isinstance(data, str) else data
    return Entry(path=path, type="file", mode=mode, uid=uid, gid=gid, data=raw, size=len(raw))


def d(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    """A directory entry."""
    return Entry(path=path, type="dir", mode=mode, uid=uid, gid=gid)


def ln(path: str, target: str) -> Entry:
    """A symlink entry."""
    return Entry(path=path, type="symlink", mode=0o777, linkname=target)


def hl(path: str, target: str) -> Entry:
    """A hardlink entry (target in the same layer)."""
    return Entry(path=path, type="hardlink", mode=0o644, linkname=target)


def make_image(store: Store, layers: Sequence[Sequence[Entry]], *, created_by: Sequence[str] | None = None,
               name: str | None = None, compression: str = "gzip", **config: Any) -> Image:
    """Write each layer into ``store``, stack them on scratch, apply ``config`` (ImageConfig field names)."""
    image = Image.scratch()
    for i, entries in enumerate(layers):
        with store.blobs.writer() as w:
            info = write_layer(entries, w, compression=compression)  # type: ignore[arg-type]
            w.commit()
        line = created_by[i] if created_by is not None else f"layer {i}"
        image = image.append_layer(info, history=History(created_by=line))
    if config:
        image = image.with_config(**config)
    digest = store.put_image(image)
    if name is not None:
        store.tag(name, digest)
    return image
