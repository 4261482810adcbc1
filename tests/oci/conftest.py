"""Fixtures for the OCI tests: a fresh store and an image with a couple of layers in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from minibuild.oci.image import Image
from minibuild.oci.model import History
from minibuild.store import Store
from tests.oci.layers import make_layer


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store")


@pytest.fixture()
def two_layer_image(store: Store) -> Image:
    base = make_layer({"etc/": None, "etc/os-release": "ID=test\n", "bin/": None, "bin/tool": b"\x7fELF..."})
    top = make_layer({"app/": None, "app/main.txt": "hello\n"}, gz=True)
    for layer in (base, top):
        store.blobs.put_bytes(layer.blob)
    return (Image.scratch(source_date_epoch=1700000000)
            .append_layer(base, history=History(created="2023-11-14T22:13:20Z", created_by="ADD rootfs /"))
            .add_history(History(created="2023-11-14T22:13:20Z", created_by="ENV A=b", empty_layer=True))
            .with_config(env=["A=b"], cmd=["/bin/tool"], labels={"org.example": "yes"})
            .append_layer(top, history=History(created="2023-11-14T22:13:20Z", created_by="COPY app /app")))
