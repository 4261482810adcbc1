"""Crash debris heals itself: after a build killed with SIGKILL, fsck passes without --repair (the debris is a
note), and the next build or prune really removes the dead lease, scratch tree and partial blobs."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minibuild.oci.archive import save_image_tar
from minibuild.oci.image import Image
from minibuild.store import Store
from minibuild.store.fsck import fsck
from minibuild.store.gc import Scratch, reap
from tests.oci.layers import make_layer

REPO = str(Path(__file__).resolve().parents[2])


def _cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), *args], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=120)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _debris(store: Path) -> tuple[list[str], list[str]]:
    return sorted(os.listdir(store / ".minibuild" / "tmp")), sorted(os.listdir(store / ".minibuild" / "leases"))


def _kill_a_build(store: Path, ctx: Path) -> int:
    """Start a build whose RUN step sleeps, wait until it has its scratch tree and lease, and SIGKILL it."""
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY a.txt /a.txt\nRUN echo started > /s && sleep 60\n")
    proc = subprocess.Popen([sys.executable, "-m", "minibuild", "--store", str(store), "build", "-t", "k:1",
                             "--progress", "plain", str(ctx)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONPATH=REPO))
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the RUN step has started: its scratch root and lease exist
            if b"RUN echo started" in line:
                break
        deadline = time.monotonic() + 60
        while not any(n.startswith(f"build-{proc.pid}-") for n in _debris(store)[0]):
            assert time.monotonic() < deadline and proc.poll() is None, "the build never made its scratch tree"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    tmp, leases = _debris(store)
    assert any(n.startswith(f"build-{proc.pid}-") for n in tmp) and any(n.startswith(f"{proc.pid}-") for n in leases)
    return proc.pid


@pytest.mark.parametrize("then", ["build", "prune"])
def test_sigkilled_build_leaves_no_problem_and_the_next_build_or_prune_reaps(tmp_path: Path, then: str) -> None:
    store = tmp_path / "store"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a\n")
    pid = _kill_a_build(store, ctx)
    (store / ".minibuild" / "tmp" / f"blob-{pid}-0123456789abcdef").write_bytes(b"partial")  # a killed writer's
    proc = _cli(store, "fsck")  # without --repair: debris is a note, not a problem, and nothing is written
    assert proc.returncode == 0, proc.stdout
    assert f"note: dead-lease: .minibuild/leases/{pid}-" in proc.stdout
    assert f"note: stale-temp: .minibuild/tmp/build-{pid}-" in proc.stdout and "no problems" in proc.stdout
    assert any(n.startswith(f"build-{pid}-") for n in _debris(store)[0])  # fsck itself removed nothing
    if then == "build":
        (ctx / "Dockerfile").write_text("FROM busybox\nCOPY a.txt /b.txt\n")
        done = _cli(store, "build", "-t", "next:1", str(ctx))
    else:
        done = _cli(store, "prune")
    assert done.returncode == 0, done.stderr
    assert _debris(store) == ([], [])
    proc = _cli(store, "fsck")
    assert proc.returncode == 0 and "note:" not in proc.stdout and "no problems" in proc.stdout, proc.stdout


def test_live_owners_are_never_reaped_whatever_their_pid_says(tmp_path: Path) -> None:
    # liveness is the flock the owner holds, so a build in another pid namespace (whose pid means nothing here,
    # played by a dead pid in the name) keeps its scratch tree and lease; a dead one, unlocked, is reaped
    store = Store.open(tmp_path / "store")
    dead = _dead_pid()
    scratch = Scratch(store)
    (scratch.path / "root" / "etc").mkdir(parents=True)
    foreign = store.tmp_dir / f"build-{dead}-feedface"
    os.rename(scratch.path, foreign)  # same inode, same flock: "a live build of another pid namespace"
    lease = store.lease()
    foreign_lease = store.leases_dir / f"{dead}-abcdef.lease"
    os.rename(lease.path, foreign_lease)
    killed = store.tmp_dir / f"build-{dead}-00000000"
    (killed / "root").mkdir(parents=True)
    killed_lease = store.leases_dir / f"{dead}-000000.lease"
    killed_lease.write_text("")
    reaped = reap(store)
    assert reaped.temps == (killed.name,) and reaped.leases == (killed_lease.name,)
    assert foreign.is_dir() and foreign_lease.exists() and not killed.exists() and not killed_lease.exists()
    assert fsck(store).problems == ()
    lease.release()
    os.unlink(foreign_lease)
    os.rename(foreign, scratch.path)
    scratch.remove()
    assert not scratch.path.exists()


def test_temp_files_are_debris_only_when_unlocked_and_their_pid_is_gone(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    dead = _dead_pid()
    killed = store.tmp_dir / f".tmp-index.json-{dead}-0a0b0c0d"  # an atomic_write killed before its rename
    killed.write_text("{")
    writing = store.tmp_dir / f".tmp-index.json-{dead}-01020304"  # one being written (in another pid namespace)
    writing.write_text("{")
    mine = store.tmp_dir / f".tmp-index.json-{os.getpid()}-0f0f0f0f"  # pid alive here: not yet locked, maybe
    mine.write_text("{")
    unknown_young = store.tmp_dir / "somebody-elses"
    unknown_young.write_text("x")
    unknown_old = store.tmp_dir / "abandoned"
    unknown_old.write_text("x")
    os.utime(unknown_old, (time.time() - 3600, time.time() - 3600))
    with open(writing, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert reap(store).temps == (killed.name, "abandoned")
    assert writing.exists() and mine.exists() and unknown_young.exists()


def test_killed_save_leftovers_are_removed_by_the_next_save_to_that_output(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    layer = make_layer({"f": "x\n"})
    store.blobs.put_bytes(layer.blob)
    image = store.get_image(store.put_image(Image.scratch().append_layer(layer)))
    out = tmp_path / "out.tar"
    dead, also_dead = _dead_pid(), _dead_pid()
    killed = tmp_path / f".out.tar.tmp-{dead}"
    killed.write_bytes(b"half an archive")
    running = tmp_path / f".out.tar.tmp-{also_dead}"  # a save in another pid namespace: its file is flocked
    running.write_bytes(b"being written")
    other = tmp_path / f".other.tar.tmp-{dead}"  # another output's: not this save's business
    other.write_bytes(b"x")
    with open(running, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        save_image_tar(store.blobs, image, ["s:1"], out)
    assert out.exists() and not killed.exists() and running.exists() and other.exists()
