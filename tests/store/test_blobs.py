"""Blob store: atomic verified writes, verified reads, aborts that leave nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minibuild.digest import Digest
from minibuild.errors import StoreError
from minibuild.store import Store


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "s")


def test_layout_created(store: Store) -> None:
    assert (store.root / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    assert (store.root / "index.json").exists() and (store.root / "blobs" / "sha256").is_dir()


def test_put_and_read(store: Store) -> None:
    d = store.blobs.put_bytes(b"hello")
    assert d == Digest.of_bytes(b"hello")
    assert store.blobs.path(d) == store.root / "blobs" / "sha256" / d.hex
    assert store.blobs.read_bytes(d) == b"hello" and store.blobs.size(d) == 5
    assert store.blobs.put_bytes(b"hello") == d  # idempotent
    assert list(store.blobs) == [d]


def test_expected_digest_mismatch_leaves_nothing(store: Store) -> None:
    with pytest.raises(StoreError, match="does not match"):
        store.blobs.put_bytes(b"x", expected=Digest.of_bytes(b"y"))
    with pytest.raises(StoreError):
        with store.blobs.writer(expected=Digest.of_bytes(b"y")) as w:
            w.write(b"x")
            w.commit()
    assert list(store.blobs) == [] and os.listdir(store.tmp_dir) == []


def test_exception_aborts_writer(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.blobs.writer() as w:
            w.write(b"partial")
            raise RuntimeError("interrupted")
    assert list(store.blobs) == [] and os.listdir(store.tmp_dir) == []


def test_uncommitted_writer_is_discarded(store: Store) -> None:
    with store.blobs.writer() as w:
        w.write(b"never committed")
    assert list(store.blobs) == []


def test_corrupt_blob_detected_on_read(store: Store) -> None:
    d = store.blobs.put_bytes(b"good content")
    store.blobs.path(d).write_bytes(b"bad content!")
    with pytest.raises(StoreError, match="corrupt"):
        store.blobs.read_bytes(d)
    assert store.blobs.verify(d) is False


def test_missing_blob(store: Store) -> None:
    with pytest.raises(StoreError, match="not in the store"):
        store.blobs.read_bytes(Digest.of_bytes(b"nothing"))


def test_stream(store: Store, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    src = tmp_path / "big"
    src.write_bytes(data)
    with open(src, "rb") as fh:
        d = store.blobs.put_stream(fh)
    assert d == Digest.of_bytes(data)
    with store.blobs.open(d) as fh:
        assert fh.read() == data


def test_deferred_dir_sync_fsyncs_the_directory_once_and_before_a_tag(store: Store,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import minibuild.store.blobs as blobs_mod
    from minibuild.oci.image import Image

    synced: list[str] = []
    real = blobs_mod.fsync_dir
    monkeypatch.setattr(blobs_mod, "fsync_dir", lambda p: (synced.append(str(p)), real(p))[1])
    digests = []
    with store.blobs.defer_dir_sync():
        for i in range(3):
            with store.blobs.writer() as w:
                w.write(b"blob %d" % i)
                digests.append(w.commit())
        assert synced == []  # file fsyncs only so far; the renames are visible
        assert all(store.blobs.has(d) for d in digests)
        digest = store.put_image(Image.scratch())
        assert synced == []
        store.tag("x:1", digest)  # a name may only point at durable renames
        assert synced == [str(store.blobs.dir)]
    assert synced == [str(store.blobs.dir)]  # nothing pending at the end: no second fsync
    with store.blobs.defer_dir_sync():
        with store.blobs.writer() as w:
            w.write(b"late")
            w.commit()
    assert synced == [str(store.blobs.dir)] * 2  # the block's end syncs what is pending
    with store.blobs.writer() as w:  # outside a block: per commit, as before
        w.write(b"single")
        w.commit()
    assert len(synced) == 3
