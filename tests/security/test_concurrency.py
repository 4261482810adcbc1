"""Concurrency: several minibuild processes loading, tagging, saving and pruning one store at once all succeed.

Each worker is a real `python -m minibuild` process per command, so locks, leases and atomic renames are
exercised across processes exactly as users run them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from minibuild.oci.archive import import_archive
from minibuild.store import Store
from minibuild.store.fsck import fsck
from tests.security.hostile import Member, docker_save_archive, oci_archive, tar_of

N = int(os.environ.get("MINIBUILD_CONCURRENCY_WORKERS", "4"))
REPO = str(Path(__file__).resolve().parents[2])

WORKER = r"""
import sys
from minibuild.cli import main
store, who, a, b, out = sys.argv[1:6]
def run(*argv):
    try:
        main(["--store", store, *argv])
    except SystemExit as e:
        if e.code not in (0, None):
            raise SystemExit(f"{who}: {argv} exited {e.code}")
for i in range(4):
    run("load", a)
    run("tag", "hostile:latest", f"{who}:{i}")
    run("load", b)
    run("save", f"{who}:{i}", "-o", out)
    run("prune")
    if i % 2:
        run("rmi", f"{who}:{i}")
        run("prune", "--all")
print("ok", who)
"""


def _layer(tag: str, size: int) -> bytes:
    import random

    rnd = random.Random(tag)
    return tar_of((Member("dir", "d"), Member("file", f"d/{tag}", rnd.randbytes(size))))


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=REPO)


def test_parallel_load_tag_save_prune(tmp_path: Path) -> None:
    a = tmp_path / "a.tar"
    a.write_bytes(docker_save_archive(_layer("shared", 300_000)))
    b = tmp_path / "b.tar"
    b.write_bytes(oci_archive(_layer("other", 200_000), gz=True, name="conc:b"))
    store_dir = tmp_path / "store"
    Store.open(store_dir)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(store_dir), f"w{n}", str(a), str(b),
                               str(tmp_path / f"out-{n}.tar")], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in range(N)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        assert out.strip().endswith("ok " + p.args[4])
    store = Store.open(store_dir)
    report = fsck(store)
    assert report.of_kind("corrupt-blob", "broken-ref", "dangling-cache-record", "damaged-index") == ()
    names = {e.familiar for e in store.refs.entries()}
    expected = {"hostile:latest", "conc:b"} | {f"w{n}:{i}" for n in range(N) for i in (0, 2)}
    assert names == expected
    digest = store.resolve_digest("hostile:latest")
    for n in range(N):
        assert store.resolve_digest(f"w{n}:0") == digest
        fresh = Store.open(tmp_path / f"fresh-{n}")  # every saved archive is complete and loads
        assert import_archive(fresh, tmp_path / f"out-{n}.tar")[0].image.digest == digest


HOLDER = r"""
import sys, time
from minibuild.store import Store
store = Store.open(sys.argv[1])
lease = store.lease()
digest = store.blobs.put_bytes(b"in-flight layer of a build " * 1000, pin=lease)
w = store.blobs.writer(pin=lease)
w.write(b"half-written blob")
w.flush()
print(digest, flush=True)
sys.stdin.readline()
d2 = w.commit()
print(d2, flush=True)
sys.stdin.readline()
lease.release()
print("released", flush=True)
sys.stdin.readline()
"""

PRUNER = r"""
import sys
from minibuild.store import Store
store = Store.open(sys.argv[1])
r = store.prune(clear_cache=True)
print(len(r.removed), r.temp_files_removed)
"""


def test_prune_never_deletes_leased_blobs(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store = Store.open(store_dir)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_dir)], env=_env(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert holder.stdin is not None and holder.stdout is not None
    try:
        from minibuild.digest import Digest

        pinned = Digest(holder.stdout.readline().strip())

        def prune_in_other_process() -> str:
            return subprocess.run([sys.executable, "-c", PRUNER, str(store_dir)], env=_env(), capture_output=True,
                                  text=True, check=True, timeout=120).stdout.strip()

        for _ in range(3):  # several prunes while the build is in flight
            assert prune_in_other_process() == "0 0"  # neither the leased blob nor the live temp file goes
            assert store.blobs.verify(pinned)
        holder.stdin.write("\n")
        holder.stdin.flush()
        second = Digest(holder.stdout.readline().strip())
        assert prune_in_other_process() == "0 0"
        assert store.blobs.has(second)
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        assert prune_in_other_process() == "2 0"  # nothing references them any more
        assert not store.blobs.has(pinned) and not store.blobs.has(second)
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=60)


def test_prune_waits_for_commit_in_progress(tmp_path: Path) -> None:
    # a writer holding the store's shared lock blocks prune (exclusive) until it is done
    store = Store.open(tmp_path / "store")
    with store.lock(shared=True):
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", PRUNER, str(store.root)], env=_env(),
                                stdout=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert proc.poll() is None, "prune ran while a commit held the shared lock"
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and time.monotonic() - started >= 1.0


BUILDER = r"""
import sys
from minibuild.cli import main
store, ctx, who = sys.argv[1:4]
for i in range(3):
    for variant in ("v1", "v2"):
        argv = ["--store", store, "build", "-f", f"{ctx}/Dockerfile.{variant}", "-t", f"{who}-{variant}:{i}",
                "--build-arg", f"N={i % 2}", "--progress", "quiet", ctx]
        if who.endswith("1") and i == 1:
            argv.append("--no-cache")
        try:
            main(argv)
        except SystemExit as e:
            if e.code not in (0, None):
                raise SystemExit(f"{who}: build {variant} {i} exited {e.code}")
print("ok", who)
"""

PRUNE_LOOP = r"""
import sys, time
from minibuild.cli import main
store, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    try:
        main(["--store", store, "prune", "--all"] if i % 2 else ["--store", store, "prune"])
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    time.sleep(0.2)
print("ok pruner")
"""


def test_parallel_overlapping_builds_with_prune(tmp_path: Path) -> None:
    from tests.security.test_crash import DOCKERFILES, _build_context, _build_digest

    ctx = _build_context(tmp_path)
    store_dir = tmp_path / "store"
    Store.open(store_dir)
    workers = [subprocess.Popen([sys.executable, "-c", BUILDER, str(store_dir), str(ctx), f"b{n}"], env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(max(2, N - 1))]
    pruner = subprocess.Popen([sys.executable, "-c", PRUNE_LOOP, str(store_dir), "15"], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for p in workers + [pruner]:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    # every result equals what a clean, serial build gives
    clean = tmp_path / "clean"
    expected = {(v, n): _build_digest(clean, ctx, v, n) for v in DOCKERFILES for n in (0, 1)}
    store = Store.open(store_dir)
    for w in range(len(workers)):
        for i in range(3):
            for v in DOCKERFILES:
                assert store.resolve_digest(f"b{w}-{v}:{i}").value == expected[(v, i % 2)], (w, v, i)
    report = fsck(store)
    assert report.of_kind("corrupt-blob", "broken-ref", "dangling-cache-record", "damaged-index") == ()
