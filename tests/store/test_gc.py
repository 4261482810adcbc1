"""Prune: keeps what images, cache records and live leases reference; frees the rest and reports it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from minibuild.oci.image import Image
from minibuild.store import Store
from tests.oci.layers import make_layer


def test_prune_keeps_referenced(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    layer = make_layer({"f": "kept"})
    store.blobs.put_bytes(layer.blob)
    image = Image.scratch().append_layer(layer)
    store.tag("app", store.put_image(image))
    cached = store.blobs.put_bytes(b"cached layer")
    store.cache.put("step", {"x": 1}, refs=(cached,))
    garbage = store.blobs.put_bytes(b"garbage" * 100)
    report = store.prune()
    assert report.removed == (garbage,) and report.freed_bytes == 700
    assert store.blobs.has(layer.digest) and store.blobs.has(image.config_digest) and store.blobs.has(cached)
    store.untag("app")
    report = store.prune()
    assert set(report.removed) == {layer.digest, image.config_digest, image.digest}
    assert store.blobs.has(cached)
    report = store.prune(clear_cache=True)
    assert report.removed == (cached,) and list(store.blobs) == []


def test_dry_run_deletes_nothing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    d = store.blobs.put_bytes(b"junk")
    report = store.prune(dry_run=True)
    assert report.removed == (d,) and store.blobs.has(d)


def test_lease_pins_until_released(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    with store.lease() as lease:
        d = store.blobs.put_bytes(b"in flight", pin=lease)
        with store.blobs.writer(pin=lease) as w:
            w.write(b"streamed in flight")
            d2 = w.commit()
        assert store.prune().removed == ()
        assert store.blobs.has(d) and store.blobs.has(d2)
    assert set(store.prune().removed) == {d, d2}


def test_lease_of_a_dead_process_is_void(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    code = ("import sys, os; from minibuild.store import Store; s = Store.open(sys.argv[1]); l = s.lease(); "
            "s.blobs.put_bytes(b'orphan', pin=l); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(store.root)], check=True)
    assert len(os.listdir(store.leases_dir)) == 1  # the file is left behind, but nobody holds its lock
    report = store.prune()
    assert len(report.removed) == 1 and os.listdir(store.leases_dir) == []


def test_prune_removes_dead_temp_files_only(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    (store.tmp_dir / "blob-123-dead").write_bytes(b"x" * 10)
    with store.blobs.writer() as live:
        live.write(b"still writing")
        report = store.prune()
        assert report.temp_files_removed == 1
        live.commit()
    assert store.blobs.has(live.digest)
