"""Crash safety: `minibuild load`, `save`, `rmi`+`prune` killed with SIGKILL at random moments, hundreds of times.

A fork server (this test process, which has imported minibuild once) forks a child that runs CLI commands
(`minibuild.cli.main([...])`, the same code path as the executable) against one store and kills it with SIGKILL
after a random delay drawn from a fixed seed.  After every kill, fsck must find no corrupt blob under its name, no
name or cache record pointing at a missing or corrupt blob, and no damaged index; leftovers (temp files of the
killed writer, its lease) are allowed and are what `fsck --repair` removes.  At checkpoints and at the end a load
and a save must succeed and the saved archive must load into a fresh store with the same digests.

MINIBUILD_CRASH_ROUNDS (default 200) sets the number of kills.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from minibuild.oci.archive import import_archive, save_image_tar
from minibuild.store import Store
from minibuild.store.fsck import fsck
from tests.security.hostile import docker_save_archive, oci_archive, tar_of, Member

ROUNDS = int(os.environ.get("MINIBUILD_CRASH_ROUNDS", "200"))
SEED = 20240917
TRUST_PROBLEMS = ("corrupt-blob", "broken-ref", "dangling-cache-record", "damaged-index", "stray-file",
                  "bad-cache-record")


def _layer(tag: str, size: int) -> bytes:
    rnd = random.Random(tag)
    return tar_of((Member("dir", "data"), Member("file", f"data/{tag}.bin", rnd.randbytes(size)),
                   Member("file", f"data/{tag}.txt", f"{tag}\n".encode())))


def _archives(tmp: Path) -> dict[str, Path]:
    out = {}
    for name, data in {
        "a": docker_save_archive(_layer("a", 600_000)),
        "b": oci_archive(_layer("b", 400_000), gz=True, name="crash:b"),
        "c": docker_save_archive(_layer("c", 900_000)),
    }.items():
        path = tmp / f"{name}.tar"
        path.write_bytes(data)
        out[name] = path
    return out


def _child_ops(rnd: random.Random, store: Path, archives: dict[str, Path], out: Path) -> list[list[str]]:
    base = ["--store", str(store)]
    ops = []
    for _ in range(2):
        pick = rnd.randrange(6)
        if pick == 0:
            ops.append(base + ["load", str(archives["a"])])
        elif pick == 1:
            ops.append(base + ["load", str(archives["b"])])
        elif pick == 2:
            ops.append(base + ["load", str(archives["c"])])
        elif pick == 3:
            ops.append(base + ["save", "hostile:latest", "-o", str(out)])
        elif pick == 4:
            ops.append(base + ["rmi", "hostile:latest"])
            ops.append(base + ["prune"])
        else:
            ops.append(base + ["prune", "--all"])
    return ops


def _run_child(ops: list[list[str]]) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    from minibuild.cli import main

    for argv in ops:
        try:
            main(argv)
        except SystemExit:
            pass


def _assert_trustworthy(store: Store, where: str) -> None:
    report = fsck(store)
    bad = report.of_kind(*TRUST_PROBLEMS)
    assert not bad, f"{where}: " + "; ".join(str(p) for p in bad)


def _checkpoint(store: Store, archives: dict[str, Path], tmp: Path, n: int) -> None:
    loaded = import_archive(store, archives["a"])
    image = store.resolve("hostile:latest")
    assert image.digest == loaded[0].image.digest
    out = tmp / f"check-{n}.tar"
    save_image_tar(store.blobs, image, ["hostile:latest"], out)
    fresh = Store.open(tmp / f"fresh-{n}")
    again = import_archive(fresh, out)
    assert again[0].image.digest == image.digest
    _assert_trustworthy(fresh, "fresh store")
    out.unlink()


def test_sigkill_during_load_save_prune(tmp_path: Path) -> None:
    import minibuild.cli.store_cmds  # noqa: F401  (imported once here; children fork with it)

    archives = _archives(tmp_path)
    store_dir = tmp_path / "store"
    store = Store.open(store_dir)
    out = tmp_path / "saved.tar"
    rnd = random.Random(SEED)
    killed = finished = 0
    started = time.monotonic()
    for round_no in range(ROUNDS):
        ops = _child_ops(rnd, store_dir, archives, out)
        delay = rnd.uniform(0, 0.15)  # one load takes ~0.1-0.2 s here, save ~0.07 s, prune ~0.03 s
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                _run_child(ops)
            finally:
                os._exit(0)
        time.sleep(delay)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            killed += 1
        else:
            finished += 1
        _assert_trustworthy(store, f"after round {round_no} (ops {[o[2:] for o in ops]}, delay {delay:.3f}s)")
        if out.exists():  # a save is atomic: the output is absent or complete
            fresh = Store.open(tmp_path / "verify-out")
            import_archive(fresh, out)
        if round_no % 100 == 99:
            _checkpoint(store, archives, tmp_path, round_no)
    elapsed = time.monotonic() - started
    assert killed >= ROUNDS // 2, f"only {killed} of {ROUNDS} children were killed mid-work"
    assert finished >= 1 or ROUNDS < 50, "no child ever completed: the delays never reach the end of the work"
    # afterwards: repair removes the leftovers and a load/save round trip works
    report = fsck(store, repair=True)
    assert report.ok, [str(p) for p in report.remaining]
    assert fsck(store).problems == ()
    _checkpoint(store, archives, tmp_path, ROUNDS)
    leftovers = [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    print(f"{ROUNDS} rounds in {elapsed:.1f}s: {killed} killed mid-work, {finished} finished; "
          f"repair removed {len(report.problems)} leftovers; save temp files left by killed saves: {len(leftovers)}")
