"""Store names (index.json) and cache records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minibuild.digest import Digest
from minibuild.errors import StoreError
from minibuild.oci.image import Image
from minibuild.store import Store
from tests.oci.jsonschema_lite import validate_bytes
from tests.oci.layers import make_layer


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "s")


def _image(store: Store, content: str) -> Digest:
    layer = make_layer({"f": content})
    store.blobs.put_bytes(layer.blob)
    return store.put_image(Image.scratch().append_layer(layer))


def test_tag_resolve_untag(store: Store) -> None:
    d = _image(store, "1")
    assert store.tag("app", d) == "docker.io/library/app:latest"
    assert store.resolve("docker.io/library/app:latest").digest == d
    assert store.resolve("app").digest == d
    assert store.resolve(d.value).digest == d
    cfg = store.resolve("app").config_digest
    assert store.resolve(cfg.hex[:12]).digest == d
    index = json.loads((store.root / "index.json").read_bytes())
    assert index["manifests"][0]["annotations"] == {"io.containerd.image.name": "docker.io/library/app:latest",
                                                    "org.opencontainers.image.ref.name": "app:latest"}
    assert validate_bytes((store.root / "index.json").read_bytes(), "index") == []
    store.untag("app")
    with pytest.raises(StoreError, match="no image 'app'"):
        store.resolve("app")


def test_retag_replaces_and_lists(store: Store) -> None:
    d1, d2 = _image(store, "1"), _image(store, "2")
    store.tag("b", d1)
    store.tag("a", d1)
    store.tag("b", d2)
    assert [(r.familiar, r.digest) for r in store.images()] == [("a:latest", d1), ("b:latest", d2)]
    with pytest.raises(StoreError, match="a:latest, b:latest"):
        store.resolve("c")


def test_tag_unknown_digest(store: Store) -> None:
    with pytest.raises(StoreError):
        store.tag("x", Digest.of_bytes(b"nothing"))


def test_cache_records(store: Store) -> None:
    d = store.blobs.put_bytes(b"layer")
    assert store.cache.get("k") is None
    store.cache.put("k", {"layer": d.value, "n": 1}, refs=(d,))
    assert store.cache.get("k") == {"layer": d.value, "n": 1}
    assert list(store.cache.records()) == [("k", (d,))]
    store.blobs.delete(d)
    assert store.cache.get("k") is None  # a record whose blob has gone is a miss
    assert store.cache.delete("k") and store.cache.get("k") is None


def test_damaged_cache_record_is_a_miss(store: Store) -> None:
    store.cache.put("k", {"a": 1})
    for path in (store.meta_dir / "cache").iterdir():
        path.write_bytes(b"{trunc")
    assert store.cache.get("k") is None
