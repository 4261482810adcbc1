"""Two processes at once, and a writer killed mid-blob: the store stays consistent and never trusts a partial blob."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from minibuild.digest import Digest
from minibuild.store import Store

WORKER = r"""
import sys
from minibuild.oci.image import Image
from minibuild.store import Store
from tests.oci.layers import make_layer
store = Store.open(sys.argv[1])
who = sys.argv[2]
for i in range(25):
    shared = make_layer({"shared.txt": "same in both processes %d\n" % (i % 5), "big": b"x" * (1 << 20)})
    own = make_layer({"own.txt": "%s %d\n" % (who, i)})
    for layer in (shared, own):
        assert store.blobs.put_bytes(layer.blob) == layer.digest
    image = Image.scratch().append_layer(shared).append_layer(own)
    digest = store.put_image(image)
    store.tag("race:%d" % (i % 4), digest)
    store.tag("%s:%d" % (who, i), digest)
    store.cache.put("key-%d" % (i % 3), {"by": who, "i": i}, refs=(digest,))
print("done")
"""

KILLED = r"""
import sys, time
from minibuild.store import Store
store = Store.open(sys.argv[1])
w = store.blobs.writer()
w.write(b"A" * (4 << 20))
w.flush()
print("half-written", flush=True)
time.sleep(60)
w.write(b"B")
w.commit()
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))


def test_two_processes_write_the_same_blobs_and_tags(tmp_path: Path) -> None:
    root = tmp_path / "s"
    Store.open(root)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(root), who], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for who in ("alpha", "beta")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    store = Store.open(root)
    json.loads((root / "index.json").read_bytes())
    names = {r.familiar for r in store.images()}
    assert {f"race:{i}" for i in range(4)} <= names
    assert {f"alpha:{i}" for i in range(25)} <= names and {f"beta:{i}" for i in range(25)} <= names
    for digest in store.blobs:
        assert store.blobs.verify(digest), digest
    for r in store.images():
        store.resolve(r.name)
    assert os.listdir(store.tmp_dir) == []
    assert {json.loads(p.read_bytes())["doc"]["key"] for p in (store.meta_dir / "cache").iterdir()} == {"key-0", "key-1", "key-2"}


def test_writer_killed_mid_blob_leaves_nothing_trusted(tmp_path: Path) -> None:
    root = tmp_path / "s"
    Store.open(root)
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(root)], env=_env(), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"half-written"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = Store.open(root)
    partial = Digest.of_bytes(b"A" * (4 << 20))
    full = Digest.of_bytes(b"A" * (4 << 20) + b"B")
    assert list(store.blobs) == []
    assert not store.blobs.has(partial) and not store.blobs.has(full)
    leftovers = os.listdir(store.tmp_dir)
    assert len(leftovers) == 1  # the dead writer's temp file, under a temp name, never a blob name
    report = store.prune()
    assert report.temp_files_removed == 1 and report.freed_bytes == 4 << 20
    assert os.listdir(store.tmp_dir) == []
    assert store.blobs.put_bytes(b"A" * (4 << 20) + b"B") == full and store.blobs.verify(full)


def test_a_blob_corrupted_after_writing_is_not_trusted(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    d = store.blobs.put_bytes(b"z" * 1000)
    path = store.blobs.path(d)
    path.write_bytes(b"z" * 500)  # e.g. truncated by a disk problem
    assert not store.blobs.verify(d)
