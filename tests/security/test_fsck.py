"""minibuild fsck: finds each kind of damage, repairs what it may, and a corrupt blob is never trusted."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minibuild.fs.rootfs import apply_layer
from minibuild.errors import StoreError
from minibuild.oci.image import Image
from minibuild.store import Store
from minibuild.store.fsck import fsck
from tests.oci.layers import make_layer


def _store(tmp_path: Path) -> tuple[Store, Image]:
    store = Store.open(tmp_path / "s")
    layer = make_layer({"a.txt": "hello\n" * 50, "dir": None, "dir/b": "b\n"})
    store.blobs.put_bytes(layer.blob)
    image = Image.scratch().append_layer(layer)
    digest = store.put_image(image)
    store.tag("good:1", digest)
    store.cache.put("step-1", {"layer": layer.digest.value}, refs=(layer.digest,))
    store.cache.put("step-2", {"image": digest.value}, refs=(digest,))
    return store, store.resolve("good:1")


def _cli(store: Store, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store.root), "fsck", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_clean_store_has_no_problems(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    report = fsck(store)
    assert report.ok and report.problems == ()
    assert report.blobs_checked == 3 and report.refs_checked == 1 and report.cache_records_checked == 2
    proc = _cli(store)
    assert proc.returncode == 0 and "no problems" in proc.stdout


def test_corrupt_layer_is_reported_then_repaired(tmp_path: Path) -> None:
    store, image = _store(tmp_path)
    layer = image.layers[0].digest
    path = store.blobs.path(layer)
    path.write_bytes(path.read_bytes() + b"\0" * 4096)  # still a valid tar, wrong digest
    report = fsck(store)
    kinds = sorted(p.kind for p in report.problems)
    assert kinds == ["broken-ref", "corrupt-blob", "dangling-cache-record", "dangling-cache-record"]
    assert not report.ok and path.exists()
    proc = _cli(store)
    assert proc.returncode == 1
    assert len(proc.stdout.strip().splitlines()) == 5  # one line per problem + summary
    assert "corrupt-blob: " + layer.value in proc.stdout
    proc = _cli(store, "--repair")
    assert proc.returncode == 0, proc.stdout
    assert "deleted the blob" in proc.stdout and "removed the name" in proc.stdout
    assert not path.exists()
    assert store.refs.entries() == ()
    assert store.cache.get("step-1") is None and list(store.cache.records()) == []
    assert fsck(store).problems == ()


def test_corrupt_blob_with_trailing_bytes_is_never_applied(tmp_path: Path) -> None:
    # the layer reader stops at the tar end marker; it must still read to EOF so the digest is checked
    store, image = _store(tmp_path)
    path = store.blobs.path(image.layers[0].digest)
    path.write_bytes(path.read_bytes() + b"\0" * 20000)
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(StoreError, match="corrupt"):
        with store.blobs.open(image.layers[0].digest) as fh:
            apply_layer(root, fh)


def test_missing_manifest_and_config(tmp_path: Path) -> None:
    store, image = _store(tmp_path)
    store.blobs.path(image.config_digest).unlink()
    report = fsck(store)
    assert {p.kind for p in report.problems} == {"broken-ref", "dangling-cache-record"}
    assert any(image.config_digest.value in p.message for p in report.problems)
    fsck(store, repair=True)
    assert fsck(store).ok
    # the layer blob is intact and its own cache record still valid
    assert store.cache.get("step-1") is not None


def test_stray_files_temp_files_dead_leases_and_bad_records(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    (store.blobs.dir / "not-a-digest").write_text("x")
    (store.tmp_dir / "blob-123-deadbeef").write_bytes(b"partial")
    (store.leases_dir / "999-abc.lease").write_text("sha256:" + "0" * 64 + "\n")
    (store.cache.dir / ("0" * 64 + ".json")).write_text("{not json")
    live = store.lease()  # a live lease is not a problem
    try:
        report = fsck(store)
        assert sorted(p.kind for p in report.problems) == ["bad-cache-record", "dead-lease", "stale-temp",
                                                              "stray-file"]
        report = fsck(store, repair=True)
        assert report.ok and all(p.repaired for p in report.problems)
        assert live.path.exists()
        assert fsck(store).problems == ()
    finally:
        live.release()


def test_damaged_index_is_reported_not_repaired(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    (store.root / "index.json").write_text("{broken")
    report = fsck(store, repair=True)
    assert [p.kind for p in report.remaining] == ["damaged-index"]
    proc = _cli(store, "--repair")
    assert proc.returncode == 1 and "damaged-index" in proc.stdout and "Traceback" not in proc.stderr


def test_blob_committed_during_check_is_not_a_false_alarm(tmp_path: Path) -> None:
    # a ref to a blob that appears after the blob scan (concurrent writer) is verified on demand
    store, image = _store(tmp_path)
    from minibuild.store import fsck as fsck_mod

    checker = fsck_mod._Checker(store, repair=False)
    checker.check_blobs()
    layer = make_layer({"late": "x"})
    store.blobs.put_bytes(layer.blob)
    late = store.put_image(Image.scratch().append_layer(layer))
    store.tag("late:1", late)
    checker.check_refs()
    assert checker.problems == []


def test_fsck_reads_no_more_than_the_store(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    before = sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*"))
    fsck(store)
    after = sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*"))
    assert before == after


def test_report_lines_are_single_lines(tmp_path: Path) -> None:
    store, image = _store(tmp_path)
    store.blobs.path(image.layers[0].digest).write_bytes(b"garbage\nwith newline")
    for p in fsck(store).problems:
        assert "\n" not in str(p)


def test_empty_tar_read_via_store_is_verified(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    d = store.blobs.put_bytes(b"\0" * 1024)
    store.blobs.path(d).write_bytes(b"\0" * 2048)
    root = tmp_path / "r"
    root.mkdir()
    with pytest.raises(StoreError):
        apply_layer(root, store.blobs.open(d))
    assert apply_layer(root, io.BytesIO(b"\0" * 1024)).entries == 0


def test_scratch_dirs_of_killed_builds_are_cleaned(tmp_path: Path) -> None:
    store, _ = _store(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = store.tmp_dir / f"build-{dead.pid}-abcdef"
    (killed / "root-x" / "etc").mkdir(parents=True)
    (killed / "root-x" / "etc" / "big").write_bytes(b"x" * 10000)
    live = store.tmp_dir / f"build-{os.getpid()}-123456"  # this process is alive: its build is running
    (live / "root-y").mkdir(parents=True)
    report = fsck(store)
    assert [p.subject for p in report.problems] == [f".minibuild/tmp/{killed.name}"]
    assert "killed" in report.problems[0].message
    pruned = store.prune()
    assert pruned.temp_files_removed == 1 and pruned.freed_bytes >= 10000
    assert not killed.exists() and live.exists()
    (killed / "again").mkdir(parents=True)
    assert fsck(store, repair=True).ok and not killed.exists() and live.exists()
