"""Interrupted pulls and pushes (a loopback proxy cuts the connection mid-blob): resume or fail cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from minibuild.errors import RegistryError
from minibuild.registry import RegistryClient, RegistryOptions, pull, push_image
from minibuild.registry.transfer import partial_path
from minibuild.store import Store
from tests.registry.conftest import CuttingProxy, Registry
from tests.registry.images import blob_digests, random_image, registry_blob_path

SIZE = 300_000


def opts(*hosts: str, **kw: object) -> RegistryOptions:
    return RegistryOptions(insecure_registries=hosts, env={}, backoff=0.01, **kw)  # type: ignore[arg-type]


def port_of(reg: Registry) -> int:
    return int(reg.host.rsplit(":", 1)[1])


@pytest.fixture
def pushed(plain_registry: Registry, tmp_path: Path) -> Iterator[tuple[Store, str]]:
    """An image of two 300 kB layers pushed to the plain registry; yields (source store, repository)."""
    store = Store.open(tmp_path / "src")
    random_image(store, "cut:1", layers=2, size=SIZE, seed=tmp_path.name)
    repo = f"cut/{tmp_path.name.lower().replace('_', '-')[:40]}"
    push_image(store, "cut:1", f"{plain_registry.host}/{repo}:1", options=opts(plain_registry.host))
    yield store, repo


def assert_store_clean(store: Store) -> None:
    for d in store.blobs:
        assert store.blobs.verify(d), f"corrupt blob {d} in the store"


def test_pull_resumes_after_a_cut(plain_registry: Registry, pushed: tuple[Store, str], tmp_path: Path) -> None:
    src, repo = pushed
    image = src.resolve("cut:1")
    proxy = CuttingProxy(port_of(plain_registry), cut_after=200_000, direction="down", cuts=2)
    try:
        store = Store.open(tmp_path / "dst")
        mark = plain_registry.mark()
        got = pull(store, f"{proxy.host}/{repo}:1", options=opts(proxy.host))
    finally:
        proxy.close()
    assert proxy.cut_count == 2
    assert got.digest == image.digest
    assert len(got.resumed) == 2  # each cut layer continued with a Range request, not from zero
    gets = [r for r in plain_registry.requests(mark) if r[0] == "GET" and "/blobs/" in r[1]]
    assert sorted(r[2] for r in gets).count(206) == 2
    assert_store_clean(store)
    assert set(blob_digests(image)) <= set(store.blobs)
    assert not any(partial_path(store, d).exists() for d in blob_digests(image))


def test_pull_that_keeps_failing_stores_nothing_then_resumes(plain_registry: Registry, pushed: tuple[Store, str],
                                                             tmp_path: Path) -> None:
    src, repo = pushed
    image = src.resolve("cut:1")
    layer = image.layers[0].digest
    proxy = CuttingProxy(port_of(plain_registry), cut_after=120_000, direction="down", cuts=-1)
    store = Store.open(tmp_path / "dst")
    try:
        with pytest.raises(RegistryError, match="broke"):
            pull(store, f"{proxy.host}/{repo}:1", options=opts(proxy.host, retries=1))
    finally:
        proxy.close()
    assert not store.blobs.has(layer)
    assert store.images() == []
    assert_store_clean(store)
    kept = partial_path(store, layer)
    assert 0 < kept.stat().st_size < image.layers[0].size
    # a later pull (direct this time) continues the partial file and verifies the whole blob
    got = pull(store, f"{plain_registry.host}/{repo}:1", options=opts(plain_registry.host))
    assert layer in got.resumed and got.digest == image.digest
    assert_store_clean(store)
    assert not kept.exists()


def test_corrupt_partial_download_is_discarded(plain_registry: Registry, pushed: tuple[Store, str],
                                               tmp_path: Path) -> None:
    src, repo = pushed
    image = src.resolve("cut:1")
    layer = image.layers[0]
    store = Store.open(tmp_path / "dst")
    part = partial_path(store, layer.digest)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"\xff" * 1000)  # not a prefix of the blob: the resumed whole cannot verify
    with pytest.raises(RegistryError, match="does not match its descriptor"):
        pull(store, f"{plain_registry.host}/{repo}:1", options=opts(plain_registry.host))
    assert not store.blobs.has(layer.digest) and not part.exists()
    assert_store_clean(store)
    assert pull(store, f"{plain_registry.host}/{repo}:1", options=opts(plain_registry.host)).digest == image.digest


def _registry_holds_verified(reg: Registry, image_blobs: tuple, repo: str) -> None:
    from minibuild.digest import Digest
    client = RegistryClient(reg.host, opts(reg.host))
    for d in image_blobs:
        assert client.blob_size(repo, d) is not None
        assert Digest.of_bytes(registry_blob_path(reg.root, d).read_bytes()) == d


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_push_is_retried_after_a_cut(plain_registry: Registry, tmp_path: Path, chunked: bool) -> None:
    store = Store.open(tmp_path / "src")
    image = random_image(store, "up:1", layers=2, size=SIZE, seed=f"up{chunked}")
    repo = f"cutup/{'chunked' if chunked else 'mono'}"
    extra = {"monolithic_max": 50_000, "chunk_size": 64 << 10} if chunked else {}
    proxy = CuttingProxy(port_of(plain_registry), cut_after=150_000 if not chunked else 40_000, direction="up", cuts=2)
    try:
        mark = plain_registry.mark()
        res = push_image(store, "up:1", f"{proxy.host}/{repo}:1", options=opts(proxy.host, **extra))
    finally:
        proxy.close()
    assert proxy.cut_count == 2
    assert res.digest == image.digest
    _registry_holds_verified(plain_registry, blob_digests(image), repo)
    if chunked:  # the cut chunk was re-sent after asking the session how much it held
        reqs = plain_registry.requests(mark)
        assert any(r[0] == "GET" and "/blobs/uploads/" in r[1] for r in reqs)
    s2 = Store.open(tmp_path / "check")
    assert pull(s2, f"{plain_registry.host}/{repo}:1", options=opts(plain_registry.host)).digest == image.digest
    assert_store_clean(s2)


def test_push_that_keeps_failing_leaves_no_manifest(plain_registry: Registry, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "src")
    random_image(store, "fail:1", layers=1, size=SIZE, seed="fail")
    proxy = CuttingProxy(port_of(plain_registry), cut_after=100_000, direction="up", cuts=-1)
    try:
        with pytest.raises(RegistryError, match="failed after 2 attempts"):
            push_image(store, "fail:1", f"{proxy.host}/cutfail/app:1", options=opts(proxy.host, retries=1))
    finally:
        proxy.close()
    client = RegistryClient(plain_registry.host, opts(plain_registry.host))
    assert client.manifest_exists("cutfail/app", "1") is None
