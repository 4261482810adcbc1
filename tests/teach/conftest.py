"""Fixtures: a fresh store and a helper that builds images in it with the store/oci API."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from minibuild.digest import Digest
from minibuild.oci.image import Image
from minibuild.oci.model import History
from minibuild.store import Store
from minibuild.store.tarlayer import Entry, write_layer

MakeImage = Callable[..., Image]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store")


def put_layer(store: Store, entries: Sequence[Entry], *, gzip: bool = False):  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    info = write_layer(entries, buf, compression="gzip" if gzip else "none")
    assert store.blobs.put_bytes(buf.getvalue()) == info.digest
    return info


@pytest.fixture
def make_image(store: Store) -> MakeImage:
    """make_image(name, [(created_by, [entries]) | (created_by, None) for an empty-layer step], base=None)."""

    def make(name: str | None, steps: Sequence[tuple[str, Sequence[Entry] | None]], *,
             base: Image | None = None, comments: dict[int, str] | None = None) -> Image:
        image = base if base is not None else Image.scratch()
        for n, (created_by, entries) in enumerate(steps):
            comment = (comments or {}).get(n)
            if entries is None:
                image = image.add_history(History(created_by=created_by, empty_layer=True, comment=comment))
            else:
                image = image.append_layer(put_layer(store, entries),
                                           history=History(created_by=created_by, comment=comment))
        digest = store.put_image(image)
        if name:
            store.tag(name, digest)
        return image

    return make


def blob_size(store: Store, digest: Digest) -> int:
    return store.blobs.path(digest).stat().st_size
